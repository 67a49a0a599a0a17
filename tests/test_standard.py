"""The Singer SDK's standard tap tests, on every stream, against a sandbox."""

from __future__ import annotations

import atexit

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from coupa_sandbox import Sandbox, SandboxConfig
from tap_coupa.tap import TapCoupa
from tests.helpers import CLIENT_ID, CLIENT_SECRET

# One worker runs the whole class: each worker would otherwise sync every stream again.
pytestmark = [pytest.mark.sandbox, pytest.mark.xdist_group("sdk-standard")]

# The factory needs the config when the class is built, so this sandbox starts at import.
_sandbox = Sandbox(SandboxConfig(seed=13))
_sandbox.start()
atexit.register(_sandbox.stop)

TestTapCoupa = get_tap_test_class(
    TapCoupa,
    config={"base_url": _sandbox.url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    suite_config=SuiteConfig(max_records_limit=100),
)

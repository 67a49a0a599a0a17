"""Settings as each source gives them: a config file, environment variables, Meltano.

An environment variable is text, and so is what Meltano passes for a ``string`` kind
(meltano.yml's choice for the number settings and scopes): the tap reads the text.
"""

from __future__ import annotations

import typing as t

import pytest

from tap_coupa.settings import Settings
from tap_coupa.tap import TapCoupa

pytestmark = pytest.mark.unit

BASE_URL = "https://acme.coupahost.com"


def settings(config: dict[str, t.Any], *, parse_env_config: bool = False) -> Settings:
    tap = TapCoupa(config=config, parse_env_config=parse_env_config, setup_mapper=False)
    return tap.settings


def test_number_settings_from_the_environment_are_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TAP_COUPA_BASE_URL", BASE_URL)
    monkeypatch.setenv("TAP_COUPA_REQUEST_TIMEOUT", "30.5")
    monkeypatch.setenv("TAP_COUPA_MAX_REQUESTS_PER_SECOND", "7")
    parsed = settings({}, parse_env_config=True)
    assert (parsed.request_timeout, parsed.max_requests_per_second) == (30.5, 7)


def test_number_settings_given_as_text_in_the_config_are_numbers() -> None:
    """As Meltano writes them for a ``string`` kind (``meltano config set``, .env)."""
    parsed = settings({"base_url": BASE_URL, "request_timeout": "12.5"})
    assert parsed.request_timeout == 12.5


@pytest.mark.parametrize(
    "scopes",
    [
        "core.common.read core.user.read",
        "core.common.read, core.user.read",
        '["core.common.read", "core.user.read"]',  # a list as Meltano's string kind passes it
        ["core.common.read", "core.user.read"],
        ["core.common.read core.user.read"],  # the SDK splits an env variable at commas only
    ],
    ids=["spaces", "commas", "json-text", "list", "env-list"],
)
def test_scopes_in_each_documented_form(scopes: object) -> None:
    parsed = settings({"base_url": BASE_URL, "scopes": scopes})
    assert parsed.scopes == ("core.common.read", "core.user.read")

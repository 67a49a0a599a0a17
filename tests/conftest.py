"""Shared fixtures (sandboxes on loopback, a tap runner) and the test tiers.

Every test belongs to exactly one tier, set with a marker (usually ``pytestmark``):

* ``unit``: no sockets; runs in-process or as a subprocess with no server.
* ``sandbox``: loopback servers the test starts (the sandbox, a scripted server).
* ``external``: real Singer targets, Meltano, PostgreSQL, packaging.

``make test-fast`` runs the first two; ``make test`` runs all three.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coupa_sandbox import Sandbox, SandboxConfig
from tests import helpers
from tests.helpers import TapRunner

TIERS = ("unit", "sandbox", "external")
#: The longest tests, longest first (they mostly wait: on Meltano, PostgreSQL, rate
#: limits, backoff, kills). xdist deals tests in collection order: dealt first, they
#: overlap the short ones instead of ending the run.
LONG_FIRST = (
    "tests/test_end_to_end.py",
    "tests/test_sql_target.py",
    "tests/test_raw_equivalence.py::test_every_stream",
    "tests/test_deletes_targets.py",
    "tests/test_chaos.py",
    "tests/test_gap_free.py",
    "tests/test_packaging.py",
    "tests/test_deletes.py",
    "tests/test_secrets.py",
)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Iterator[None]:
    """Refuse a test without exactly one tier: ``make test-fast`` would skip it silently.

    Put the ``LONG_FIRST`` tests first (after them, the order is unchanged).

    And note the tests an xdist worker's ``--dist loadgroup`` does not group although
    they have an ``xdist_group`` (pytest-xdist#1386): every worker would run the SDK's
    standard tests' whole sync (``_groups_kept`` fails them).
    """
    wrong = [
        item.nodeid
        for item in items
        if sum(1 for tier in TIERS if item.get_closest_marker(tier)) != 1
    ]
    if wrong:
        raise pytest.UsageError(f"tests need exactly one tier marker {TIERS}: {wrong[:5]}")
    items.sort(
        key=lambda item: next(
            (rank for rank, prefix in enumerate(LONG_FIRST) if item.nodeid.startswith(prefix)),
            len(LONG_FIRST),
        )
    )
    yield  # xdist names each item's group in its nodeid
    if getattr(config.option, "loadgroup", False):
        UNGROUPED.extend(
            i.nodeid for i in items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid
        )


#: Tests of an xdist_group that this worker's --dist loadgroup would not keep together.
UNGROUPED: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _groups_kept() -> None:
    if UNGROUPED:  # a failed collection would crash xdist's controller without a word
        pytest.fail(f"--dist loadgroup ignores xdist_group (pytest-xdist#1386): {UNGROUPED[:3]}")


@pytest.fixture(scope="session", autouse=True)
def _shared_discoveries(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> None:
    """Keep offline discoveries where every xdist worker of this session finds them."""
    base = tmp_path_factory.getbasetemp()
    helpers.DISCOVERIES = (base if worker_id == "master" else base.parent) / "discovered"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """A read-only sandbox shared by tests that do not change its data."""
    with Sandbox(SandboxConfig(seed=7)) as sb:
        yield sb


@pytest.fixture
def fresh_sandbox() -> Iterator[Sandbox]:
    """A sandbox of the test's own, for tests that mutate data or switch faults on."""
    with Sandbox(SandboxConfig(seed=11)) as sb:
        yield sb


@pytest.fixture
def tap(tmp_path: Path) -> TapRunner:
    return TapRunner(tmp_path)

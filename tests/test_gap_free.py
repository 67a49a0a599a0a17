"""The engine's correctness claims, proved against a sandbox that changes under the sync.

Every record that existed before a sync, and was not deleted during it, must be
delivered: whatever is inserted, updated or deleted meanwhile, however the sync is
interrupted and resumed, and however hard the instance throttles.
"""

from __future__ import annotations

import random
import signal

import pytest

from coupa_sandbox import Sandbox, SandboxConfig
from tests.helpers import Output, TapRunner, tap_config

pytestmark = pytest.mark.sandbox

STREAM = "invoices"


def survivors(before: set[int], sb: Sandbox) -> set[int]:
    """Records that existed before the sync and still exist after it."""
    return before & {r["id"] for r in sb.records(STREAM)}


@pytest.mark.parametrize("concurrency", [1, 8])
def test_changes_during_the_sync_never_skip_a_record(
    fresh_sandbox: Sandbox, tap: TapRunner, concurrency: int
) -> None:
    before = {r["id"] for r in fresh_sandbox.records(STREAM)}
    fresh_sandbox.set_background(stream=STREAM, every_requests=2, update=2, insert=1, delete=2)
    out = tap.run(tap_config(fresh_sandbox, page_size=5, max_concurrency=concurrency), [STREAM])
    fresh_sandbox.set_background()
    deleted = before - {r["id"] for r in fresh_sandbox.records(STREAM)}
    assert deleted, "the test must actually delete records during the sync"
    missing = survivors(before, fresh_sandbox) - out.ids(STREAM)
    assert not missing, f"records skipped while data changed: {sorted(missing)[:10]}"


def test_kill_and_resume_at_random_points_loses_nothing(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    rng = random.Random(20261121)
    config = SandboxConfig(seed=5, latency_ms=15)
    with Sandbox(config) as sb:
        expected = {r["id"] for r in sb.records(STREAM)}
        for attempt in range(4):
            tap = TapRunner(tmp_path_factory.mktemp(f"kill{attempt}"))
            settings = tap_config(sb, page_size=5, max_concurrency=4, max_requests_per_second=40)
            delivered: set[int] = set()
            state = None
            for _ in range(6):
                sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
                out: Output = tap.run_and_kill(
                    settings, [STREAM], state, after_s=rng.uniform(1.0, 2.5), sig=sig
                )
                delivered |= out.ids(STREAM)
                state = out.state or state
            final = tap.run(settings, [STREAM], state)
            delivered |= final.ids(STREAM)
            assert expected <= delivered, (
                f"attempt {attempt}: lost {sorted(expected - delivered)[:10]}"
            )
            assert "progress" not in final.state["bookmarks"][STREAM]


def test_resume_continues_after_the_checkpoint(fresh_sandbox: Sandbox, tap: TapRunner) -> None:
    records = sorted(fresh_sandbox.records(STREAM), key=lambda r: r["id"])
    middle = records[len(records) // 2]["id"]
    state = {
        "bookmarks": {
            STREAM: {
                "progress": {
                    "since": None,
                    "after_id": middle,
                    "started_at": "2020-01-01T00:00:00+00:00",
                }
            }
        }
    }
    out = tap.run(tap_config(fresh_sandbox), [STREAM], state)
    assert out.ids(STREAM) == {r["id"] for r in records if r["id"] > middle}
    bookmark = out.state["bookmarks"][STREAM]
    assert "progress" not in bookmark
    # Bounded by the interrupted scan's start: nothing changed since then is skipped.
    # (less the safety margin, PT5M by default).
    assert bookmark["replication_key_value"] == "2019-12-31T23:55:00+00:00"


def test_a_429_storm_costs_time_not_records(tap: TapRunner) -> None:
    with Sandbox(SandboxConfig(seed=3, rate_limit=8, burst=2)) as sb:
        out = tap.run(
            tap_config(sb, page_size=10, max_requests_per_second=100, rate_limit_burst=50),
            [STREAM, "suppliers"],
        )
        assert out.ids(STREAM) == {r["id"] for r in sb.records(STREAM)}
        assert out.ids("suppliers") == {r["id"] for r in sb.records("suppliers")}
        assert sb.stats()["throttled"] > 0, "the sandbox must actually have answered 429"
    assert "throttled (429)" in out.stderr

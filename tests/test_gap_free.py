"""The engine's correctness claims, proved against a sandbox that changes under the sync.

Every record that existed before a sync, and was not deleted during it, must be
delivered: whatever is inserted, updated or deleted meanwhile, however the sync is
interrupted and resumed, and however hard the instance throttles.
"""

from __future__ import annotations

import functools
import random
import signal
import typing as t
from dataclasses import dataclass
from datetime import datetime

import pytest

from coupa_sandbox import Sandbox, SandboxConfig
from tests.helpers import TapRunner, tap_config

pytestmark = pytest.mark.sandbox

STREAM = "invoices"
PROGRESS = "progress"


def survivors(before: set[int], sb: Sandbox) -> set[int]:
    """Records that existed before the sync and still exist after it."""
    return before & {r["id"] for r in sb.records(STREAM)}


#: Only what the scan needs: thousands of records stay cheap to serve and to parse.
LEAN = {STREAM: {"fields": ["id", "updated-at"]}}


def repairs(sb: Sandbox, since: int = 0) -> list[list[tuple[str, str]]]:
    """The gap repairs among the stream's queries (from the ``since``-th on).

    A repair reads between two ids (``id[gt]=a&id[lt]=b``); no other query has both.
    """
    return [
        query
        for query in sb.requests(STREAM)[since:]
        if {"id[gt]", "id[lt]"} <= {key for key, _ in query}
    ]


def instant(value: str) -> datetime:
    """A Coupa or bookmark date-time, comparable whatever its offset."""
    return datetime.fromisoformat(value)


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
    assert repairs(fresh_sandbox), "deletes moved records into gaps: an id[lt] repair must run"


def test_records_entering_the_filter_during_an_incremental_sync_skip_nothing(
    tap: TapRunner,
) -> None:
    """An incremental sync while old records enter its filter and others come and go.

    Every record that matched the filter when it began, and survives, is delivered (id
    repairs fill the gaps that moving offsets open), and the next sync picks up every
    record changed meanwhile: the bookmark stops at the scan's start.
    """
    with Sandbox(SandboxConfig(seed=13, rate_limit=None, records={STREAM: 600})) as sb:
        fast = tap_config(sb, stream_options=LEAN)
        first = tap.run(fast, [STREAM])
        since = first.state["bookmarks"][STREAM]["replication_key_value"]
        bookmark = instant(since)
        sb.mutate(STREAM, update=200)  # changed since the first sync: the second's filter
        before = {r["id"]: instant(r["updated-at"]) for r in sb.records(STREAM)}
        matching = {i for i, updated in before.items() if updated >= bookmark}
        assert len(matching) >= 200, "the second sync's filter must select the changed records"
        logged = len(sb.requests(STREAM))
        # Every request: old records enter the filter (shifting offsets), new ones are
        # inserted and others deleted, while pages are read 4 at a time, 15 a second.
        sb.set_background(stream=STREAM, every_requests=1, update=2, insert=1, delete=4)
        paced = tap_config(
            sb,
            stream_options=LEAN,
            page_size=10,
            max_concurrency=4,
            max_requests_per_second=15,
            rate_limit_burst=1,
        )
        second = tap.run(paced, [STREAM], first.state)
        sb.set_background()
        after = {r["id"]: instant(r["updated-at"]) for r in sb.records(STREAM)}

        missing = (matching & set(after)) - second.ids(STREAM)
        assert not missing, f"records matching the filter were skipped: {sorted(missing)[:10]}"
        entered = {i for i in before.keys() & after.keys() if before[i] < bookmark <= after[i]}
        assert entered, "old records must enter the filter during the sync"
        assert set(before) - set(after), "records must be deleted during the sync"
        queries = sb.requests(STREAM)[logged:]
        assert all(("updated_at[gt_or_eq]", since) in query for query in queries)
        assert repairs(sb, logged), "offsets shifted: an id[lt] repair must have run"

        # Each record changed during the second sync is picked up by the next one, also
        # those changed in a part already read: the bookmark may not pass them.
        changed = {i for i, updated in after.items() if i not in before or updated > before[i]}
        read = {r["id"]: instant(r["updated-at"]) for r in second.records[STREAM]}
        newest = max(read.values())
        assert any(after[i] < newest for i in changed if read.get(i) != after[i]), (
            "some record must change after it was passed, before the newest one read"
        )
        third = tap.run(fast, [STREAM], second.state)
        missed = changed - third.ids(STREAM)
        assert not missed, f"records changed during the sync were not picked up: {sorted(missed)}"


def checkpointed(after: int | None, message: dict[str, t.Any]) -> bool:
    """Whether a Singer message is a new checkpoint of a run that resumed after ``after``."""
    if message["type"] != "STATE":
        return False
    return resumes_after(message["value"]) not in (None, after)


def resumes_after(state: dict[str, t.Any] | None) -> int | None:
    """The id a run given ``state`` resumes after, if the state holds a checkpoint."""
    bookmark = (state or {}).get("bookmarks", {}).get(STREAM, {})
    return bookmark[PROGRESS]["after_id"] if PROGRESS in bookmark else None


KILL_SIGNALS = (signal.SIGKILL, signal.SIGTERM)


@dataclass(frozen=True)
class Kill:
    """When to kill a sync: seconds after its first new checkpoint, or after its start."""

    sig: int
    after_checkpoint_s: float | None = None
    after_s: float | None = None


def test_kill_and_resume_at_random_points_loses_nothing(tap: TapRunner) -> None:
    """Kill a sync a random moment after a checkpoint, twice, then at a random time.

    A checkpoint comes every 500 records; 3,000 records read at most 980 a second leave
    room for two kills after one, even if a kill comes late, past the next checkpoint.
    SIGKILL loses the records written since (they wait in the tap's output buffer);
    SIGTERM flushes them, and the next run reads them again. The data does not change,
    so each resumed run must emit exactly the ids after its checkpoint, in order, from
    the first on.
    """
    rng = random.Random(20261121)
    kills = [
        *(Kill(sig, after_checkpoint_s=rng.uniform(0, 0.3)) for sig in KILL_SIGNALS),
        Kill(rng.choice(KILL_SIGNALS), after_s=rng.uniform(1, 3.5)),  # before or after one
    ]
    with Sandbox(SandboxConfig(seed=5, rate_limit=None, records={STREAM: 3000})) as sb:
        ids = sorted(r["id"] for r in sb.records(STREAM))
        settings = tap_config(
            sb,
            stream_options=LEAN,
            max_concurrency=4,
            max_requests_per_second=20,
            rate_limit_burst=1,
        )
        delivered: set[int] = set()
        resumed: list[int] = []
        state: dict[str, t.Any] | None = None
        for kill in [*kills, None]:
            after = resumes_after(state)
            if kill is None:
                out = tap.run(settings, [STREAM], state)
            elif kill.after_checkpoint_s is None:
                out = tap.run_and_kill(
                    settings, [STREAM], state, sig=kill.sig, after_s=kill.after_s
                )
            else:
                out = tap.run_and_kill(
                    settings,
                    [STREAM],
                    state,
                    sig=kill.sig,
                    when=functools.partial(checkpointed, after),
                    delay_s=kill.after_checkpoint_s,
                )
                assert resumes_after(out.state) not in (None, after), "kill after a checkpoint"
            emitted = [r["id"] for r in out.records[STREAM]]
            if after is None:
                assert "Resuming" not in out.stderr
            elif emitted:  # (a run killed early may not get as far as its first page)
                resumed.append(after)
                assert f"Resuming '{STREAM}' after id {after}." in out.stderr
                # Right after the checkpoint: nothing at or below it, no gap.
                following = [i for i in ids if i > after]
                assert emitted == following[: len(emitted)], f"resumed after {after}"
            delivered.update(emitted)
            state = out.state or state
        lost = set(ids) - delivered
        assert not lost, f"lost {sorted(lost)[:10]}"
        assert PROGRESS not in out.state["bookmarks"][STREAM], "the last run completes"
        assert len(resumed) >= 2, f"runs must resume from the killed runs' checkpoints: {resumed}"


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


def test_a_killed_sync_that_replaces_the_table_starts_over(tap: TapRunner) -> None:
    """A FULL_TABLE stream with ACTIVATE_VERSION: the resumed run announces a new version,
    and the target drops every row of the old one, so its records must be the whole table.
    """
    tap.root_metadata = {STREAM: {"replication-method": "FULL_TABLE"}}
    with Sandbox(SandboxConfig(seed=3, rate_limit=None, records={STREAM: 1200})) as sb:
        config = tap_config(
            sb, stream_options=LEAN, max_concurrency=2, emit_activate_version_messages=True
        )
        killed = tap.run_and_kill(
            config, [STREAM], None, when=functools.partial(checkpointed, None)
        )
        assert killed.returncode == -signal.SIGKILL
        assert resumes_after(killed.state) is not None
        again = tap.run(config, [STREAM], killed.state)
        assert "not resuming the interrupted scan" in again.stderr
        assert again.ids(STREAM) == {r["id"] for r in sb.records(STREAM)}


def restarts(sb: Sandbox, since: int = 0) -> int:
    """Runs of offset pages begun above an id: ``id[gt]``, no ``id[lt]``, offset 0."""
    return sum(
        1
        for query in sb.requests(STREAM)[since:]
        if ("offset", "0") in query
        and ("limit", "1") not in query
        and {"id[gt]"} == {key for key, _ in query} & {"id[gt]", "id[lt]"}
    )


@pytest.mark.parametrize("concurrency", [1, 4])
def test_pages_repeating_whole_as_records_enter_the_filter_skip_nothing(
    tap: TapRunner, concurrency: int
) -> None:
    """Old records enter an incremental sync's filter faster than pages advance: a page
    may repeat the one before whole (it adds nothing), which ends the run of offsets as
    a server ignoring offset would. The scan goes on above the last id: nothing is
    skipped, nothing is written twice, and the sync ends."""
    with Sandbox(SandboxConfig(seed=21, rate_limit=None, records={STREAM: 500})) as sb:
        fast = tap_config(sb, stream_options=LEAN)
        first = tap.run(fast, [STREAM])
        bookmark = instant(first.state["bookmarks"][STREAM]["replication_key_value"])
        sb.mutate(STREAM, update=60)
        matching = {r["id"] for r in sb.records(STREAM) if instant(r["updated-at"]) >= bookmark}
        logged = len(sb.requests(STREAM))
        sb.set_background(stream=STREAM, every_requests=1, update=20, delete=1)
        settings = tap_config(sb, stream_options=LEAN, page_size=5, max_concurrency=concurrency)
        second = tap.run(settings, [STREAM], first.state)
        sb.set_background()
        emitted = [r["id"] for r in second.records[STREAM]]
        assert len(emitted) == len(set(emitted)), "no record written twice"
        missing = (matching & {r["id"] for r in sb.records(STREAM)}) - set(emitted)
        assert not missing, f"records matching the filter were skipped: {sorted(missing)[:10]}"
        assert restarts(sb, logged) >= 1, "whole pages repeated: runs of offsets began above an id"

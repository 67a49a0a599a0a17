"""Later streams read ahead of their turn through the one scheduler: nothing is lost.

Every selected collection's scan starts when the first stream starts (``feed.py``), so
these tests check what that must not change: every stream complete, each STATE
covering only records already written, a sync killed while later streams read ahead
resuming each stream from what was written, and memory held for streams ahead kept
within ``prefetch_memory_mb``.
"""

from __future__ import annotations

import json
import re
import time
import typing as t
from collections.abc import Iterator
from datetime import datetime

import pytest

from coupa_sandbox import Sandbox, SandboxConfig
from tests.helpers import Output, TapRunner, tap_config

pytestmark = pytest.mark.sandbox

#: Three collections, in the order the tap writes them (alphabetical).
FIRST, SECOND, THIRD = "invoices", "purchase_orders", "suppliers"


@pytest.fixture
def lean_sandbox() -> Iterator[Sandbox]:
    """Thousands of plain invoices: the first stream takes a while to write."""
    config = SandboxConfig(
        seed=5,
        document_shape="plain",
        records={FIRST: 3000, SECOND: 400, THIRD: 300},
        rate_limit=None,
    )
    with Sandbox(config) as sb:
        yield sb


def messages(stdout: str) -> Iterator[dict[str, t.Any]]:
    for line in stdout.splitlines():
        if line.strip():
            yield json.loads(line)


def first_request_of_each(sb: Sandbox) -> dict[str, int]:
    """Each stream's first query's position in the sandbox's request log."""
    first: dict[str, int] = {}
    for position, entry in enumerate(sb.state.requests.entries()):
        first.setdefault(entry["stream"], position)
    return first


def last_request_of(sb: Sandbox, stream: str) -> int:
    entries = sb.state.requests.entries()
    return max(i for i, entry in enumerate(entries) if entry["stream"] == stream)


def test_every_stream_is_complete_and_no_state_runs_ahead_of_its_records(
    lean_sandbox: Sandbox, tap: TapRunner
) -> None:
    streams = [FIRST, SECOND, THIRD]
    out = tap.run(tap_config(lean_sandbox), streams)
    for stream in streams:
        assert out.ids(stream) == {r["id"] for r in lean_sandbox.records(stream)}, stream
    # The situation: the later streams were read while the first was still being read.
    first = first_request_of_each(lean_sandbox)
    last_of_first = last_request_of(lean_sandbox, FIRST)
    for later in (SECOND, THIRD):
        assert first[later] < last_of_first, f"{later}'s scan ran while {FIRST}'s did"
    # Every STATE covers only records already written.
    written: dict[str, set[int]] = {stream: set() for stream in streams}
    served = {stream: sorted(r["id"] for r in lean_sandbox.records(stream)) for stream in streams}
    checkpoints = 0
    for message in messages(out.stdout):
        if message["type"] == "RECORD":
            written[message["stream"]].add(message["record"]["id"])
        elif message["type"] == "STATE":
            for stream, entry in message["value"].get("bookmarks", {}).items():
                progress = entry.get("progress")
                if progress and progress.get("after_id") is not None:
                    checkpoints += 1
                    covered = {i for i in served[stream] if i <= progress["after_id"]}
                    assert covered <= written[stream], (
                        f"STATE resumes {stream} after id {progress['after_id']}, "
                        f"but {sorted(covered - written[stream])[:5]} were not written yet"
                    )
                if entry.get("replication_key_value"):
                    assert written[stream] == set(served[stream]), (
                        f"{stream}'s bookmark came before all its records"
                    )
    assert checkpoints >= 5, "the first stream wrote several checkpoints"


def test_a_sync_killed_while_later_streams_read_ahead_resumes_every_stream(
    lean_sandbox: Sandbox, tap: TapRunner
) -> None:
    streams = [FIRST, SECOND, THIRD]
    config = tap_config(lean_sandbox, max_requests_per_second=20, rate_limit_burst=1)

    def checkpointed(message: dict[str, t.Any]) -> bool:
        bookmarks = message.get("value", {}).get("bookmarks", {})
        return message["type"] == "STATE" and "progress" in bookmarks.get(FIRST, {})

    killed = tap.run_and_kill(config, streams, None, when=checkpointed)
    assert killed.returncode != 0, "the sync was killed"
    assert killed.records[FIRST], "the first stream was being written"
    for later in (SECOND, THIRD):
        assert not killed.records.get(later), f"{later} was not written yet"
        assert lean_sandbox.requests(later), f"the kill came while {later} read ahead"
    state = killed.state
    after = state["bookmarks"][FIRST]["progress"]["after_id"]
    assert not state["bookmarks"].get(SECOND), "nothing in STATE for a stream not yet written"

    resumed = tap.run(config, streams, state)
    assert f"Resuming '{FIRST}' after id {after}" in resumed.stderr
    served_first = {r["id"] for r in lean_sandbox.records(FIRST)}
    assert resumed.ids(FIRST) == {i for i in served_first if i > after}, (
        "the resume read exactly the records after the checkpoint"
    )
    # What a target keeps of the killed run: the records before its last STATE (those
    # after it are not committed). The resume must start right after them.
    committed: set[int] = set()
    kept: set[int] = set()
    for message in messages(killed.stdout):
        if message["type"] == "STATE":
            kept = set(committed)
        elif message["type"] == "RECORD" and message["stream"] == FIRST:
            committed.add(message["record"]["id"])
    assert kept | resumed.ids(FIRST) == served_first, "the resume lost records"
    for stream in (SECOND, THIRD):
        assert resumed.ids(stream) == {r["id"] for r in lean_sandbox.records(stream)}, stream


def read_ahead_log(stderr: str) -> tuple[float, float, int]:
    """The last read-ahead summary: peak MB, budget MB, times held back."""
    found = re.findall(
        r"read-ahead peak ([\d.]+) MB of the (\d+) MB budget, held back (\d+) times", stderr
    )
    assert found, "the tap logs the read-ahead figures"
    peak, budget, waits = found[-1]
    return float(peak), float(budget), int(waits)


def pages_requested_before_written(
    sb: Sandbox, out: Output, stream: str, written: str
) -> list[dict[str, t.Any]]:
    """``stream``'s pages (not one-record probes) requested before ``written``'s last
    record was written (its ``time_extracted``; the sandbox logs monotonic time)."""
    wall = time.time() - time.monotonic()
    extracted = [
        m["time_extracted"]
        for m in messages(out.stdout)
        if m["type"] == "RECORD" and m["stream"] == written
    ]
    end = datetime.fromisoformat(extracted[-1]).timestamp()
    return [
        entry
        for entry in sb.state.requests.entries()
        if entry["stream"] == stream
        and ["limit", "1"] not in entry["params"]
        and entry["at"] + wall < end
    ]


def test_streams_ahead_stay_within_the_memory_budget(tap: TapRunner) -> None:
    """Full invoices (~1.4 MB a page) ahead of a slow first stream, with a 2 MB budget.

    The tap's own peak figure comes from the accounting under test; the sandbox's log
    counts independently the invoice pages downloaded while expense reports were still
    being written (a second or so): all of them wait in memory, so one page fits.
    """
    config = SandboxConfig(
        seed=9,
        records={"expense_reports": 2400, FIRST: 600},
        rate_limit=None,
    )
    with Sandbox(config) as sb:
        streams = ["expense_reports", FIRST]  # written in this order
        out = tap.run(tap_config(sb, prefetch_memory_mb=2, max_concurrency=8), streams)
        for stream in streams:
            assert out.ids(stream) == {r["id"] for r in sb.records(stream)}, stream
        ahead = pages_requested_before_written(sb, out, FIRST, "expense_reports")
    assert ahead, "invoices were read ahead while expense reports were written"
    assert len(ahead) <= 2, f"{len(ahead)} invoice pages held while expense reports were written"
    peak, budget, waits = read_ahead_log(out.stderr)
    page_mb = 1.6  # the largest invoice page, with room to spare
    assert waits > 0, "the budget held the invoices back while expense reports were written"
    assert peak <= budget + page_mb, f"peak {peak} MB over the {budget} MB budget"


def test_a_429_storm_is_shared_by_every_stream_and_loses_nothing(tap: TapRunner) -> None:
    """An instance far stricter than Coupa's limit, with 429 storms: none gives up."""
    streams = [FIRST, SECOND, THIRD, "users"]
    config = SandboxConfig(
        seed=6,
        document_shape="plain",
        records={FIRST: 400, SECOND: 300, THIRD: 200, "users": 150},
        rate_limit=6,
        burst=2,
        faults={"storm_429": {"every": 8, "length": 3}},  # storms on top of the strict limit
    )
    with Sandbox(config) as sb:
        out = tap.run(tap_config(sb, page_size=20, max_retries=4), streams)
        throttled = sb.stats()["throttled"]
        for stream in streams:
            assert out.ids(stream) == {r["id"] for r in sb.records(stream)}, stream
    assert throttled >= 10, "the storm happened"
    hit = [
        stream
        for stream in streams
        if re.search(rf"Stream '{stream}': \d+ records, .* [1-9]\d* throttled \(429\)", out.stderr)
    ]
    assert len(hit) >= 3, f"the storm fell on the streams together, not on one: {hit}"
    assert "giving up" not in out.stderr

"""Delete detection: every deleted record reported once, no live record ever reported."""

from __future__ import annotations

import copy
import signal
import typing as t
from types import SimpleNamespace

import pendulum
import pytest

from coupa_sandbox import Sandbox, SandboxConfig
from tap_coupa.deletes import DeleteCheck
from tap_coupa.idruns import IdRuns
from tap_coupa.state import DeleteState
from tap_coupa.tap import TapCoupa
from tests.helpers import Output, TapRunner, tap_config
from tests.scripted import Reply, ScriptedServer

pytestmark = pytest.mark.sandbox

DELETED_AT = "_sdc_deleted_at"


def reported(out: Output, stream: str) -> list[int]:
    """Ids the run reported deleted (a list: a repeat would show)."""
    return [r["id"] for r in out.records.get(stream, []) if r.get(DELETED_AT)]


def live_ids(sb: Sandbox, stream: str) -> set[int]:
    return {r["id"] for r in sb.records(stream)}


def test_deletes_between_syncs_are_reported_once(fresh_sandbox: Sandbox, tap: TapRunner) -> None:
    streams = ["suppliers", "invoices"]
    config = tap_config(fresh_sandbox, detect_deletes=streams)
    first = tap.run(config, streams)
    for stream in streams:
        assert not reported(first, stream), "the first listing only records the baseline"
        declared = first.schemas[stream]["schema"]["properties"][DELETED_AT]
        assert declared == {"type": ["string", "null"], "format": "date-time"}
    deleted = {
        s: set(fresh_sandbox.mutate(s, delete=3, insert=2, update=2)["deleted"]) for s in streams
    }
    second = tap.run(config, streams, first.state)
    for stream in streams:
        assert len(deleted[stream]) == 3
        assert sorted(reported(second, stream)) == sorted(deleted[stream])
        gone = [r for r in second.records[stream] if r.get(DELETED_AT)]
        assert all(set(r) == {"id", DELETED_AT} for r in gone)
    third = tap.run(config, streams, second.state)
    assert not any(reported(third, s) for s in streams), "a deletion is reported once"
    log = [line for line in second.stderr.splitlines() if "delete check listed" in line]
    assert len(log) == 2
    assert all("3 deleted" in line and "requests" in line for line in log), log


def test_changes_during_the_listing_never_report_a_live_record(
    fresh_sandbox: Sandbox, tap: TapRunner
) -> None:
    stream = "invoices"
    config = tap_config(fresh_sandbox, detect_deletes=[stream], page_size=5, max_concurrency=4)
    first = tap.run(config, [stream])
    emitted = first.ids(stream)
    before = live_ids(fresh_sandbox, stream)
    logged = len(fresh_sandbox.requests(stream))
    # Two deletes per request: pages then shift by more than their one-record overlap,
    # so the listing skips live ids unless its id-range repairs read them.
    fresh_sandbox.set_background(stream=stream, every_requests=1, insert=1, delete=2, update=1)
    second = tap.run(config, [stream], first.state)
    fresh_sandbox.set_background()
    after = live_ids(fresh_sandbox, stream)
    assert before - after, "records were deleted while the sync ran"
    assert after - before, "records were inserted while the sync ran"
    assert not set(reported(second, stream)) & after, "a live record was reported deleted"
    listing = [q for q in fresh_sandbox.requests(stream)[logged:] if ("fields", '["id"]') in q]
    assert listing, "the second sync listed the ids"
    repairs = [q for q in listing if {"id[gt]", "id[lt]"} <= {key for key, _ in q}]
    assert repairs, "offsets shifted under the listing: it repaired gaps by id"
    emitted |= {r["id"] for r in second.records[stream] if not r.get(DELETED_AT)}
    third = tap.run(config, [stream], second.state)
    emitted |= {r["id"] for r in third.records[stream] if not r.get(DELETED_AT)}
    every_report = reported(second, stream) + reported(third, stream)
    assert len(every_report) == len(set(every_report)), "no deletion reported twice"
    # Everything the tap ever emitted and that is gone now has been reported.
    assert set(every_report) == emitted - live_ids(fresh_sandbox, stream)


def test_a_killed_listing_resumes_without_false_or_repeated_deletions(tap: TapRunner) -> None:
    stream = "suppliers"
    with Sandbox(
        SandboxConfig(seed=2, records={stream: 8000}, cache_records=10000, rate_limit=None)
    ) as sb:
        config = tap_config(sb, detect_deletes=[stream], max_requests_per_second=60)
        records = sb.records(stream)
        # A baseline as a first sync leaves it, without extracting 8,000 records here.
        first = {
            "bookmarks": {
                stream: {
                    "replication_key": "updated-at",
                    "replication_key_value": max(r["updated-at"] for r in records),
                    "deletes": {
                        "known": IdRuns.of(r["id"] for r in records).to_state(),
                        "checked_at": "2025-01-01T00:00:00+00:00",
                    },
                }
            }
        }
        deleted = set(sb.mutate(stream, delete=40)["deleted"])
        killed = tap.run_and_kill(
            config,
            [stream],
            first,
            when=lambda m: (
                m["type"] == "STATE"
                and "listing" in m["value"]["bookmarks"][stream].get("deletes", {})
            ),
        )
        assert killed.returncode == -signal.SIGKILL
        assert not reported(killed, stream), "nothing is reported before the listing ends"
        listing = killed.state["bookmarks"][stream]["deletes"]["listing"]
        resumed = tap.run(config, [stream], killed.state)
    assert f"Resuming '{stream}''s delete check after id {listing['after_id']}" in resumed.stderr
    assert sorted(reported(resumed, stream)) == sorted(deleted)
    assert "listing" not in resumed.state["bookmarks"][stream]["deletes"]


def test_a_record_a_killed_scan_emitted_is_reported_when_deleted(tap: TapRunner) -> None:
    """The resumed scan continues after the checkpoint: the ids before it were emitted by
    the killed run only, and the target holds them as much as any other."""
    stream = "suppliers"
    with Sandbox(SandboxConfig(seed=5, records={stream: 100}, rate_limit=None)) as sb:
        lean = {stream: {"fields": ["id", "updated-at"]}}
        config = tap_config(sb, detect_deletes=[stream], max_concurrency=2, stream_options=lean)
        first = tap.run(config, [stream])
        inserted = sb.mutate(stream, insert=1100)["inserted"]
        killed = tap.run_and_kill(
            config,
            [stream],
            first.state,
            when=lambda m: m["type"] == "STATE" and "progress" in m["value"]["bookmarks"][stream],
        )
        assert killed.returncode == -signal.SIGKILL
        after = killed.state["bookmarks"][stream]["progress"]["after_id"]
        victim = max(i for i in inserted if i <= after)
        assert victim in killed.ids(stream)
        resumed = tap.run(config, [stream], killed.state)
        assert victim not in resumed.ids(stream), "emitted by the killed run only"
        sb.mutate(stream, delete_ids=[victim])
        last = tap.run(config, [stream], resumed.state)
    assert reported(last, stream) == [victim]


def test_the_interval_skips_listings_and_remembers_what_was_emitted(
    fresh_sandbox: Sandbox, tap: TapRunner
) -> None:
    stream = "suppliers"
    config = tap_config(fresh_sandbox, detect_deletes=[stream], delete_check_interval="P1D")
    first = tap.run(config, [stream])
    inserted = fresh_sandbox.mutate(stream, insert=2)["inserted"]
    second = tap.run(config, [stream], first.state)
    assert set(inserted) <= second.ids(stream)
    assert "delete check" not in second.stderr, "no listing within the interval"
    # Records emitted between listings, deleted before the next: still reported.
    deleted = set(fresh_sandbox.mutate(stream, delete=2, delete_ids=inserted)["deleted"])
    assert set(inserted) < deleted
    state = second.state
    checked = pendulum.parse(state["bookmarks"][stream]["deletes"]["checked_at"])
    assert isinstance(checked, pendulum.DateTime)
    state["bookmarks"][stream]["deletes"]["checked_at"] = (
        checked - pendulum.duration(days=2)
    ).isoformat()
    third = tap.run(config, [stream], state)
    assert sorted(reported(third, stream)) == sorted(deleted)


def test_an_id_reported_deleted_is_not_held_again_when_a_scan_emitted_it_meanwhile() -> None:
    """A killed listing, then the next sync's scan emits a held id, which then goes."""
    entry: dict[str, object] = {}
    held = DeleteState(entry)
    held.finish_listing(IdRuns.of([1, 2, 3, 4]), "2025-01-01T00:00:00+00:00")  # the baseline
    held.save_listing(2, IdRuns.of([1, 2]), "2025-01-02T00:00:00+00:00")  # killed after id 2
    held.add_emitted(IdRuns.of([3, 9]))  # the next sync's scan, before the listing resumes
    assert "emitted" in t.cast("dict[str, t.Any]", entry["listing"]), "kept for the listing's end"
    held.finish_listing(IdRuns.of([1, 2, 4]), "2025-01-02T00:00:00+00:00")  # 3 is gone
    known = held.known
    assert known is not None
    assert 3 not in known, "reported deleted by this listing: holding it reports it again"
    assert list(known) == [1, 2, 4, 9], "9 was emitted after the listing began: held"


def test_the_held_ids_drop_the_deleted_ones_only_once_all_are_reported() -> None:
    """A STATE written while deletions are reported still holds those not reported yet.

    The SDK writes the state every 10,000 records, and on SIGTERM: had it already
    dropped them, a sync stopped there would never report the rest.
    """
    entry: dict[str, t.Any] = {}
    held = DeleteState(entry)
    held.finish_listing(IdRuns.of(range(1, 11)), "2025-01-01T00:00:00+00:00")  # the baseline
    live = [1, 2, 5, 9]

    def listing(after_id: int | None) -> t.Any:
        assert after_id is None
        return _Listing({"id": i} for i in live)

    check = DeleteCheck("suppliers", held, listing, lambda: None)
    gone = [3, 4, 6, 7, 8, 10]
    reported: list[int] = []
    for record_id in check.deleted_ids():
        reported.append(record_id)
        written = DeleteState(copy.deepcopy(entry)).known  # what a STATE now would hold
        assert written is not None
        not_yet = set(gone) - set(reported)
        assert not_yet <= set(written), f"{sorted(not_yet - set(written))} would never be reported"
    assert reported == gone
    known = held.known
    assert known is not None
    assert list(known) == live


class _Listing(list[dict[str, int]]):
    """A listing's scan as ``DeleteCheck`` reads it: its records, and its requests."""

    source = SimpleNamespace(stats=SimpleNamespace(requests=1))


def test_a_custom_object_may_be_named_in_detect_deletes() -> None:
    """Its ids are listed as a collection's (``["*"]`` includes it): by name too."""
    config = {
        "base_url": "https://acme.coupahost.com",
        "api_key": "a-key-never-sent-anywhere",
        "custom_objects": [{"name": "vehicles", "object_id": "12"}],
        "detect_deletes": ["custom_object_vehicles"],
    }
    tap = TapCoupa(config=config, catalog={"streams": []}, setup_mapper=False)
    assert tap.settings.detects_deletes("custom_object_vehicles")
    assert not tap.settings.detects_deletes("invoices")


def test_a_404_that_is_not_no_results_never_reports_the_held_ids_deleted(tap: TapRunner) -> None:
    """A proxy's 404 answers the listing's first request: retried, then the sync fails.

    Read as an empty collection (as a scan's first request may read a missing
    resource), it would report every held id deleted.
    """
    stream, path = "suppliers", "/api/suppliers"
    state = {
        "bookmarks": {
            stream: {
                "replication_key": "updated-at",
                "replication_key_value": "2025-01-01T00:00:00+00:00",
                "deletes": {
                    "known": IdRuns.of(range(1, 6)).to_state(),
                    "checked_at": "2025-01-01T00:00:00+00:00",
                },
            }
        }
    }
    with ScriptedServer() as server:
        # The scan finds nothing changed; then every request (the listing's) meets the proxy.
        server.script(path, Reply(body=[]), Reply(404, raw=b"<html>404 Not Found</html>"))
        config = {"base_url": server.url, "api_key": "key", "max_retries": 1}
        out = tap.run({**config, "detect_deletes": [stream]}, [stream], state, check=False)
        first_pages = [
            seen.query
            for seen in server.requests_to(path)[1:]
            if ("limit", "50") in seen.query and ("offset", "0") in seen.query
        ]
    assert not reported(out, stream), "no held id is reported deleted"
    assert len(first_pages) == 2, "the listing's first page met the 404, and was retried once"
    assert out.returncode != 0
    assert "HTTP 404" in out.stderr

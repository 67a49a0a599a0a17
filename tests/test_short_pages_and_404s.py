"""Whole syncs where a short page or a 404 could end a scan early.

A sandbox that silently caps pages at 25 records, and a scripted server that answers
404s at the end of a scan, in its middle, and for a resource that does not exist.
"""

from __future__ import annotations

import typing as t
from datetime import datetime

import pytest

from coupa_sandbox import Sandbox, SandboxConfig
from tests.helpers import TapRunner, tap_config
from tests.scripted import Reply, ScriptedServer

pytestmark = pytest.mark.sandbox

STREAM = "invoices"
PATH = "/api/invoices"
API_KEY = "s3cret-api-key"
NO_RESULTS = {"errors": {"warning": ["No results match your search criteria."]}}


def bookmark(state: dict[str, t.Any]) -> datetime:
    return datetime.fromisoformat(state["bookmarks"][STREAM]["replication_key_value"])


def test_an_endpoint_that_caps_pages_at_25_loses_nothing(tap: TapRunner) -> None:
    with Sandbox(SandboxConfig(seed=3, rate_limit=None, page_size=25)) as sb:
        expected = {r["id"] for r in sb.records(STREAM)}
        assert len(expected) > 50
        out = tap.run(tap_config(sb, max_concurrency=4), [STREAM])
        assert out.ids(STREAM) == expected, f"{len(out.ids(STREAM))} of {len(expected)}"
        latest = max(datetime.fromisoformat(r["updated-at"]) for r in sb.records(STREAM))
        assert bookmark(out.state) == latest
        served = sb.stats()["by_stream"][STREAM]
        assert served <= len(expected) // 24 + 6, "pages shrank to the cap: no re-reading"


def id_gt_requests(sb: Sandbox, stream: str) -> int:
    """Requests with an ``id[gt]`` bound without ``id[lt]``: end confirmations."""
    return sum(
        1
        for query in sb.requests(stream)
        if any(key == "id[gt]" for key, _ in query) and all(key != "id[lt]" for key, _ in query)
    )


def test_a_short_incremental_page_is_confirmed_only_until_the_endpoint_proved_its_page_size(
    tap: TapRunner,
) -> None:
    """The first sync proves what each endpoint serves per page; state keeps the proof."""
    big, small = STREAM, "suppliers"
    config = SandboxConfig(seed=8, document_shape="plain", records={big: 120, small: 7})
    with Sandbox(config) as sb:
        first = tap.run(tap_config(sb), [big, small])
        assert id_gt_requests(sb, small) == 1, "7 records, never a full page: confirmed"
        assert id_gt_requests(sb, big) == 0, "a short page after a full one is the end"
        served = {s: first.state["bookmarks"][s]["served_per_page"] for s in (big, small)}
        assert served == {big: 50, small: 7}
        for stream in (big, small):
            sb.mutate(stream, update=3)
        sb.reset_stats()
        second = tap.run(tap_config(sb), [big, small], first.state)
        for stream in (big, small):
            assert len(second.ids(stream)) >= 3, "the incremental sync read the changes"
            assert len(sb.requests(stream)) == 1, f"{stream}: one request, no confirmation"


def record(record_id: int) -> dict[str, t.Any]:
    return {"id": record_id, "updated-at": f"2024-01-01T00:00:{record_id:02d}-08:00"}


def page(*ids: int) -> Reply:
    return Reply(body=[record(i) for i in ids])


def scripted_config(server: ScriptedServer) -> dict[str, t.Any]:
    return {
        "base_url": server.url,
        "api_key": API_KEY,
        "page_size": 5,
        "max_concurrency": 1,
        "max_retries": 1,
    }


def test_a_no_results_404_at_the_end_ends_the_scan(tap: TapRunner) -> None:
    with ScriptedServer() as server:
        server.script(PATH, page(1, 2, 3, 4, 5), page(5, 6, 7, 8, 9), Reply(404, NO_RESULTS))
        out = tap.run(scripted_config(server), [STREAM])
        assert out.ids(STREAM) == set(range(1, 10))
        assert bookmark(out.state) == datetime.fromisoformat(record(9)["updated-at"])
        ends = [dict(s.query) for s in server.requests_to(PATH)][2:]
        assert [q.get("id[gt]") for q in ends] == [None, "9"], "the end was checked once"


def test_another_404_mid_scan_fails_loudly_without_advancing_the_bookmark(
    tap: TapRunner,
) -> None:
    with ScriptedServer() as server:
        server.script(PATH, page(1, 2, 3, 4, 5), Reply(404, {"errors": {"error": ["Not Found"]}}))
        out = tap.run(scripted_config(server), [STREAM], check=False)
        assert out.returncode != 0
        assert len(server.requests_to(PATH)) == 3, "the 404 was retried (max_retries=1)"
        errors = [line for line in out.stderr.splitlines() if "giving up" in line]
        assert errors, out.stderr[-2000:]
        for part in ("'invoices'", "HTTP 404", "/api/invoices", "No results match", "resume"):
            assert part in errors[0], errors[0]
        assert API_KEY not in out.stderr
        bookmark = out.state.get("bookmarks", {}).get(STREAM, {})
        assert "replication_key_value" not in bookmark, "the bookmark did not advance"


def test_a_404_for_a_missing_resource_is_a_warning(tap: TapRunner) -> None:
    with ScriptedServer() as server:
        server.script(PATH, Reply(404, {"errors": {"error": ["Not Found"]}}))
        out = tap.run(scripted_config(server), [STREAM])
        assert out.ids(STREAM) == set()
        assert len(server.requests_to(PATH)) == 1, "not retried"
        assert "Coupa answered 404" in out.stderr
        assert "check base_url" in out.stderr

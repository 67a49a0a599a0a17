"""Whole syncs against a Coupa look-alike whose answers are valid JSON but odd.

Each case is one the earlier reviews did not cover: it must end in records emitted
or one clear error, never in records dropped quietly, bytes a target cannot read, or
a traceback.
"""

from __future__ import annotations

import subprocess
import typing as t

import pytest

from tests.helpers import CLIENT_ID, CLIENT_SECRET, Output, TapRunner
from tests.scripted import Reply, ScriptedServer
from tests.test_bad_input import assert_one_clear_error

pytestmark = pytest.mark.sandbox

UPDATED = "2025-03-10T08:00:00-07:00"
NO_RESULTS = Reply(404, {"errors": {"warning": ["No results match your search criteria."]}})


def invoices(*ids: int) -> list[dict[str, t.Any]]:
    return [{"id": i, "updated-at": UPDATED} for i in ids]


def sync(tap: TapRunner, *replies: Reply, **settings: t.Any) -> Output:
    """Sync invoices from ``replies``, one request at a time (the last reply repeats)."""
    with ScriptedServer() as server:
        server.script("/oauth2/token", Reply(body={"access_token": "t", "expires_in": 86399}))
        server.script("/api/invoices", *replies)
        config = {
            "base_url": server.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "max_concurrency": 1,
            "max_retries": 1,
            **settings,
        }
        return tap.run(config, ["invoices"], check=False)


def failed(out: Output) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], out.returncode, out.stdout, out.stderr)


def test_a_page_out_of_id_order_fails_instead_of_dropping_records(tap: TapRunner) -> None:
    """The scan asks for ``order_by=id``: a server ignoring it sent [3, 1, 2], and the
    scan, skipping ids at or below the last emitted, wrote 3 alone and ended fine."""
    out = sync(tap, Reply(body=invoices(3, 1, 2)), NO_RESULTS)
    assert_one_clear_error(failed(out), "'invoices'", "order_by=id", "base_url")
    assert out.ids("invoices") <= {3}
    bookmark = out.state.get("bookmarks", {}).get("invoices", {})
    assert "replication_key_value" not in bookmark, "the bookmark did not advance"


@pytest.mark.parametrize("decimal_format", ["string", "number"])
def test_a_string_that_is_not_utf8_is_refused_as_full_decoding_refuses_it(
    tap: TapRunner, decimal_format: str
) -> None:
    """JSON is UTF-8, and so is a Singer stream. A record past the first page's samples
    (which are decoded fully) went out as the bytes sent, 0xFF and all: the target
    could not read the line. Decoded fully (stream maps), the page is refused."""
    good = [b'{"id": %d, "updated-at": "%s"}' % (i, UPDATED.encode()) for i in range(1, 10)]
    bad = b'{"id": 10, "updated-at": "%s", "invoice-number": "a\xffb"}' % UPDATED.encode()
    out = sync(tap, Reply(raw=b"[%s]" % b",".join([*good, bad])), decimal_format=decimal_format)
    assert_one_clear_error(failed(out), "'invoices'", "UTF-8", "giving up")
    assert not out.records, "nothing of the page was written"


@pytest.mark.parametrize("settings", [{}, {"stream_maps": {"invoices": {}}}])
def test_a_value_nested_too_deep_to_decode_is_one_clear_error(
    tap: TapRunner, settings: dict[str, t.Any]
) -> None:
    """A custom field nested 5,000 arrays deep is valid JSON that msgspec refuses with
    a RecursionError, which ended the run with a traceback (900 levels go through)."""
    nested = b"[" * 5000 + b"]" * 5000
    body = b'[{"id": 1, "updated-at": "%s", "custom-fields": {"x": %s}}]' % (
        UPDATED.encode(),
        nested,
    )
    out = sync(tap, Reply(raw=body), NO_RESULTS, **settings)
    assert_one_clear_error(failed(out), "'invoices'", "/api/invoices", "nested", "base_url")
    assert not out.records


def test_an_updated_at_that_is_no_date_time_is_one_clear_error_and_no_bookmark(
    tap: TapRunner,
) -> None:
    """The bookmark is the latest ``updated-at``: one reading "yesterday" ended the
    stream with pendulum's ParserError and a traceback. Both records are written (the
    value is Coupa's to fix), but the bookmark stays where it was."""
    page = [{"id": 1, "updated-at": "yesterday"}, {"id": 2, "updated-at": UPDATED}]
    out = sync(tap, Reply(body=page), NO_RESULTS)
    assert_one_clear_error(failed(out), "'invoices'", "updated-at", "'yesterday'", "base_url")
    assert out.ids("invoices") == {1, 2}
    bookmark = out.state.get("bookmarks", {}).get("invoices", {})
    assert "replication_key_value" not in bookmark, "the bookmark did not advance"


def test_a_server_ignoring_offset_is_read_above_the_last_id_instead_of_forever(
    tap: TapRunner,
) -> None:
    """Every offset page answered as the first: each page after the first added no
    record, yet was full, so the scan asked for the next offset again and again
    (stopped here by a 400 after 40 requests). A page adding nothing now ends the run
    of offsets, and the scan goes on above the last id, as after a short page."""
    ids = list(range(1, 13))
    asked = 0

    def ignoring_offset(query: list[tuple[str, str]]) -> Reply:
        nonlocal asked
        asked += 1
        if asked > 40:
            return Reply(400, {"errors": {"request": ["too many requests"]}})
        params = dict(query)
        above = int(params.get("id[gt]", 0))
        return Reply(body=invoices(*[i for i in ids if i > above][: int(params["limit"])]))

    with ScriptedServer() as server:
        server.responders["/api/invoices"] = ignoring_offset
        config = {"base_url": server.url, "api_key": "k", "page_size": 5, "max_concurrency": 1}
        out = tap.run(config, ["invoices"], check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.ids("invoices") == set(ids)
    assert asked < 12


def test_a_304_on_page_two_is_not_reported_as_a_redirect(tap: TapRunner) -> None:
    """The tap sends no conditional request, so a 304 Not Modified is some cache's; it
    was reported as "Coupa redirected to '?'", a redirect to nowhere."""
    out = sync(tap, Reply(body=invoices(*range(1, 6))), Reply(304, raw=b""), page_size=5)
    assert_one_clear_error(failed(out), "'invoices'", "HTTP 304", "base_url")
    assert "redirected" not in out.stderr
    assert out.ids("invoices") == set(range(1, 6))
    bookmark = out.state.get("bookmarks", {}).get("invoices", {})
    assert "replication_key_value" not in bookmark, "the bookmark did not advance"


def test_child_rows_that_are_not_objects_in_an_array_are_reported_not_dropped_quietly(
    tap: TapRunner,
) -> None:
    """An invoice's ``invoice-lines`` as one object instead of an array, and a string and
    a null among another's lines: invoice_lines emitted 21 and 22 and said nothing of
    the other three (they stay in the invoices' records, which go out as sent)."""
    body = [
        {"id": 1, "updated-at": UPDATED, "invoice-lines": {"id": 11}},
        {"id": 2, "updated-at": UPDATED, "invoice-lines": [{"id": 21}, "x", None, {"id": 22}]},
        {"id": 3, "updated-at": UPDATED, "invoice-lines": None},
    ]
    with ScriptedServer() as server:
        server.script("/api/invoices", Reply(body=body), NO_RESULTS)
        config = {"base_url": server.url, "api_key": "k", "max_concurrency": 1}
        out = tap.run(config, ["invoices", "invoice_lines"])
    assert [row["id"] for row in out.records["invoice_lines"]] == [21, 22]
    assert [record["id"] for record in out.records["invoices"]] == [1, 2, 3]
    warnings = [line for line in out.stderr.splitlines() if "WARNING" in line and "row" in line]
    assert len(warnings) == 1, out.stderr[-3000:]
    for part in ("'invoice_lines'", "3 rows", "'invoices'", "invoice-lines", "an object"):
        assert part in warnings[0], warnings[0]

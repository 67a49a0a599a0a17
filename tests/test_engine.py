"""The scan engine, driven page by page against an in-memory collection (no sockets).

``Collection`` answers the engine's queries as Coupa documents them (id order,
``id[gt]``/``id[lt]``, ``limit``/``offset``, a 404 "no results" when nothing matches)
through httpx's mock transport, and lets a test change the data before any request.
Requests run inline, in the order the engine sends them, so every test is exact about
which requests the gap-free mechanisms made.
"""

from __future__ import annotations

import typing as t
from concurrent.futures import Future

import httpx
import pytest

from tap_coupa import rawjson, retry
from tap_coupa.auth import CoupaAPIKeyAuthenticator
from tap_coupa.decimals import DecimalPlan
from tap_coupa.engine import IdScan, PageSource
from tap_coupa.errors import CoupaAPIError, CoupaError
from tap_coupa.http import CoupaHTTP, Page
from tap_coupa.pagination import CoupaOffsetPaginator
from tap_coupa.passthrough import page_reader
from tap_coupa.ratelimit import RateLimiter
from tests.helpers import SCHEMA

pytestmark = pytest.mark.unit

NO_RESULTS = {"errors": {"warning": ["No results match your search criteria."]}}
NOT_FOUND = {"errors": {"error": ["Not Found"]}}
Query = dict[str, str]


class InlineRequests:
    """Sends each request when it is submitted: requests happen in a fixed order."""

    def __init__(self) -> None:
        #: Whether each request was submitted as speculative, in order.
        self.speculative: list[bool] = []

    def submit(
        self,
        stream: str,
        fn: t.Callable[[], Page],
        *,
        speculative: bool = False,
        wanted: t.Callable[[], bool] | None = None,
    ) -> Future[Page]:
        future: Future[Page] = Future()
        self.speculative.append(speculative)
        try:
            future.set_result(fn())
        except Exception as exc:  # handed to the engine, as the scheduler would
            future.set_exception(exc)
        return future

    def promote(self, future: Future[Page]) -> None:
        """Nothing waits: every request is sent at once."""


class Collection:
    """An in-memory Coupa collection of bare ``{"id": n}`` records."""

    def __init__(self, ids: t.Iterable[int], *, cap: int = 50, empty: int = 404) -> None:
        self.ids = set(ids)
        #: Records served per page at most, whatever ``limit`` asks (a capping endpoint).
        self.cap = cap
        #: The answer to a query without results: Coupa's 404 "no results", or 200 ``[]``.
        self.empty = empty
        self.queries: list[Query] = []
        #: Runs before each request is answered; may change ``ids`` or return a reply.
        self.before: t.Callable[[Query], httpx.Response | None] = lambda query: None

    def handle(self, request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params.multi_items())
        self.queries.append(query)
        scripted = self.before(query)
        if scripted is not None:
            return scripted
        above = int(query.get("id[gt]", -1))
        below = int(query["id[lt]"]) if "id[lt]" in query else None
        matched = sorted(i for i in self.ids if i > above and (below is None or i < below))
        offset, limit = int(query["offset"]), min(int(query["limit"]), self.cap)
        page = matched[offset : offset + limit]
        if not page:
            return httpx.Response(self.empty, json=NO_RESULTS if self.empty == 404 else [])
        return httpx.Response(200, json=[{"id": i} for i in page])

    def pages(self) -> list[Query]:
        """The page requests (not the one-record probes)."""
        return [q for q in self.queries if q["limit"] != "1"]


def make_scan(
    coupa: Collection,
    *,
    page_size: int = 5,
    max_in_flight: int = 4,
    since: str | None = "2024-01-01T00:00:00Z",
    seen: list[Page] | None = None,
    requests: InlineRequests | None = None,
    missing_ok: bool = True,
    transform: t.Callable[[list[t.Any]], list[t.Any]] = lambda records: records,
    raw: rawjson.Decoding = False,
) -> IdScan:
    http = CoupaHTTP(
        api_base="https://acme.coupahost.test/api",
        authenticator=CoupaAPIKeyAuthenticator(api_key="key"),
        limiter=RateLimiter(10_000, 10_000),
        connect=lambda: httpx.Client(transport=httpx.MockTransport(coupa.handle)),
        max_retries=2,
    )
    source = PageSource(
        http,
        requests or InlineRequests(),
        stream="invoices",
        path="invoices",
        scope="core.invoice.read",
        transform=transform,
        raw=raw,
    )
    return IdScan(
        source,
        CoupaOffsetPaginator(page_size),
        params=[],
        max_in_flight=max_in_flight,
        since=since,
        on_page=None if seen is None else seen.append,
        missing_ok=missing_ok,
    )


def emitted(scan: IdScan) -> list[int]:
    ids = [int(record["id"]) for record in scan]
    assert ids == sorted(set(ids)), "ids strictly increasing, none twice"
    return ids


def once(
    when: t.Callable[[Query], bool], change: t.Callable[[], None]
) -> t.Callable[[Query], None]:
    """A ``before`` hook that makes ``change`` before the first request ``when`` matches."""
    done = False

    def hook(query: Query) -> None:
        nonlocal done
        if not done and when(query):
            done = True
            change()

    return hook


def at_offset(offset: int) -> t.Callable[[Query], bool]:
    return lambda q: q.get("offset") == str(offset) and "id[gt]" not in q and q["limit"] != "1"


def ranges(coupa: Collection) -> list[tuple[str | None, str | None]]:
    """The id-bounded requests the scan made, as (id[gt], id[lt])."""
    return [(q.get("id[gt]"), q.get("id[lt]")) for q in coupa.pages() if "id[gt]" in q]


def test_a_deleted_overlap_record_is_repaired_with_an_id_range() -> None:
    coupa = Collection(range(1, 21))
    # After page 1 (ids 1-5), the overlap record 5 and record 2 go: offset 4 now starts at 7.
    coupa.before = once(at_offset(4), lambda: coupa.ids.difference_update({2, 5}))
    ids = emitted(make_scan(coupa))
    assert ids == list(range(1, 21))
    assert ("5", "7") in ranges(coupa), "the gap (5, 7) was re-read by id, delivering 6"


@pytest.mark.parametrize("empty", [404, 200], ids=["404-no-results", "200-[]"])
def test_an_empty_page_after_a_full_one_reads_on_by_id(empty: int) -> None:
    coupa = Collection(range(1, 12), empty=empty)
    # Pages 2 (offset 4) and 3 (offset 8) are requested together; before page 3, three
    # records go, so offset 8 is past the end while 10 and 11 were never read.
    coupa.before = once(at_offset(8), lambda: coupa.ids.difference_update({2, 3, 4}))
    ids = emitted(make_scan(coupa))
    assert ids == list(range(1, 12))
    assert ("9", None) in ranges(coupa), "after the empty page, ids above 9 were read by id"


def test_records_shifting_right_are_not_emitted_twice_nor_skipped() -> None:
    coupa = Collection(range(2, 42, 2))
    # Before page 2, four records enter the filter below the cursor: pages shift right.
    coupa.before = once(at_offset(4), lambda: coupa.ids.update({3, 5, 7, 9}))
    ids = emitted(make_scan(coupa))
    assert ids == list(range(2, 42, 2))
    assert ranges(coupa) == [], "the overlap was present: no repair needed"


def test_a_capped_page_size_is_detected_and_adopted() -> None:
    coupa = Collection(range(1, 61), cap=25)
    ids = emitted(make_scan(coupa, page_size=50))
    assert ids == list(range(1, 61)), "records past the first capped page are delivered"
    first, confirm, *rest = coupa.pages()
    assert (first["limit"], first["offset"], "id[gt]" in first) == ("50", "0", False)
    assert (confirm["id[gt]"], confirm["limit"], confirm["offset"]) == ("25", "50", "0")
    assert rest, "the scan went on after the cap was seen twice"
    assert {q["limit"] for q in rest} == {"25"}, "pages then ask for what the server serves"
    assert {q.get("id[gt]") for q in rest} == {"25"}
    assert [q["offset"] for q in rest] == ["24", "48"], "offsets step by the cap less one"


def test_a_short_only_page_costs_one_confirmation_and_a_full_page_none() -> None:
    small = Collection(range(1, 8))
    assert emitted(make_scan(small, page_size=50)) == list(range(1, 8))
    assert [q.get("id[gt]") for q in small.pages()] == [None, "7"], "one id[gt] confirmation"
    long = Collection(range(1, 61))
    assert emitted(make_scan(long, page_size=50)) == list(range(1, 61))
    assert ranges(long) == [], "a short page after a full one is the end: nothing to confirm"


def test_a_404_no_results_at_the_end_ends_the_scan() -> None:
    coupa = Collection(range(1, 10))  # 1-5, 5-9 (full pages), then offset 8 holds 9
    coupa.before = once(at_offset(8), lambda: coupa.ids.difference_update({1}))
    seen: list[Page] = []
    assert emitted(make_scan(coupa, seen=seen)) == list(range(1, 10))
    assert "No results" in seen[-1].not_found
    assert ranges(coupa) == [("9", None)], "the end was checked above the last id"


@pytest.mark.parametrize("offset", [0, 4], ids=["first-page", "mid-scan"])
def test_a_page_whose_json_turns_out_broken_is_fetched_again(offset: int) -> None:
    """An offset page is downloaded undecoded; its JSON is checked only when the scan reads it.

    Read as an empty page instead, a broken first page would end the scan with nothing.
    """
    coupa = Collection(range(1, 21))
    broken = httpx.Response(
        200, content=b'[{"id": 1}, {"id"', headers={"Content-Type": "application/json"}
    )
    replies = iter([broken])
    coupa.before = lambda q: next(replies, None) if at_offset(offset)(q) else None
    assert emitted(make_scan(coupa)) == list(range(1, 21))
    again = [q for q in coupa.pages() if at_offset(offset)(q)]
    assert len(again) == 2, "the broken page was fetched again"
    assert ranges(coupa) == [], "no gap to repair: the page itself was read again"


@pytest.fixture
def no_backoff_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "MAX_WAIT_S", 0.0)


@pytest.mark.usefixtures("no_backoff_wait")
def test_another_404_mid_scan_is_retried_then_fails_loudly() -> None:
    coupa = Collection(range(1, 21))
    coupa.before = lambda q: httpx.Response(404, json=NOT_FOUND) if q.get("offset") == "4" else None
    scan = make_scan(coupa)
    got: list[int] = []
    with pytest.raises(CoupaError) as failure:
        got.extend(int(record["id"]) for record in scan)
    assert got == [1, 2, 3, 4, 5], "nothing past the failing page"
    assert scan.last_id == 5, "a resume starts right after the last record delivered"
    assert [q["offset"] for q in coupa.pages()].count("4") == 3, "tried 1 + max_retries times"
    message = str(failure.value)
    assert "\n" not in message
    for part in ("'invoices'", "/api/invoices", "HTTP 404", "No results match", "base_url"):
        assert part in message


@pytest.mark.usefixtures("no_backoff_wait")
def test_a_404_mid_scan_that_passes_is_only_retried() -> None:
    coupa = Collection(range(1, 21))
    failures = iter([httpx.Response(404, json=NOT_FOUND)])
    coupa.before = lambda q: next(failures, None) if at_offset(4)(q) else None
    assert emitted(make_scan(coupa)) == list(range(1, 21))
    assert [q["offset"] for q in coupa.pages()].count("4") == 2


def test_a_404_on_the_first_page_is_a_missing_resource_not_a_failure() -> None:
    coupa = Collection(range(1, 21))
    coupa.before = lambda q: httpx.Response(404, json=NOT_FOUND)
    seen: list[Page] = []
    assert emitted(make_scan(coupa, seen=seen)) == []
    assert len(coupa.pages()) == 1, "not retried"
    assert "Not Found" in seen[0].not_found, "the answer is kept for the stream's warning"


@pytest.mark.usefixtures("no_backoff_wait")
def test_a_scan_that_may_not_meet_a_missing_resource_retries_its_first_404() -> None:
    """The delete listing's: every id it misses would be reported deleted."""
    coupa = Collection(range(1, 21))
    failures = iter([httpx.Response(404, text="<html>404 Not Found</html>")])
    coupa.before = lambda q: next(failures, None) if at_offset(0)(q) else None
    assert emitted(make_scan(coupa, missing_ok=False)) == list(range(1, 21))
    assert [q["offset"] for q in coupa.pages()].count("0") == 2, "the 404 was retried"

    coupa.before = lambda q: httpx.Response(404, text="<html>404 Not Found</html>")
    with pytest.raises(CoupaError, match="HTTP 404"):
        emitted(make_scan(coupa, missing_ok=False))


def test_a_server_that_ignores_id_gt_is_refused_not_read_forever() -> None:
    coupa = Collection(range(1, 21))
    coupa.before = lambda q: httpx.Response(200, json=[{"id": 1}, {"id": 2}, {"id": 3}])
    with pytest.raises(CoupaAPIError, match=r"answered id\[gt\]=3 with id 1.*base_url"):
        emitted(make_scan(coupa))
    assert len(coupa.pages()) == 2


#: Each way a stream decodes its pages: fully (stream maps), one level deep (child
#: streams, deselected properties), and passed through (decimals as numbers).
DECODINGS: dict[str, rawjson.Decoding | None] = {
    "full": False,
    "one-level": True,
    "passthrough": page_reader(SCHEMA, DecimalPlan.compile(SCHEMA), None),
}
#: Elements the scan cannot order, and what the error says of each (as record 2 of 5).
BAD_RECORDS = {
    "no-id": ({"name": "x"}, "record 2 of 5 has no id"),
    "string-id": ({"id": "7"}, 'record 2 of 5 has the id "7", not an integer'),
    "null": (None, "record 2 of 5 is null, not an object"),
    "number": (7, "record 2 of 5 is a number, not an object"),
}


@pytest.mark.parametrize("decoding", DECODINGS)
@pytest.mark.parametrize(("element", "problem"), BAD_RECORDS.values(), ids=BAD_RECORDS)
def test_a_record_the_scan_cannot_order_is_one_clear_error_naming_its_page(
    element: t.Any, problem: str, decoding: str
) -> None:
    coupa = Collection(range(1, 21))
    bad = [{"id": 5}, element, {"id": 7}, {"id": 8}, {"id": 9}]
    coupa.before = lambda q: httpx.Response(200, json=bad) if at_offset(4)(q) else None
    scan = make_scan(coupa, transform=rawjson.decode_ids, raw=DECODINGS[decoding])
    got: list[int] = []
    with pytest.raises(CoupaAPIError) as failure:
        got.extend(record["id"] for record in scan)
    assert got == [1, 2, 3, 4, 5], "nothing past the page before"
    assert scan.last_id == 5, "a resume starts right after the last record delivered"
    assert [q["offset"] for q in coupa.pages()].count("4") == 1, "not retried: same answer"
    message = str(failure.value)
    assert "\n" not in message
    for part in ("'invoices'", "/api/invoices at offset=4:", problem, "base_url"):
        assert part in message, message

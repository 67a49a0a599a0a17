"""Concurrent, gap-free extraction of one Coupa collection.

Why it is gap-free while Coupa data changes under the sync:

* Every scan is ordered by ``id``, which never changes, under a fixed filter (the
  ``updated_at[gt_or_eq]`` bookmark, plus the user's filters). An update can only
  raise ``updated-at``, so a record that matched the filter keeps matching it; an
  insert gets a higher id. Only deletes, and records newly entering the filter, move
  other records to different offsets.
* Offset pages are fetched concurrently and consumed in order. Each page starts one
  record before the previous page ended (see ``CoupaOffsetPaginator``), so two
  consecutive pages share a record when nothing moved. If the next page instead
  starts *after* the previous page's last id, records may have shifted into the gap:
  the gap is re-read with an id-bounded keyset query (``id[gt]=a&id[lt]=b``), which
  offsets cannot disturb. An empty page after a full one is the same case with no
  upper bound.
* A page shorter than ``limit`` is the end only if the server has shown it serves more
  per page (an earlier page of the scan held more records, or a page of an earlier
  sync of the stream: the paginator starts from that proof, kept in state), so it
  stopped because the records did. Otherwise the endpoint may cap ``limit`` silently,
  and the scan goes on above the last id emitted (``id[gt]=<last id>``): an empty
  answer ends it, and a page that stops at the same length again makes that length
  the page size. An empty answer (``[]`` or Coupa's 404 "no results") is always the
  end, after the gap check above. The price: a stream's first sync, if its only page
  is short (a small stream), costs one more request, ``id[gt]=<last id>``; later syncs
  know from state what the endpoint serves, so a short incremental page costs none.
  Sharing what one stream's full page proved with other streams would save the first
  request too, but would lose records behind an endpoint that caps alone; any page of
  0 or ``limit`` records costs nothing extra.
* A 404 other than "no results" is never read as the end once the scan has begun: it
  is retried, then fails (only the scan's first request may meet a missing resource).
* Records are emitted in strictly increasing id order (the overlap record is not
  emitted twice), so "every matching record with id <= last emitted id has been
  emitted" holds at every point. That id is the checkpoint a resume continues from.

Memory stays bounded: at most ``max_in_flight`` pages are in flight or downloaded and
waiting for the scan at once, whatever the collection's length; pages the scan has
read wait in the stream's feed, bounded there (see ``feed``).
"""

from __future__ import annotations

import functools
import sys
import typing as t
from concurrent.futures import Future
from dataclasses import dataclass

import msgspec

from tap_coupa import rawjson
from tap_coupa.errors import CoupaAPIError
from tap_coupa.http import Page, Params, RequestStats, logger, parse_records
from tap_coupa.pagination import CoupaOffsetPaginator
from tap_coupa.rawjson import Record

if t.TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

    from tap_coupa.http import CoupaHTTP

Transform = t.Callable[[list[Record]], list[Record]]
#: A collection with a record this many pages in is "long": all slots go to it.
PROBE_PAGES = 20


class _Window:
    """How many pages to keep in flight.

    It starts at one page, so a small or empty collection costs one request, and grows
    by one per full page (doubling every round trip). Once the collection looks long
    (a probe finds a record ``PROBE_PAGES`` pages in) it opens fully; waiting for
    growth alone would spend seconds at a fraction of the rate limit. When downloads
    outpace emitting (a fast instance, no rate limit), it shrinks one page at a time
    down to ``READY_AHEAD``: more requests in flight would only hold memory and
    compete with the emitting thread for the interpreter.
    """

    def __init__(self, maximum: int, start_probe: Callable[[], Future[Page]]) -> None:
        self.maximum = maximum
        self._size = 1
        self._start_probe = start_probe
        self._probe: Future[Page] | None = None
        self._probed = maximum <= 1
        #: The probe found a record ``PROBE_PAGES`` pages in.
        self.long = False

    def probe(self) -> None:
        """Send the probe (once)."""
        if not self._probed:
            self._probed = True
            self._probe = self._start_probe()

    def grow(self) -> None:
        """A full page arrived: there is more, perhaps much more."""
        self._size = min(self.maximum, self._size + 1)
        self.probe()

    def shrink(self) -> None:
        """Pages wait to be emitted: fewer requests in flight will do."""
        self._size = max(min(self.maximum, READY_AHEAD), self._size - 1)

    def size(self) -> int:
        """The current window, opened fully once the probe found a record."""
        probe = self._probe
        if probe is not None and probe.done():
            self._probe = None
            if not probe.cancelled() and probe.exception() is None and probe.result().records:
                self._size = self.maximum
                self.long = True
        return self._size

    def cancel(self) -> None:
        """Drop the probe if the scan ends first."""
        if self._probe is not None:
            self._probe.cancel()


class Requests(t.Protocol):
    """Where a scan's requests are sent (``scheduler.Scheduler``)."""

    def submit(
        self,
        stream: str,
        fn: Callable[[], Page],
        *,
        speculative: bool = False,
        wanted: Callable[[], bool] | None = None,
    ) -> Future[Page]:
        """Queue one request."""

    def promote(self, future: Future[Page]) -> None:
        """A queued speculative request turned out to be needed."""


@dataclass
class Batch:
    """The records one page adds to the scan, and the bytes the page weighs."""

    records: list[Record]
    size: int


class PageSource:
    """Fetches decoded, transformed pages of one stream through the shared scheduler."""

    def __init__(
        self,
        http: CoupaHTTP,
        requests: Requests,
        *,
        stream: str,
        path: str,
        scope: str,
        transform: Transform,
        raw: rawjson.Decoding = False,
    ) -> None:
        self.http = http
        self.requests = requests
        self.stream = stream
        self.path = path
        self.scope = scope
        self.transform = transform
        #: Decode records one level deep, or with the stream's reader (see ``rawjson``).
        self.raw = raw
        self.stats = RequestStats()

    def fetch(self, params: Params, *, missing_ok: bool = False) -> Page:
        """Fetch and decode one page the scan needs now (``missing_ok``: see ``CoupaHTTP``)."""
        future = self.requests.submit(
            self.stream, functools.partial(self._get, params, decode=True, missing_ok=missing_ok)
        )
        page = future.result()
        page.records = self._transform(page.records, params)
        return page

    def probe(self, params: Params) -> Future[Page]:
        """A speculative one-record request (decoded as it lands); any 404 reads as empty."""
        return self.requests.submit(
            self.stream,
            functools.partial(self._get, params, decode=True, missing_ok=True),
            speculative=True,
        )

    def _get(
        self,
        params: Params,
        *,
        decode: bool,
        missing_ok: bool,
        cancelled: t.Callable[[], bool] | None = None,
    ) -> Page:
        return self.http.get(
            self.path,
            params,
            stream=self.stream,
            scope=self.scope,
            stats=self.stats,
            decode=decode,
            raw=self.raw,
            missing_ok=missing_ok,
            cancelled=cancelled,
        )

    def submit(
        self,
        params: Params,
        cancelled: t.Callable[[], bool],
        *,
        speculative: bool,
        missing_ok: bool = False,
    ) -> Future[Page]:
        """Download one page, undecoded; it is dropped unsent once ``cancelled()``."""
        return self.requests.submit(
            self.stream,
            functools.partial(
                self._get, params, decode=False, missing_ok=missing_ok, cancelled=cancelled
            ),
            speculative=speculative,
            wanted=lambda: not cancelled(),
        )

    def promote(self, future: Future[Page]) -> None:
        """A page requested speculatively turned out to be needed."""
        self.requests.promote(future)

    def result(self, future: Future[Page], params: Params) -> Page:
        """Decode a downloaded page; JSON that turns out broken is fetched again."""
        page = future.result()
        if page.body is not None:
            try:
                records = parse_records(page.body, stream=self.stream, path=self.path, raw=self.raw)
            except msgspec.DecodeError as exc:
                logger.warning(
                    "Stream %r: refetching a page with broken JSON (%s).", self.stream, exc
                )
                return self.fetch(params)
            page.body = None
            page.records = self._transform(records, params)
        return page

    def _transform(self, records: list[Record], params: Params) -> list[Record]:
        """The page's records as the scan reads them; one it cannot read fails the sync.

        Retrying would not help: Coupa answers a query with the same records again.
        """
        try:
            return self.transform(records)
        except rawjson.BadRecordError as exc:
            query = dict(params)
            page = ", ".join(
                f"{key}={query[key]}" for key in ("offset", "id[gt]", "id[lt]") if key in query
            )
            msg = (
                f"Stream {self.stream!r}: the page of /api/{self.path} at {page}: {exc}. "
                "The tap reads Coupa's records as objects with an integer id: check that "
                "base_url reaches the instance directly, and rerun (state resumes from the "
                "last record written)."
            )
            raise CoupaAPIError(msg) from None


#: Downloaded pages waiting for the emitting thread that show downloads outpace it.
READY_AHEAD = 4


def _consumer_behind(pending: dict[int, tuple[Params, Future[Page]]]) -> bool:
    """Whether ``READY_AHEAD`` launched pages are downloaded and waiting."""
    ready = 0
    for _, future in pending.values():
        if future.done():
            ready += 1
            if ready >= READY_AHEAD:
                return True
    return False


class _Ends:
    """The first page of one run of offset pages seen empty: none past it is requested."""

    def __init__(self) -> None:
        self.first = sys.maxsize

    def past(self, index: int) -> bool:
        """Whether page ``index`` lies beyond a page already seen empty."""
        return index > self.first

    def note(self, index: int, future: Future[Page]) -> None:
        """An empty page marks the end: stop speculating past it before it is consumed.

        (Only launching stops; consumption still checks every boundary in order.)
        """
        if future.cancelled() or future.exception() is not None:
            return
        page = future.result()
        if page.skipped:
            return
        empty = page.body is not None and page.body.strip() == b"[]"
        if page.not_found or empty:
            self.first = min(self.first, index)


class IdScan:
    """One id-ordered scan of a filtered collection, resumable after ``after_id``."""

    def __init__(
        self,
        source: PageSource,
        paginator: CoupaOffsetPaginator,
        *,
        params: Params,
        max_in_flight: int,
        after_id: int | None = None,
        since: str | None = None,
        on_page: Callable[[Page], None] | None = None,
        missing_ok: bool = True,
    ) -> None:
        """Set up the scan; nothing is requested until it is iterated.

        ``missing_ok``: whether the first request may find the resource missing (a 404
        that is not Coupa's "no results", read as an empty collection).
        """
        self.source = source
        self.paginator = paginator
        self.since = since
        self.params = list(params)
        self.max_in_flight = max(1, max_in_flight)
        self.base_id = after_id
        self.last_id = after_id
        self.on_page = on_page
        self._opened = not missing_ok

    def _params(
        self, *, offset: int, above: int | None, below: int | None, limit: int | None = None
    ) -> list[tuple[str, str]]:
        params = [*self.params, ("order_by", "id"), ("dir", "asc")]
        if above is not None:
            params.append(("id[gt]", str(above)))
        if below is not None:
            params.append(("id[lt]", str(below)))
        params += [("limit", str(limit or self.paginator.page_size)), ("offset", str(offset))]
        return params

    def _opening(self) -> bool:
        """Whether this is the scan's first request: the only one a missing resource may 404.

        Later, records have been seen, so a 404 that is not Coupa's "no results" answer is
        a failure (retried, then raised), never the end of the collection.
        """
        first, self._opened = not self._opened, True
        return first

    def _emit(self, page: Page) -> Batch:
        """The page's records not emitted yet (the overlap record was), in id order.

        A page out of id order fails: skipping the ids at or below the last one emitted
        would drop the records a server ignoring ``order_by=id`` sent after a higher id.
        """
        if self.on_page is not None:
            self.on_page(page)
        last = self.last_id
        records = []
        for record in page.records:
            record_id = record["id"]
            if last is None or record_id > last:
                last = record_id
                records.append(record)
            elif records and record_id < last:
                self._out_of_order(record_id, last)
        self.last_id = last
        return Batch(records, page.size)

    def _out_of_order(self, record_id: int, after: int) -> t.NoReturn:
        msg = (
            f"Stream {self.source.stream!r}: /api/{self.source.path} sent id {record_id} "
            f"after id {after} in one page; the tap needs Coupa's order_by=id: check that "
            "base_url is a Coupa instance (state resumes from the last record written)."
        )
        raise CoupaAPIError(msg)

    def __iter__(self) -> Iterator[Record]:
        """Yield every matching record once, in id order."""
        for batch in self.batches():
            yield from batch.records

    def batches(self) -> Generator[Batch, None, None]:
        """Every matching record once, in id order, a page at a time.

        Offset pages run until the end is proven. A run that stops on a short page not
        proven the last (the server may cap ``limit``), or on a page repeating the one
        before (it may ignore ``offset``), is followed by another above the last id emitted,
        whose first page (``id[gt]=<last id>``) settles it.
        """
        above = self.base_id
        while True:
            if self.paginator.step == self.paginator.page_size:  # no room for an overlap
                yield from self._keyset(above, None, missing_ok=self._opening())
                return
            if (yield from self._offsets(above)):
                return
            above = self.last_id

    def _offsets(self, above: int | None) -> Generator[Batch, None, bool]:
        """Concurrent offset pages of ids above ``above``; True once the end is proven.

        False once a page is short but not proven the last, or repeats the page before
        (adds no record, and begins no later): the scan goes on above the last id emitted.

        Which pages are certainly needed: the one the scan waits for, the one after a
        full page, and those a probe found records beyond. Others are speculative: the
        scheduler sends them only with tokens no certain request wants.
        """
        pending: dict[int, tuple[Params, Future[Page]]] = {}
        launched = 0
        ends = _Ends()
        window = _Window(self.max_in_flight, functools.partial(self._probe, above))
        if self.since is None and above is None:
            window.probe()  # a backfill is usually long: ask at once, not a round trip later
        index = 0
        # Pages up to this one are certainly needed; never behind ``index``.
        certain = 0

        def certainly(upto: int) -> None:
            nonlocal certain
            if upto > certain:
                certain = upto
                for number, (_, future) in pending.items():
                    if number <= certain:
                        self.source.promote(future)

        previous_last: int | None = None
        previous_first: int | None = None
        try:
            while True:
                size = window.size()
                if window.long:
                    certainly(PROBE_PAGES)
                while launched - index < size and (launched <= ends.first or launched == index):
                    offset = self.paginator.offset(launched)
                    params = self._params(offset=offset, above=above, below=None)
                    future = self.source.submit(
                        params,
                        functools.partial(ends.past, launched),
                        speculative=launched > certain,
                        missing_ok=self._opening(),
                    )
                    future.add_done_callback(functools.partial(ends.note, launched))
                    pending[launched] = (params, future)
                    launched += 1
                page_params, future = pending.pop(index)
                self.source.promote(future)
                page = self.source.result(future, page_params)
                self._check_above(page, above)
                records = page.records
                if previous_last is not None and (not records or records[0]["id"] > previous_last):
                    upper = records[0]["id"] if records else None
                    yield from self._keyset(previous_last, upper)
                    if not records:
                        return True
                batch = self._emit(page)
                # Nothing new, from where the page before began: the offset did not move
                # on (ignored, or capped), and the next would not either; id[gt] does.
                stuck = (
                    previous_first is not None
                    and not batch.records
                    and records[0]["id"] <= previous_first
                )
                yield batch
                self.paginator.advance(page)
                if self.paginator.finished:
                    return True
                if self.paginator.unproven or stuck:
                    return False
                previous_first = records[0]["id"]
                previous_last = records[-1]["id"]
                index += 1
                certainly(index)
                if _consumer_behind(pending):
                    window.shrink()
                else:
                    window.grow()
        finally:
            window.cancel()
            for _, future in pending.values():
                future.cancel()

    def _probe(self, above: int | None) -> Future[Page]:
        """Ask for one record far ahead, to learn whether the collection is long.

        Its answer is only a hint, so a missing resource may answer it with a 404.
        """
        offset = self.paginator.offset(PROBE_PAGES)
        return self.source.probe(self._params(offset=offset, above=above, below=None, limit=1))

    def _keyset(
        self, above: int | None, below: int | None, *, missing_ok: bool = False
    ) -> Generator[Batch, None, None]:
        """Read ids in (above, below) page by page with id cursors: immune to shifting."""
        while True:
            page = self.source.fetch(
                self._params(offset=0, above=above, below=below), missing_ok=missing_ok
            )
            self._check_above(page, above)
            yield self._emit(page)
            if not self.paginator.has_more(page):
                return
            above = page.records[-1]["id"]
            missing_ok = False

    def _check_above(self, page: Page, above: int | None) -> None:
        """Refuse a page asked for ids above ``above`` that holds one at or below it.

        Every repair and end check rests on ``id[gt]``: a server that ignores it would
        be asked for the same records again and again.
        """
        if above is not None and page.records and page.records[0]["id"] <= above:
            msg = (
                f"Stream {self.source.stream!r}: /api/{self.source.path} answered "
                f"id[gt]={above} with id {page.records[0]['id']}; the tap needs Coupa's "
                "id[gt]/id[lt] filters and order_by=id: check that base_url is a Coupa instance."
            )
            raise CoupaAPIError(msg)

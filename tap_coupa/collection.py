"""A top-level Coupa collection (``GET /api/<path>``): scanned, checkpointed, bookmarked.

The scan itself (id-ordered, concurrent, gap-free) is ``engine.IdScan``; the state it
resumes from and the bookmark it leaves are ``state.StreamState``'s. This class runs
the one on the other and emits the records.
"""

from __future__ import annotations

import functools
import logging
import time
import typing as t

import pendulum
from singer_sdk.singerlib.catalog import REPLICATION_FULL_TABLE
from typing_extensions import override

from tap_coupa import rawjson
from tap_coupa.client import CoupaStream
from tap_coupa.deletes import DeleteCheck, deleted_record
from tap_coupa.engine import IdScan, PageSource
from tap_coupa.errors import CoupaAPIError
from tap_coupa.feed import Feed
from tap_coupa.http import is_no_results
from tap_coupa.idruns import IdRuns
from tap_coupa.instants import InstantMax
from tap_coupa.query import query_key
from tap_coupa.shape import EXTRA_FIELDS
from tap_coupa.state import Progress, ScanClock, StreamState
from tap_coupa.trimmed import TrimmedResponses

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk.helpers.types import Context

    from tap_coupa.http import Page
    from tap_coupa.rawjson import Record

#: Write a resumable STATE at least this often while a scan runs.
CHECKPOINT_RECORDS = 500
CHECKPOINT_SECONDS = 10.0


class CollectionStream(CoupaStream):
    """One Coupa collection, read by an ``IdScan`` that resumes from state."""

    _source: PageSource | None = None
    _started: tuple[IdScan, Feed, _Run] | None = None
    #: Where the records keep their own id, if not at the top (see ``rawjson.lift_keys``).
    key_object: rawjson.KeyObject | None = None

    @classmethod
    @override
    def lists_ids(cls) -> bool:
        """A collection can, unless its ids live inside its records (``key_object``)."""
        return cls.key_object is None

    def _page_source(self) -> PageSource:
        if self._source is None:
            reader = None if self.key_object else self.passthrough
            self._source = self._new_source(raw=reader or self.raw_json)
        return self._source

    def _new_source(self, *, raw: rawjson.Decoding) -> PageSource:
        return PageSource(
            self.resources.http,
            self.resources.scheduler,
            stream=self.name,
            path=self.path,
            scope=self.scope,
            transform=functools.partial(rawjson.lift_keys, spec=self.key_object)
            if self.key_object
            else rawjson.decode_ids,
            raw=raw,
        )

    def _scan(self, progress: Progress | None, on_page: t.Callable[[Page], None] | None) -> IdScan:
        """The scan this sync needs: resumed from ``progress``, or from the bookmark."""
        settings = self.resources.settings
        state = self._state(None)
        if progress is None and not state.covers(self.emits):
            self.logger.info(
                "Stream %r: reading from start_date: the bookmark was left by a sync "
                "that did not emit all of %s.",
                self.name,
                sorted(self.emits),
            )
        since = (
            progress.since
            if progress
            else state.since(settings.start_date, self._lookback(), self.emits)
        )
        required = ["id", *([self.replication_key] if self.replication_key else [])]
        params = self.resources.params(
            self.name, required, path=self.path, projection=self.projection
        )
        if since is not None and self.replication_key:
            params.append((f"{query_key(self.replication_key)}[gt_or_eq]", since))
        paginator = self.get_new_paginator()
        paginator.most = state.served_per_page
        return IdScan(
            self._page_source(),
            paginator,
            params=params,
            max_in_flight=self.resources.settings.max_concurrency,
            after_id=progress.after_id if progress else None,
            since=since,
            on_page=on_page,
        )

    def _lookback(self) -> pendulum.Duration:
        """The longest lookback_window of the streams this scan reads for.

        A child's rows come from its parent's scan: its own window (``stream_options``)
        can only be honoured there.
        """
        settings = self.resources.settings
        return max(settings.lookback(name) for name in {self.name, *self.emits})

    def _family(self) -> Iterator[CoupaStream]:
        """The stream itself and every stream under it (children, grandchildren)."""
        streams: list[CoupaStream] = [self]
        while streams:
            stream = streams.pop()
            yield stream
            streams.extend(t.cast("list[CoupaStream]", stream.child_streams))

    @functools.cached_property
    def emits(self) -> frozenset[str]:
        """The selected streams this collection's scan emits: its own and its children's.

        A child's rows come from its parent's records, so what the scan reads, and
        the bookmark it leaves, is theirs too (see ``state``: ``streams``).
        """
        return frozenset(stream.name for stream in self._family() if stream.selected)

    def _state(self, context: Context | None) -> StreamState:
        """The stream's state, read and written by the rules of its replication method.

        A selected child forced to FULL_TABLE makes the scan full: its rows come from it.
        """
        full_table = any(
            stream.replication_method == REPLICATION_FULL_TABLE
            for stream in self._family()
            if stream is self or stream.name in self.emits
        )
        return StreamState(
            self.get_context_state(context), self.replication_key, full_table=full_table
        )

    def start(self) -> None:
        """Start the scan now, ahead of the stream's turn (see ``feed``)."""
        if self._started is None:
            self._started = self._start()

    def _start(self) -> tuple[IdScan, Feed, _Run]:
        progress = self._state(None).progress
        if progress is not None and not progress.covers(self.emits):
            self.logger.info(
                "Stream %r: not resuming the interrupted scan: it did not emit all of %s.",
                self.name,
                sorted(self.emits),
            )
            progress = None
        if progress is not None and self._replaces_table():
            self.logger.info(
                "Stream %r: not resuming the interrupted scan: this FULL_TABLE sync sends "
                "ACTIVATE_VERSION, and the target keeps only the records this run emits.",
                self.name,
            )
            progress = None
        run = _Run(ScanClock(resumed=progress.started_at if progress else None), None)
        scan = self._scan(progress, run.on_page)
        if not {"fields", "return_object"} & {key for key, _ in scan.params}:
            declared = set(self.schema["properties"]) - {EXTRA_FIELDS}
            run.sample = TrimmedResponses(self.name, declared, self.logger)
        feed = Feed(self.name, scan.batches(), self.resources.scheduler.budget)
        feed.start()
        return scan, feed, run

    def _replaces_table(self) -> bool:
        """Whether this run's records replace the stream's table in the target.

        The SDK sends a new ACTIVATE_VERSION as a selected FULL_TABLE stream starts: a
        target then drops every row of an earlier version, so an interrupted scan's
        rows must be emitted again, not resumed after.
        """
        return (
            self.selected
            and self.replication_method == REPLICATION_FULL_TABLE
            and self.emit_activate_version_messages
        )

    @override
    def get_records(self, context: Context | None) -> Iterable[Record]:
        """Write the scan's records, checkpointing ``progress``; end with the bookmark."""
        state = self._state(context)
        self.prepare_children()
        self.resources.freeze_heap()
        scan, feed, run = self._started or self._start()
        self._started = None
        self.resources.writing(self)
        if scan.base_id is not None:
            self.logger.info("Resuming %r after id %s.", self.name, scan.base_id)
        deletes = self.lists_ids() and self.resources.settings.detects_deletes(self.name)
        emitted = IdRuns()
        latest = InstantMax()
        key = self.replication_key
        shape = self.shaper.shape
        started = time.monotonic()
        cpu_started = time.process_time()
        checkpoint_at = started + CHECKPOINT_SECONDS
        count = 0
        #: The last id written: what a resume continues after (the scan reads ahead of it).
        last_id = scan.base_id
        for record in feed:
            shape(record)
            last_id = record["id"]
            if key:
                latest.observe(record.get(key))
            if deletes:
                emitted.append(last_id)
            yield record
            count += 1
            if count % CHECKPOINT_RECORDS == 0 or time.monotonic() >= checkpoint_at:
                if deletes:  # a resumed scan does not emit them again
                    state.deletes.add_emitted(emitted)
                    emitted = IdRuns()
                state.save_progress(
                    Progress(
                        scan.since, last_id, run.clock.started_text(), tuple(sorted(self.emits))
                    )
                )
                self._checkpoint()
                checkpoint_at = time.monotonic() + CHECKPOINT_SECONDS
                self._log_progress(scan.source, count, started, cpu_started, done=False)
        self.logger.info("Stream %r: %s.", self.name, self.resources.scheduler.budget.summary())
        if run.sample is not None:
            run.sample.finish()
        if count == 0 and run.not_found:
            self._log_not_found(run.not_found)
        margin = self.resources.settings.bookmark_safety_margin
        if state.finish(self._latest(latest), run.clock.started_at(), margin, self.emits):
            self.state_manager.is_flushed = False
        state.saw_pages_of(scan.paginator.most)
        self._log_progress(scan.source, count, started, cpu_started, done=True)
        self.log_passed()
        self.log_children()
        if deletes:
            yield from self._deletions(state, emitted)

    def _latest(self, latest: InstantMax) -> pendulum.DateTime | None:
        """The bookmark's candidate; a replication-key value no date-time fails the stream."""
        try:
            return latest.latest()
        except ValueError as exc:
            msg = (
                f"Stream {self.name!r}: a record's {self.replication_key} {exc}, so the "
                "bookmark cannot advance (the records were written; the state keeps the "
                "bookmark it had): check that base_url is a Coupa instance."
            )
            raise CoupaAPIError(msg) from None

    def _deletions(self, state: StreamState, emitted: IdRuns) -> Iterator[Record]:
        """Records for the ids gone since the last listing, when a listing is due."""
        check = state.deletes
        check.add_emitted(emitted)
        self.state_manager.is_flushed = False
        if not check.due(pendulum.now("UTC"), self.resources.settings.delete_check_interval):
            return
        self._checkpoint()  # the bookmark first: a listing killed later resumes on its own
        found = DeleteCheck(self.name, check, self._listing, self._checkpoint)
        when = pendulum.now("UTC").isoformat()
        for record_id in found.deleted_ids():
            yield deleted_record(record_id, when)
        self.state_manager.is_flushed = False

    def _listing(self, after_id: int | None) -> IdScan:
        """A scan of the stream's ids only, resuming after ``after_id``.

        No 404 but Coupa's "no results" reads as an empty collection here: every id
        the listing misses is reported deleted, so a proxy's or a maintenance page's
        404 is retried, then fails the sync, as any other failure does.
        """
        return IdScan(
            self._new_source(raw=True),
            self.get_new_paginator(),
            params=self.resources.listing_params(self.name, self.replication_key),
            max_in_flight=self.resources.settings.max_concurrency,
            after_id=after_id,
            missing_ok=False,
        )

    def _checkpoint(self) -> None:
        """Emit STATE now (the SDK only does so every 10,000 records)."""
        self.state_manager.is_flushed = False
        self._write_state_message()

    def _log_not_found(self, answer: str) -> None:
        """Log Coupa's 404: 'no results' is routine, any other may mean a missing resource."""
        routine = is_no_results(answer)
        self.logger.log(
            logging.INFO if routine else logging.WARNING,
            "Stream %r: Coupa answered 404 (%s)%s.",
            self.name,
            answer,
            ""
            if routine
            else ": if records were expected, check base_url and that the "
            "resource is enabled on the instance",
        )

    def _log_progress(
        self, source: PageSource, count: int, started: float, cpu_started: float, *, done: bool
    ) -> None:
        """Counts, time, and the process's CPU time meanwhile (all threads)."""
        stats = source.stats
        self.logger.info(
            "Stream %r: %d records%s, %d requests, %d retries, %d throttled (429) "
            "in %.1fs, %.2fs CPU.",
            self.name,
            count,
            "" if done else " so far",
            stats.requests,
            stats.retries,
            stats.throttled,
            time.monotonic() - started,
            time.process_time() - cpu_started,
        )


class _Run:
    """One sync's scan of a stream and what it observes page by page.

    The server's clock, a 404's answer and responses trimmed by a default filter are
    observed on the scan's thread, and read once the stream has written its records,
    when that thread is done.
    """

    def __init__(self, clock: ScanClock, sample: TrimmedResponses | None) -> None:
        self.clock = clock
        self.sample = sample
        self.not_found = ""

    def on_page(self, page: Page) -> None:
        self.clock.observe(page.server_time)
        self.not_found = page.not_found or self.not_found
        if self.sample is not None:
            self.sample.observe(page.records)

"""A top-level Coupa collection (``GET /api/<path>``): scanned, checkpointed, bookmarked.

The scan itself (id-ordered, concurrent, gap-free) is ``engine.IdScan``; the state it
resumes from and the bookmark it leaves are ``state.StreamState``'s. This class runs
the one on the other and emits the records.
"""

from __future__ import annotations

import logging
import time
import typing as t

from typing_extensions import override

from tap_coupa import rawjson
from tap_coupa.client import CoupaStream
from tap_coupa.engine import IdScan, PageSource
from tap_coupa.instants import InstantMax
from tap_coupa.query import query_key
from tap_coupa.shape import EXTRA_FIELDS
from tap_coupa.state import Progress, ScanClock, StreamState
from tap_coupa.trimmed import TrimmedResponses

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context

    from tap_coupa.http import Page
    from tap_coupa.rawjson import Record

#: Write a resumable STATE at least this often while a scan runs.
CHECKPOINT_RECORDS = 500
CHECKPOINT_SECONDS = 10.0


class CollectionStream(CoupaStream):
    """One Coupa collection, read by an ``IdScan`` that resumes from state."""

    _source: PageSource | None = None

    def _page_source(self) -> PageSource:
        if self._source is None:
            resources = self.resources
            self._source = PageSource(
                resources.http,
                resources.executor,
                stream=self.name,
                path=self.path,
                scope=self.scope,
                transform=rawjson.decode_ids,
                raw=self.raw_json,
            )
        return self._source

    def _scan(self, progress: Progress | None, on_page: t.Callable[[Page], None] | None) -> IdScan:
        """The scan this sync needs: resumed from ``progress``, or from the bookmark."""
        state = StreamState(self.get_context_state(None), self.replication_key)
        since = progress.since if progress else state.since(self.resources.settings.start_date)
        required = ["id", *([self.replication_key] if self.replication_key else [])]
        params = self.resources.params(
            self.name, required, path=self.path, projection=self.projection
        )
        if since is not None and self.replication_key:
            params.append((f"{query_key(self.replication_key)}[gt_or_eq]", since))
        return IdScan(
            self._page_source(),
            self.get_new_paginator(),
            params=params,
            max_in_flight=self.resources.settings.max_concurrency,
            after_id=progress.after_id if progress else None,
            since=since,
            on_page=on_page,
        )

    def prefetch(self) -> None:
        """Request the first page now: many small streams then cost no round trip each."""
        if self._source is None or self._source.ready is None:
            state = StreamState(self.get_context_state(None), self.replication_key)
            self._scan(state.progress, None).prefetch()

    @override
    def get_records(self, context: Context | None) -> Iterable[Record]:
        """Scan the collection, checkpointing ``progress`` and ending with the bookmark."""
        state = StreamState(self.get_context_state(context), self.replication_key)
        self.prepare_children()
        self.resources.freeze_heap()
        self.resources.prefetch_after(self)
        progress = state.progress
        clock = ScanClock(resumed=progress.started_at if progress else None)
        not_found = ""

        sample: TrimmedResponses | None = None

        def on_page(page: Page) -> None:
            nonlocal not_found
            clock.observe(page.server_time)
            not_found = page.not_found or not_found
            if sample is not None:
                sample.observe(page.records)

        scan = self._scan(progress, on_page)
        if not {"fields", "return_object"} & {key for key, _ in scan.params}:
            declared = set(self.schema["properties"]) - {EXTRA_FIELDS}
            sample = TrimmedResponses(self.name, declared, self.logger)
        if scan.base_id is not None:
            self.logger.info("Resuming %r after id %s.", self.name, scan.base_id)
        latest = InstantMax()
        key = self.replication_key
        shape = self.shaper.shape
        started = time.monotonic()
        cpu_started = time.process_time()
        checkpoint_at = started + CHECKPOINT_SECONDS
        count = 0
        for record in scan:
            shape(record)
            if key:
                latest.observe(record.get(key))
            yield record
            count += 1
            if count % CHECKPOINT_RECORDS == 0 or time.monotonic() >= checkpoint_at:
                state.save_progress(Progress(scan.since, scan.last_id, clock.started_text()))
                self._checkpoint()
                checkpoint_at = time.monotonic() + CHECKPOINT_SECONDS
                self._log_progress(scan.source, count, started, cpu_started, done=False)
        if sample is not None:
            sample.finish()
        if count == 0 and not_found:
            self._log_not_found(not_found)
        margin = self.resources.settings.bookmark_safety_margin
        if state.finish(latest.latest(), clock.started_at(), margin):
            self.state_manager.is_flushed = False
        self._log_progress(scan.source, count, started, cpu_started, done=True)
        self.log_children()

    def _checkpoint(self) -> None:
        """Emit STATE now (the SDK only does so every 10,000 records)."""
        self.state_manager.is_flushed = False
        self._write_state_message()

    def _log_not_found(self, answer: str) -> None:
        """Log Coupa's 404: 'no results' is routine, any other may mean a missing resource."""
        routine = "no results" in answer.lower()
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

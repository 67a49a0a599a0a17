"""The base Coupa stream: what every collection shares, so a resource is only data.

Streams are declared in ``streams.py`` from the generated registry; this class turns
a declaration into an id-ordered, concurrent, resumable scan (``engine.IdScan``) and
owns the bookmark, because Coupa's offsets make the SDK's defaults unsafe:

* The bookmark is an instant, compared with pendulum, never as a string: Coupa's
  offsets change with daylight saving.
* A scan is ordered by id, not by ``updated-at``, so its bookmark only moves when
  the scan completes, and then no further than the instance's clock when the scan
  began: a record changed during the scan, in a part already read, is still
  ``>=`` the new bookmark and is picked up by the next sync.
* Mid-scan, the state carries ``progress`` (the filter in use, the last id emitted,
  the scan's start), so an interrupted sync resumes where it stopped rather than from
  zero, and the finished scan still bounds its bookmark by the first run's start.
"""

from __future__ import annotations

import functools
import logging
import time
import typing as t

import pendulum
from singer_sdk import singerlib as singer
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.streams import RESTStream

from tap_coupa import rawjson
from tap_coupa.decimals import DecimalPlan, with_sizes
from tap_coupa.engine import IdScan, PageSource
from tap_coupa.records import (
    InstantMax,
    PrunePlan,
    Record,
    compile_prune,
    parse_instant,
    prune,
)

if t.TYPE_CHECKING:
    from collections.abc import Generator, Iterable

    from singer_sdk.helpers.types import Context

    from tap_coupa.http import Page
    from tap_coupa.tap import TapCoupa

#: Write a resumable STATE at least this often while a scan runs.
CHECKPOINT_RECORDS = 500
CHECKPOINT_SECONDS = 10.0
#: Unknown properties are kept under this catch-all object rather than dropped.
EXTRA_FIELDS = "extra-fields"


def query_key(field: str) -> str:
    """Coupa query keys use underscores where JSON keys use dashes."""
    return field.replace("-", "_")


class CoupaStream(RESTStream[int]):
    """One Coupa collection (``GET /api/<path>``)."""

    path: str
    scope: str = "core.common.read"
    #: Set on child streams: the parent's array property this stream's rows come from.
    array_field: str | None = None
    #: Set on child streams: the property carrying the parent record's id.
    parent_key: str | None = None

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE  # records.py conforms types
    is_sorted = False

    def __init__(self, tap: TapCoupa, schema: dict[str, t.Any]) -> None:
        super().__init__(tap=tap, schema=schema)
        self.coupa: TapCoupa = tap
        self._decimals = DecimalPlan.compile(self.schema, as_text=tap.decimal_strings)
        #: What ``shape`` converts: all of ``_decimals``, less what a parent converted.
        self._convert = self._decimals
        self._known = frozenset(self.schema["properties"])
        self._reported: set[str] = set()
        #: Values ``shape`` found not to be decimals, reported after each record.
        self._bad: set[str] = set()
        self._schema_sent = False
        self._children: list[CoupaStream] = []
        self._source: PageSource | None = None
        self._emitted = 0
        self._prune: PrunePlan = {}
        #: The nested properties ``shape`` changes in place (see ``_own``).
        self._changes: frozenset[str] = frozenset()

    @property
    def url_base(self) -> str:
        """The instance's ``/api`` root."""
        return self.coupa.api_base

    # Record shaping (once per record) -------------------------------------------------

    @functools.cached_property
    def raw_json(self) -> bool:
        """Whether records may keep raw JSON values (see ``rawjson``).

        Only when nothing but the writer reads them: stream maps, flattening and BATCH
        files need every value decoded.
        """
        return self.get_batch_config(self.config) is None and all(
            type(stream_map) is SameRecordTransform and not stream_map.flattening_enabled
            for stream_map in self.stream_maps
        )

    @staticmethod
    def decode_ids(records: list[Record]) -> list[Record]:
        """Decode each record's id, which the scan compares (once per page)."""
        for record in records:
            if (value := record.get("id")).__class__ is rawjson.Raw:
                record["id"] = rawjson.value(value)
        return records

    def shape(self, record: Record) -> Record:
        """Convert decimals and keep unknown properties under ``extra-fields``.

        Done record by record as each is emitted, not page by page: the record's
        objects are then still in the CPU cache when the writer encodes them.
        """
        key = self.replication_key
        if key and (value := record.get(key)).__class__ is rawjson.Raw:
            record[key] = rawjson.value(value)
        if self._convert is not None:
            bad = self._bad
            self._convert.apply(record, bad)
            if bad:
                self._report("not a decimal; emitted as null", bad)
                bad.clear()
        if not record.keys() <= self._known:  # compared in place (issuperset copies)
            extra = {name: record.pop(name) for name in list(record) if name not in self._known}
            record[EXTRA_FIELDS] = extra
            self._report("kept under 'extra-fields'", extra)
        if self._prune:
            prune(record, self._prune)
        return record

    def _report(self, what: str, names: t.Iterable[str]) -> None:
        new = sorted(set(names) - self._reported)
        if new:
            self._reported.update(new)
            self.logger.warning("Stream %r: fields %s: %s", self.name, what, ", ".join(new))

    # Sync ---------------------------------------------------------------------------

    def _scan(self, on_page: t.Callable[[Page], None] | None = None) -> IdScan:
        """The scan this sync needs: resumed from ``progress``, or from the bookmark."""
        state = self.get_context_state(None)
        progress: dict[str, t.Any] = state.get("progress") or {}  # validated by the tap
        since = progress["since"] if progress else self._since(state)
        required = ["id", *([self.replication_key] if self.replication_key else [])]
        params = list(self.coupa.stream_params(self.name, required))
        if since is not None and self.replication_key:
            params.append((f"{query_key(self.replication_key)}[gt_or_eq]", since))
        if self._source is None:
            self._source = PageSource(
                self.coupa.http,
                self.coupa.executor,
                stream=self.name,
                path=self.path,
                scope=self.scope,
                transform=self.decode_ids,
                raw=self.raw_json,
            )
        return IdScan(
            self._source,
            params=params,
            page_size=self.coupa.page_size,
            max_in_flight=self.coupa.max_concurrency,
            after_id=progress.get("after_id"),
            since=since,
            resumed_started_at=progress.get("started_at"),
            on_page=on_page,
        )

    def prefetch(self) -> None:
        """Request the first page now: many small streams then cost no round trip each."""
        if self._source is None or self._source.ready is None:
            self._scan().prefetch()

    def get_records(self, context: Context | None) -> Iterable[Record]:
        """Scan the collection and keep the bookmark and resume point in state."""
        state = self.get_context_state(context)
        self._prepare_children()
        self.coupa.freeze_heap()
        self.coupa.prefetch_after(self)
        clock = _ScanClock()
        scan = self._scan(on_page=clock.observe)
        clock.resumed = scan.resumed_started_at
        if scan.base_id is not None:
            self.logger.info("Resuming %r after id %s.", self.name, scan.base_id)
        latest = InstantMax()
        key = self.replication_key
        started = time.monotonic()
        cpu_started = time.process_time()
        checkpoint_at = started + CHECKPOINT_SECONDS
        count = 0
        for record in scan:
            self.shape(record)
            if key:
                latest.observe(record.get(key))
            yield record
            count += 1
            if count % CHECKPOINT_RECORDS == 0 or time.monotonic() >= checkpoint_at:
                state["progress"] = {
                    "since": scan.since,
                    "after_id": scan.last_id,
                    **clock.as_state(),
                }
                self._checkpoint()
                checkpoint_at = time.monotonic() + CHECKPOINT_SECONDS
                self._log_progress(scan.source, count, started, cpu_started, done=False)
        state.pop("progress", None)
        if count == 0 and clock.not_found:
            # "No results" is routine; any other 404 may mean the resource is missing.
            routine = "no results" in clock.not_found.lower()
            self.logger.log(
                logging.INFO if routine else logging.WARNING,
                "Stream %r: Coupa answered 404 (%s)%s.",
                self.name,
                clock.not_found,
                ""
                if routine
                else ": if records were expected, check base_url and that the "
                "resource is enabled on the instance",
            )
        self._advance_bookmark(state, latest.latest(), clock.started_at())
        self._log_progress(scan.source, count, started, cpu_started, done=True)
        self._log_children()

    def _checkpoint(self) -> None:
        """Emit STATE now (the SDK only does so every 10,000 records)."""
        self.state_manager.is_flushed = False
        self._write_state_message()

    def _advance_bookmark(
        self,
        state: dict[str, t.Any],
        latest: pendulum.DateTime | None,
        started_at: pendulum.DateTime | None,
    ) -> None:
        """Move the bookmark to min(latest value seen, instance clock at scan start)."""
        if not self.replication_key or latest is None:
            return
        value = latest if started_at is None else min(latest, started_at)
        state["replication_key"] = self.replication_key
        state["replication_key_value"] = value.in_timezone("UTC").isoformat()
        self.state_manager.is_flushed = False

    def _since(self, state: dict[str, t.Any]) -> str | None:
        """The filter start: the later of the bookmark and ``start_date``."""
        if not self.replication_key:
            return None
        candidates: list[pendulum.DateTime] = []
        bookmark = state.get("replication_key_value")
        if bookmark and state.get("replication_key") == self.replication_key:
            candidates.append(parse_instant(str(bookmark)))
        if self.coupa.start_date is not None:
            candidates.append(self.coupa.start_date)
        if not candidates:
            return None
        return max(candidates).in_timezone("UTC").isoformat()

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

    # Child streams: rows of the parent's nested arrays, emitted with no extra request

    def _prepare_children(self) -> None:
        """Find the children to feed and send their SCHEMA once, before any record."""
        self._prune = compile_prune(self.mask)
        self._children = [
            child
            for child in self.child_streams
            if isinstance(child, CoupaStream) and (child.selected or child.has_selected_descendents)
        ]
        for child in self._children:
            if child.selected and not child._schema_sent:
                child._write_schema_message()
                child._schema_sent = True
            child._emitted = 0
            # By the time a row reaches the child, this stream (or its own parent) has
            # converted everything its full plan names for that array.
            done = self._decimals.arrays.get(child.array_field or "") if self._decimals else None
            child._convert = child._decimals.without(done) if child._decimals else None
            child._prepare_children()
            child._changes = frozenset(
                [name for name, sub in child._prune.items() if sub is not None]
                + ([*child._convert.objects, *child._convert.arrays] if child._convert else [])
            )

    def _log_children(self) -> None:
        for child in self._children:
            if child.selected:
                self.logger.info(
                    "Stream %r: %d records (from %r, no extra requests).",
                    child.name,
                    child._emitted,
                    self.name,
                )
            child._log_children()

    def generate_child_contexts(
        self, record: Record, context: Context | None
    ) -> Iterable[Context | None]:
        """Children read their rows straight from the parent record (if any are wanted)."""
        if self._children:
            yield record

    def _sync_children(self, child_context: Context | None) -> None:
        """Emit each child's rows from the parent record instead of a child sync."""
        if child_context is None:
            return
        for child in self._children:
            child.emit_from(child_context)

    def _generate_schema_messages(self) -> Generator[singer.SchemaMessage, None, None]:
        """SCHEMA messages with the DECIMAL sizes that the SDK's catalog model drops."""
        for message in super()._generate_schema_messages():
            message.schema = with_sizes(message.schema, self.schema)
            yield message

    def _generate_record_messages(
        self, record: Record
    ) -> Generator[singer.RecordMessage, None, None]:
        """Build RECORD messages without re-walking the record.

        The SDK's version walks every nested object for deselected properties and type
        conformance; ``shape`` already did both with plans compiled once per stream.
        """
        time_extracted = utc_now()
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield singer.RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=time_extracted,
                )

    def _increment_stream_state(
        self, latest_record: Record, *, context: Context | None = None
    ) -> None:
        """Bookmarks are kept by ``get_records`` (instants, bounded by the scan start)."""

    def _own(self, row: Record) -> Record:
        """A copy of a parent's row that ``shape`` may change: the parent is emitted after.

        Raw values are opened into the copy; only objects the parent opened already,
        and this stream changes too, are copied deeper. Without raw JSON, all of it is.
        """
        if not self.raw_json:
            return t.cast("Record", rawjson.materialize(row))
        record = dict(row)
        for name in self._changes:
            if (value := record.get(name)).__class__ is dict or value.__class__ is list:
                record[name] = rawjson.materialize(value)
        return record

    def emit_from(self, parent: t.Mapping[str, t.Any]) -> None:
        """Emit the rows of ``parent[array_field]``, each carrying the parent's id."""
        rows = parent.get(self.array_field or "")
        if rows.__class__ is rawjson.Raw:
            rows = rawjson.open_array(rows)
        if not isinstance(rows, list):
            return
        parent_id = parent.get("id")
        if parent_id.__class__ is rawjson.Raw:
            parent_id = rawjson.value(parent_id)
        emit = self.selected
        for row in rows:
            if not isinstance(row, dict):
                continue
            record = self._own(row)
            if self.parent_key:
                record[self.parent_key] = parent_id
            self.shape(record)
            if emit:
                self._write_record_message(record)
                self._emitted += 1
            self._sync_children(record)


class _ScanClock:
    """The instance's clock when a scan began (from the first page's Date header)."""

    def __init__(self) -> None:
        self._started: float | None = None
        self.resumed: str | None = None
        self.not_found = ""
        self._local = time.time()

    def observe(self, page: Page) -> None:
        """Take the first page's server time; later pages are later still."""
        self.not_found = page.not_found or self.not_found
        if self._started is None:
            self._started = page.server_time if page.server_time is not None else self._local

    def started_at(self) -> pendulum.DateTime | None:
        """When the (first attempt of the) scan began, if known."""
        if self.resumed:
            return parse_instant(self.resumed)
        if self._started is None:
            return None
        return pendulum.from_timestamp(self._started)

    def as_state(self) -> dict[str, str]:
        """The start time a resumed scan must keep bounding its bookmark with."""
        started = self.started_at()
        return {"started_at": started.isoformat()} if started else {}

"""The base Coupa stream: what every stream shares, so a resource is only data.

Two kinds derive from it, each in its own module: ``CollectionStream``
(``collection.py``) scans ``GET /api/<path>``; ``ChildStream`` (``children.py``) emits
the rows of a parent record's nested array. Both shape records the same way and may
feed children of their own; this class holds that, and the SDK hooks it overrides
(listed with why in ``sdk.py``).
"""

from __future__ import annotations

import functools
import typing as t

from singer_sdk import singerlib as singer
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.catalog import REPLICATION_FULL_TABLE
from singer_sdk.streams import RESTStream
from typing_extensions import override

from tap_coupa.decimals import conformed
from tap_coupa.pagination import CoupaOffsetPaginator
from tap_coupa.passthrough import PageReader, RawRecord, page_reader
from tap_coupa.projection import from_schema, merge
from tap_coupa.shape import RecordShaper, compile_prune

if t.TYPE_CHECKING:
    from collections.abc import Callable, Collection, Generator, Iterable, Mapping

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_coupa.projection import Spec
    from tap_coupa.rawjson import Record
    from tap_coupa.resources import SyncResources


class ChildFeed(t.Protocol):
    """What a parent needs of a child stream to feed it rows (see ``children.py``)."""

    #: The parent's array property the rows come from.
    array_field: str
    #: The property carrying the parent's id (set by the child, not sent by Coupa).
    parent_key: str | None
    #: The ancestors' ids above the parent (copied by the child, not sent by Coupa).
    ancestor_keys: tuple[str, ...]

    def projection(self, skip: Collection[str] = ()) -> Spec:
        """What the child's selection needs of each row."""

    def prepare(self, parent: RecordShaper, version: int | None) -> None:
        """Get ready for a sync of the parent, whose shaper runs first.

        ``version`` is the parent's table version if it sends ACTIVATE_VERSION.
        """

    def emit_from(self, parent: Mapping[str, t.Any]) -> None:
        """Emit the child's rows of one parent record."""

    def log_counts(self, parent: str) -> None:
        """Log how many rows the sync emitted."""


class CoupaStream(RESTStream[int]):
    """What every Coupa stream shares: shaping, feeding children, lean SDK messages."""

    path: str = ""
    scope: str = "core.common.read"

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE  # shape.py conforms types
    is_sorted = False

    def __init__(
        self, tap: Tap, schema: Callable[[], dict[str, t.Any]], resources: SyncResources
    ) -> None:
        """``schema`` loads the schema, on first use (see ``schema``)."""
        super().__init__(tap=tap)
        self._load_schema = schema
        self.resources = resources
        #: The declared replication key, which the shaper decodes (as a catalog may change it).
        self._declared_key = self.replication_key
        self._children: list[ChildFeed] = []
        #: Records this sync emitted as the bytes sent (see ``passthrough``).
        self._passed = 0
        #: The input catalog's entry for the stream (see ``apply_catalog``).
        self._catalog_entry: singer.CatalogEntry | None = None

    @property
    @override
    def schema(self) -> dict[str, t.Any]:
        """The stream's schema, loaded on first use.

        A run with an input catalog never reads the schema of a stream it does not
        sync: selection and keys come from the catalog. Of ~110 streams a sync
        usually reads a few.
        """
        if self._schema is None:
            self._schema = self._load_schema()
        return self._schema

    @functools.cached_property
    def shaper(self) -> RecordShaper:
        """The shaping plans, compiled on first use: only synced streams need them."""
        return RecordShaper(
            self.name,
            self.schema,
            decimal_strings=self.resources.settings.decimal_strings,
            replication_key=self._declared_key,
            logger=self.logger,
        )

    @property
    @override
    def url_base(self) -> str:
        """The instance's ``/api`` root."""
        return self.resources.settings.api_base

    @override
    def get_new_paginator(self) -> CoupaOffsetPaginator:
        """Coupa's offsets, stepped so consecutive pages overlap by one record."""
        return CoupaOffsetPaginator(self.resources.settings.page_size)

    @override
    def apply_catalog(self, catalog: singer.Catalog) -> None:
        """Apply the catalog as the SDK does, less its schema until the stream reads it.

        The SDK converts every stream's schema back to JSON here, before the first
        request; ``effective_schema`` does it for a stream as it syncs. FULL_TABLE wins
        in whichever spelling asked for it.
        """
        self._tap_input_catalog = catalog
        if entry := catalog.get_stream(self.name):
            root = t.cast("singer.StreamMetadata | None", entry.metadata.get(()))
            keys = root.table_key_properties if root else None
            self.primary_keys = entry.key_properties or keys or ()
            self.replication_key = entry.replication_key or (root.replication_key if root else None)
            method = root.forced_replication_method if root else None
            if method := entry.replication_method or method:
                self.forced_replication_method = method
            self._input_schema, self._catalog_entry = None, entry
        if self.name in self.resources.full_table:
            self.forced_replication_method = REPLICATION_FULL_TABLE

    @property
    @override
    def effective_schema(self) -> dict[str, t.Any]:
        """The catalog's schema if it has one, converted as the SDK does on first read."""
        if self._input_schema is None and self._catalog_entry is not None:
            self._input_schema = self._catalog_entry.schema.to_dict()
        return super().effective_schema

    @functools.cached_property
    def raw_json(self) -> bool:
        """Whether records may keep raw JSON values (see ``rawjson``).

        Only when nothing but the writer reads them: stream maps, flattening and BATCH
        files need every value decoded. Without ``stream_maps`` or flattening in the
        config every stream's one map is the SDK's plain ``SameRecordTransform``: that
        is known without building the maps, which the scans starting ahead of their
        turn would otherwise do, one stream after another, before their first request.
        """
        if self.get_batch_config(self.config) is not None:
            return False
        if not self.config.get("stream_maps") and not self.config.get("flattening_enabled"):
            return True
        return all(
            type(stream_map) is SameRecordTransform and not stream_map.flattening_enabled
            for stream_map in self.stream_maps
        )

    @functools.cached_property
    def passthrough(self) -> PageReader | None:
        """A reader emitting records without shaping them in Python, if nothing else reads them.

        With decimals as strings a record goes out as the bytes sent; as numbers it is
        re-encoded in C with its decimals as numbers (see ``passthrough``). Not when a
        child stream takes rows from them or properties are deselected (nor where
        ``raw_json`` is off): the record is then shaped as a dict.
        """
        if not self.raw_json or self._wanted_children() or compile_prune(self.mask):
            return None
        return page_reader(self.schema, self.shaper.decimals, self._declared_key)

    @classmethod
    def lists_ids(cls) -> bool:
        """Whether the stream can list its ids, to find deleted records (``deletes.py``)."""
        return False

    @property
    @override
    def selected(self) -> bool:
        """The SDK's answer, from the stream's own metadata alone.

        The SDK resolves every property's selection to answer (``mask``, ~0.5 ms a
        stream); the tap asks about every stream before its first request (the token's
        scopes, the sync order), and each mask can wait until its stream starts.
        """
        if self._mask is not None:
            return self._mask.get((), True)
        root = self.metadata.get(())
        return root is None or singer.MetadataMapping({(): root}).resolve_selection()[()]

    @selected.setter
    def selected(self, value: bool | None) -> None:
        RESTStream.selected.fset(self, value)  # type: ignore[attr-defined]

    @property
    def synced(self) -> bool:
        """Whether this run syncs the stream: selected, or feeding a selected child."""
        return self.selected or self.has_selected_descendents

    # Feeding child streams: rows of this stream's nested arrays, no extra request.

    def prepare_children(self) -> None:
        """Compile this sync's selection and get the wanted children ready."""
        self.shaper.select(self.mask)
        self._children = self._wanted_children()
        for child in self._children:
            child.prepare(self.shaper, self._stream_version)

    def _wanted_children(self) -> list[ChildFeed]:
        wanted = [c for c in self.child_streams if c.selected or c.has_selected_descendents]
        # The registry makes every child of a Coupa stream a ChildStream.
        return t.cast("list[ChildFeed]", wanted)

    def projection(self, skip: Collection[str] = ()) -> Spec:
        """The Coupa fields this sync needs, as a projection.

        The selected properties, id and the replication key, and under each wanted
        child's array what that child needs. The parent's array is requested even when
        the parent's own catalog entry deselects it: the child's rows come from it.
        """
        keys = [*self.primary_keys, *([self.replication_key] if self.replication_key else [])]
        spec = from_schema(self.schema, self.mask, required=keys, skip=skip)
        for child in self._wanted_children():
            added = (child.parent_key, *child.ancestor_keys)  # the tap's, not Coupa's
            rows = child.projection(skip=[key for key in added if key])
            name = child.array_field
            spec[name] = merge(spec[name], rows) if name in spec else rows
        return spec

    def log_children(self) -> None:
        """Log what each child emitted during this sync."""
        for child in self._children:
            child.log_counts(self.name)

    def log_passed(self) -> None:
        """Log how many records skipped shaping (none: every record was shaped)."""
        if self._passed:
            self.logger.info(
                "Stream %r: %d records passed through unshaped.", self.name, self._passed
            )
            self._passed = 0

    @override
    def generate_child_contexts(
        self, record: Record, context: Context | None
    ) -> Iterable[Context | None]:
        """Children read their rows straight from the parent record (if any are wanted)."""
        if self._children:
            yield record

    @override
    def _sync_children(self, child_context: Context | None) -> None:
        """Emit each child's rows from the parent record instead of a child sync."""
        if child_context is None:
            return
        for child in self._children:
            child.emit_from(child_context)

    # SDK messages ------------------------------------------------------------------

    @override
    def _generate_schema_messages(self) -> Generator[singer.SchemaMessage, None, None]:
        """SCHEMA messages whose decimals are spelled as the records hold them, sized."""
        for message in super()._generate_schema_messages():
            message.schema = conformed(message.schema, self.schema)
            yield message

    @override
    def _generate_record_messages(
        self, record: Record
    ) -> Generator[singer.RecordMessage, None, None]:
        """Build RECORD messages without re-walking the record.

        The SDK's version walks every nested object for deselected properties and type
        conformance; the shaper does both with plans compiled once per stream. This
        runs after the record has fed its child streams, so deselected properties
        (an array, an ancestor's id) are dropped only now.
        """
        self.shaper.drop_deselected(record)
        time_extracted = utc_now()
        # A record passed through goes out as sent (its stream maps are identities):
        # the writer copies the raw bytes in place of the JSON object they hold.
        body = None
        if isinstance(record, RawRecord):
            body = t.cast("Record", record.body)
            self._passed += 1
        for stream_map in self.stream_maps:
            mapped = body if body is not None else stream_map.transform(record)
            if mapped is not None:
                yield singer.RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=time_extracted,
                )

    @override
    def _increment_stream_state(
        self, latest_record: Record, *, context: Context | None = None
    ) -> None:
        """Bookmarks are kept by ``state.StreamState`` (instants, bounded by the scan start)."""

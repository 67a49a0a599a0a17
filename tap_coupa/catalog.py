"""The input catalog: what the tap checks and reads of it.

It may only name streams and properties this tap has; FULL_TABLE may be forced in any
spelling; stream maps are built per stream, as the run reads it.
"""

from __future__ import annotations

import typing as t

from singer_sdk.singerlib import (
    Catalog,
    CatalogEntry,
    Metadata,
    MetadataMapping,
    Schema,
    StreamMetadata,
)
from typing_extensions import override

from tap_coupa.errors import CoupaConfigError
from tap_coupa.query import parse_fields, query_key
from tap_coupa.streams import property_names, registry

if t.TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

    from singer_sdk.mapper import StreamMap

METHODS = ("FULL_TABLE", "INCREMENTAL")
#: The schema every configured custom object's stream starts from.
CUSTOM_OBJECT_SCHEMA = "custom_object"


def catalog_file_problem(value: object) -> str | None:
    """What keeps a --catalog file's JSON from being a Singer catalog, or None."""
    if not isinstance(value, dict):
        return "is not a JSON object"
    streams = value.get("streams")
    if not isinstance(streams, list):  # missing too: a run would sync nothing, silently
        return 'has no "streams" list'
    for index, stream in enumerate(streams):
        if not isinstance(stream, dict):
            return f"has an entry (streams[{index}]) that is not an object"
        name = stream.get("tap_stream_id")
        if not isinstance(name, str):
            return f"has an entry (streams[{index}]) without a tap_stream_id"
        if not isinstance(stream.get("schema", {}), dict):
            return f"gives stream {name!r} a schema that is not an object"
        metadata = stream.get("metadata", [])
        if not (isinstance(metadata, list) and all(map(_is_metadata, metadata))):
            return f"gives stream {name!r} metadata that is not a list of breadcrumbs and objects"
    return None


def _is_metadata(item: object) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("breadcrumb"), list)
        and isinstance(item.get("metadata"), dict)
    )


def check_catalog(catalog: Catalog, custom_objects: Collection[str] = ()) -> None:
    """Refuse a catalog naming streams or properties this tap does not have.

    The SDK would otherwise ignore them silently, and a user would wait for data
    that never comes. ``custom_objects`` are the configured custom objects' streams.
    """
    specs = {*registry(), *custom_objects}
    unknown = sorted(
        entry.tap_stream_id for entry in catalog.streams if entry.tap_stream_id not in specs
    )
    if unknown:
        msg = (
            f"The catalog names unknown streams {unknown[:5]}; regenerate it with "
            "tap-coupa --discover (or meltano select)."
        )
        raise CoupaConfigError(msg)
    for entry in catalog.streams:
        stream = entry.tap_stream_id
        known = property_names(CUSTOM_OBJECT_SCHEMA if stream in custom_objects else stream)
        named = _property_names(entry) | {crumb[1] for crumb in entry.metadata if len(crumb) > 1}
        if extra := sorted(named - known):
            msg = (
                f"The catalog's {entry.tap_stream_id!r} stream names unknown properties "
                f"{extra[:5]}; regenerate the catalog with tap-coupa --discover."
            )
            raise CoupaConfigError(msg)
    for stream in synced_streams(catalog):
        if problem := _schema_problem(catalog[stream]):
            msg = (
                f"The catalog's {stream!r} stream {problem}; regenerate it with "
                "tap-coupa --discover (or meltano select)."
            )
            raise CoupaConfigError(msg)


def _schema_problem(entry: CatalogEntry) -> str | None:
    """What in a synced stream's entry the SDK would fail on mid-sync, or None.

    The SDK reads a stream's catalog schema only as the stream starts, and then fails
    with a traceback, after the streams before it were synced.
    """
    schema = entry.json_schema if isinstance(entry, LazyEntry) else entry.schema.to_dict()
    if not schema:
        return "has no schema"
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return "has a schema without properties"
    root = t.cast("StreamMetadata | None", entry.metadata.get(()))
    key = entry.replication_key or (root.replication_key if root else None)
    if key and key not in properties:
        return f"has the replication key {key!r}, which its schema does not declare"
    return None


def _property_names(entry: CatalogEntry) -> set[str]:
    if isinstance(entry, LazyEntry):
        return set(entry.json_schema.get("properties") or {})
    return set((entry.schema.properties or {}) if entry.schema else {})


class LazyEntry(CatalogEntry):
    """A catalog entry whose schema is converted from its JSON when first read.

    A whole catalog's schemas are ~18,000 nodes. The SDK converts them all as it reads
    the catalog, and each back to JSON as it applies it to the stream, all before the
    first request; a stream reads it only when it is synced (``effective_schema``,
    its stream maps).
    """

    def __init__(self, *, json_schema: dict[str, t.Any], **fields: t.Any) -> None:
        self.json_schema = json_schema
        self._schema: Schema | None = None
        super().__init__(schema=None, **fields)  # type: ignore[arg-type]  # converted on read

    @property
    @override
    def schema(self) -> Schema:
        """The schema, as ``Catalog.from_dict`` converts it."""
        if self._schema is None:
            self._schema = Schema.from_dict(self.json_schema)
        return self._schema

    @schema.setter
    def schema(self, value: Schema | None) -> None:
        self._schema = value


def read_catalog(data: Mapping[str, t.Any]) -> Catalog:
    """``Catalog.from_dict``, with schemas converted when first read (``LazyEntry``).

    Each property's metadata is read directly, too: the SDK's ``Metadata.from_dict``
    inspects the dataclass's fields for each of the ~15,000 property entries of a
    whole catalog, for the three it reads.
    """
    catalog = Catalog()
    for stream in data.get("streams") or []:
        entry = LazyEntry(
            json_schema=stream.get("schema") or {},
            tap_stream_id=stream["tap_stream_id"],
            stream=stream.get("stream"),
            replication_key=stream.get("replication_key"),
            key_properties=stream.get("key_properties"),
            database=stream.get("database_name"),
            table=stream.get("table_name"),
            is_view=stream.get("is_view"),
            row_count=stream.get("row_count"),
            stream_alias=stream.get("stream_alias"),
            metadata=_metadata(stream.get("metadata") or []),
            replication_method=stream.get("replication_method"),
        )
        catalog[entry.tap_stream_id] = entry
    return catalog


def _metadata(items: Iterable[Mapping[str, t.Any]]) -> MetadataMapping:
    mapping = MetadataMapping()
    for item in items:
        breadcrumb, value = tuple(item["breadcrumb"]), item["metadata"]
        mapping[breadcrumb] = (
            Metadata(
                value.get("inclusion"), value.get("selected"), value.get("selected-by-default")
            )
            if breadcrumb
            else StreamMetadata.from_dict(value)
        )
    return mapping


def selected_streams(catalog: Catalog) -> list[str]:
    """The streams the catalog selects, from their stream-level metadata alone.

    The SDK's rule for ``Stream.selected`` (an entry without stream-level metadata is
    selected), without resolving every property's selection first.
    """
    return [
        entry.tap_stream_id
        for entry in catalog.streams
        if (root := entry.metadata.get(())) is None
        or MetadataMapping({(): root}).resolve_selection()[()]
    ]


def check_options(catalog: Catalog, stream_options: Mapping[str, t.Any]) -> None:
    """Refuse ``stream_options`` under which a synced stream would miss rows, up front.

    A selected child stream's rows come from its parent's array: a ``fields`` without
    it, or a ``return_object``, leaves them out, the child emits nothing and the
    parent's bookmark covers it. A filter on the bookmark's key and operator would be
    replaced by the tap's own (Coupa keeps the last of a repeated key).
    """
    specs = registry()
    synced = synced_streams(catalog)
    for stream in synced:
        options = stream_options.get(stream) or {}
        spec = specs.get(stream)
        if not options or (spec and spec["parent"]):  # a child's rows need no request
            continue
        arrays = [
            array
            for child in synced
            if child in specs
            and specs[child]["parent"] == stream
            and (array := specs[child]["array_field"])
        ]
        _check_children(stream, options, arrays)
        key = catalog[stream].replication_key
        _check_filters(stream, options, [key] if key else [])


def _check_children(stream: str, options: Mapping[str, t.Any], arrays: Sequence[str]) -> None:
    """Refuse options under which Coupa would not send the selected children's rows.

    The child streams' rows come from the parent's arrays; without them they would
    emit nothing, silently, and the parent's bookmark would still cover them.
    """
    if not arrays:
        return
    if return_object := options.get("return_object"):
        msg = (
            f"stream_options.{stream}.return_object {return_object!r} leaves out the rows "
            f"of the selected child streams (from {', '.join(arrays)}); remove it, or "
            "deselect those streams."
        )
        raise CoupaConfigError(msg)
    if not options.get("fields"):
        return
    fields = parse_fields(options["fields"])
    named = {query_key(n) for item in fields for n in ([item] if isinstance(item, str) else item)}
    if missing := [name for name in arrays if query_key(name) not in named]:
        wanted = ", ".join(query_key(name) for name in missing)
        msg = (
            f"stream_options.{stream}.fields does not name {wanted}, the rows of the "
            f'selected child streams; add them (e.g. {{"{query_key(missing[0])}": [...]}} '
            "with the fields those streams need), or deselect those streams."
        )
        raise CoupaConfigError(msg)


def _check_filters(stream: str, options: Mapping[str, t.Any], keys: Sequence[str]) -> None:
    """Refuse a filter the bookmark filter would replace (Coupa keeps the last of a key)."""
    for key in keys:
        bookmark = f"{query_key(key)}[gt_or_eq]"
        if bookmark in {query_key(name) for name in options.get("filters") or {}}:
            msg = (
                f"stream_options.{stream}.filters sets {bookmark}, which the tap sets from "
                f"the bookmark (Coupa would keep only one); use start_date, or "
                f"{query_key(key)}[gt], which applies with it."
            )
            raise CoupaConfigError(msg)


def synced_streams(catalog: Catalog) -> list[str]:
    """The streams a sync reads: those the catalog selects, and the parents they come from.

    A child's rows are read through its parent, selected or not, and its parent's
    stream maps apply to them (the SDK's rule).
    """
    specs = registry()
    synced: list[str] = []
    for selected in selected_streams(catalog):
        name: str | None = selected
        while name is not None and name not in synced:
            synced.append(name)
            spec = specs.get(name)
            name = spec["parent"] if spec and spec["parent"] in catalog else None
    return synced


def full_table_streams(catalog: Mapping[str, t.Any]) -> frozenset[str]:
    """Streams the catalog forces to FULL_TABLE, in any spelling taps and Meltano write.

    A discovered catalog says ``"replication_method": "INCREMENTAL"`` for every stream
    with a bookmark, and the SDK lets that win over the metadata a user edits
    (``forced-replication-method``), and drops ``replication-method``, the key
    Meltano's ``metadata:`` extra writes. So FULL_TABLE in any of the three wins here:
    a full sync never loses a record.
    """
    forced: set[str] = set()
    for entry in catalog.get("streams") or []:
        roots = [m for m in entry.get("metadata") or [] if m.get("breadcrumb") == []]
        meta: Mapping[str, t.Any] = (roots[0].get("metadata") if roots else None) or {}
        methods = {
            entry.get("replication_method"),
            meta.get("forced-replication-method"),
            meta.get("replication-method"),
        } - {None}
        if unknown := sorted(str(method) for method in methods - set(METHODS)):
            msg = (
                f"The catalog asks stream {entry.get('tap_stream_id')!r} for replication "
                f"method {unknown[0]!r}; use one of {', '.join(METHODS)}."
            )
            raise CoupaConfigError(msg)
        if "FULL_TABLE" in methods:
            forced.add(str(entry.get("tap_stream_id")))
    return frozenset(forced)


class LazyStreamMaps(dict[str, list["StreamMap"]]):
    """The mapper's ``stream_maps``, each stream registered on first lookup."""

    def __init__(self, register: Callable[[str], None]) -> None:
        super().__init__()
        self._register = register

    def __missing__(self, name: str) -> list[StreamMap]:
        self._register(name)  # fills self[name] (and any alias the stream maps define)
        return self[name]

"""Resource model: the tap's stream registry and JSON Schemas, as typed nodes.

The sandbox serves whatever ``tap_coupa/schemas`` describes (generated from Coupa's
R39 definitions), so the tap and its test bed can never disagree on a property name.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_PACKAGE = "tap_coupa.schemas"

SCALAR_KINDS = frozenset({"integer", "number", "boolean", "string", "datetime", "date"})


@dataclass(frozen=True, eq=False)
class Node:
    """One schema node reduced to what generation, filtering and XML need.

    ``kind`` is a scalar kind, ``object`` (association with known properties),
    ``open`` (free-form object such as ``custom-fields``) or ``array``.
    """

    kind: str
    props: Mapping[str, Node] = field(default_factory=dict)
    items: Node | None = None
    size: tuple[int, int] | None = None
    """(precision, scale) of a decimal column, when R39 declares it."""

    @property
    def is_scalar(self) -> bool:
        """True for leaf values (numbers, strings, datetimes …)."""
        return self.kind in SCALAR_KINDS

    @property
    def is_line_array(self) -> bool:
        """True for arrays of objects (lines, allocations, attachments …)."""
        return self.kind == "array" and self.items is not None and self.items.kind == "object"


@dataclass(frozen=True)
class StreamDef:
    """One registry entry of ``streams.json`` plus its parsed schema.

    For top-level streams ``schema`` is deepened with the child streams' schemas
    (see :func:`merge_children`), i.e. it describes the records as served.
    """

    name: str
    path: str
    scope: str
    primary_keys: tuple[str, ...]
    replication_key: str | None
    parent: str | None
    array_field: str | None
    parent_key: str | None
    definition: str | None
    schema: Node

    @property
    def top_level(self) -> bool:
        """Top-level streams are endpoints; child streams live inside their parent."""
        return self.parent is None


class Registry:
    """All streams, indexed by name and by API path."""

    def __init__(self, streams: Mapping[str, StreamDef]) -> None:
        self.streams: dict[str, StreamDef] = dict(streams)
        self.by_path: dict[str, StreamDef] = {
            s.path.strip("/"): s for s in self.streams.values() if s.top_level
        }
        self.scopes: frozenset[str] = frozenset(s.scope for s in self.streams.values() if s.scope)
        """Every OAuth scope a resource needs."""

    def __iter__(self) -> Iterator[StreamDef]:
        return iter(self.streams.values())

    def __contains__(self, name: object) -> bool:
        return name in self.streams

    def __getitem__(self, name: str) -> StreamDef:
        return self.streams[name]

    @property
    def top_level(self) -> list[StreamDef]:
        """Streams served at ``/api/<path>``."""
        return [s for s in self.streams.values() if s.top_level]

    @property
    def children(self) -> list[StreamDef]:
        """Streams whose records are nested arrays of a parent stream."""
        return [s for s in self.streams.values() if not s.top_level]


def _types(spec: Mapping[str, Any]) -> list[str]:
    raw = spec.get("type", [])
    types = [raw] if isinstance(raw, str) else list(raw)
    if not types and "anyOf" in spec:
        for option in spec["anyOf"]:
            types.extend(_types(option))
    return [t for t in types if t != "null"]


def parse_node(spec: Mapping[str, Any]) -> Node:
    """Turn a JSON Schema fragment into a :class:`Node`."""
    types = _types(spec)
    if "anyOf" in spec and "properties" not in spec and "items" not in spec:
        for option in spec["anyOf"]:
            if _types(option):
                return parse_node(option)
    kind = types[0] if types else "string"
    if kind == "object":
        props = spec.get("properties") or {}
        if not props:
            return Node("open")
        return Node("object", {str(k): parse_node(v) for k, v in props.items()})
    if kind == "array":
        items = spec.get("items") or {}
        return Node("array", items=parse_node(items) if items else Node("string"))
    if kind == "string":
        fmt = spec.get("format")
        if fmt == "date-time":
            return Node("datetime")
        if fmt == "date":
            return Node("date")
        return Node("string")
    if kind == "number" and "precision" in spec:
        return Node(kind, size=(int(spec["precision"]), int(spec.get("scale", 0))))
    if kind in ("integer", "number", "boolean"):
        return Node(kind)
    return Node("string")


def merge_children(node: Node, context: str, registry: Mapping[str, StreamDef]) -> Node:
    """Deepen a schema with its child streams' schemas.

    The tap extracts child streams (``invoice_lines``, then ``invoice_line_account_
    allocations``) from the parent's nested arrays and validates them against the
    child schema, which is usually richer than the parent's view of the array.
    """
    if node.kind != "object":
        return node
    props: dict[str, Node] = {}
    for prop, child in node.props.items():
        if child.kind == "array":
            sub = next(
                (s for s in registry.values() if s.parent == context and s.array_field == prop),
                None,
            )
            items = child.items or Node("open")
            if sub is not None:
                extra = {k: v for k, v in items.props.items() if k not in sub.schema.props}
                merged = Node("object", {**sub.schema.props, **extra})
                props[prop] = Node("array", items=merge_children(merged, sub.name, registry))
                continue
            props[prop] = Node("array", items=merge_children(items, "", registry))
        else:
            props[prop] = merge_children(child, "", registry) if child.kind == "object" else child
    return Node("object", props)


def _read_text(base: Any, name: str) -> str:
    return str(base.joinpath(name).read_text(encoding="utf-8"))


def _schema_base(schema_dir: str | Path | None) -> Any:
    if schema_dir is not None:
        return Path(schema_dir)
    return importlib.resources.files(SCHEMA_PACKAGE)


def load_registry(schema_dir: str | Path | None = None) -> Registry:
    """Load ``streams.json`` and every stream schema it names (cached: it is immutable).

    ``schema_dir`` overrides the ``tap_coupa.schemas`` package location (tests use it).
    """
    return _load_registry(None if schema_dir is None else str(Path(schema_dir).resolve()))


@functools.lru_cache(maxsize=8)
def _load_registry(schema_dir: str | None) -> Registry:
    base = _schema_base(schema_dir)
    entries: dict[str, Any] = json.loads(_read_text(base, "streams.json"))
    streams: dict[str, StreamDef] = {}
    for name, entry in entries.items():
        schema_spec = json.loads(_read_text(base, f"{name}.json"))
        node = parse_node(schema_spec)
        if node.kind != "object":
            node = Node("object", {})
        streams[name] = StreamDef(
            name=name,
            path=str(entry.get("path") or name).strip("/"),
            scope=str(entry.get("scope") or ""),
            primary_keys=tuple(entry.get("primary_keys") or ("id",)),
            replication_key=entry.get("replication_key"),
            parent=entry.get("parent"),
            array_field=entry.get("array_field"),
            parent_key=entry.get("parent_key"),
            definition=entry["definition"] if isinstance(entry.get("definition"), str) else None,
            schema=node,
        )
    for name, stream in list(streams.items()):
        if stream.top_level:
            deep = merge_children(stream.schema, name, streams)
            streams[name] = dataclasses.replace(stream, schema=deep)
    return Registry(streams)

"""Resource model: the sandbox's own view of Coupa's R39 resources, as typed nodes.

Built from ``resources.json`` (made from Coupa's R39 definitions by
:mod:`coupa_sandbox.build_resources`), never from the tap: the sandbox is the tap's
test bed, so a wrong path, scope, type or line mapping in the tap shows up against it.
How deep records render is decided here: a resource's own properties, associations
with their scalar attributes, and line collections as full records of their own.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

MODEL_FILE = "resources.json"

SCALAR_KINDS = frozenset({"integer", "number", "boolean", "string", "datetime", "date"})
CUSTOM_FIELDS = "custom-fields"


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
    """A served resource, or a line collection nested in its owner's records.

    ``schema`` describes the records (or line items) as served, lines included.
    """

    name: str
    path: str
    scope: str
    definition: str
    """The R39 definition (``Api/Name``) the records are built from."""
    schema: Node
    parent: str | None = None
    array_field: str | None = None
    key_object: str | None = None
    """The nested object holding the record's own id (a PO revision's revision-record)."""

    @property
    def top_level(self) -> bool:
        """Top-level streams are endpoints; child streams live inside their parent."""
        return self.parent is None

    @property
    def replication_key(self) -> str | None:
        """The timestamp Coupa's ``[gt]`` filters follow for incremental reads."""
        props = self.schema.props
        kinds = ("datetime",) if self.key_object is None else ()
        found = (
            key for key in ("updated-at", "created-at") if props.get(key, Node("")).kind in kinds
        )
        return next(found, "created-at" if self.key_object else None)


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


Definitions = Mapping[str, Mapping[str, str]]


def _scalar(spec: str) -> Node:
    """``integer``, ``number(30,4)``, ``datetime`` … -> a leaf node (``object``: open)."""
    if spec.startswith("number("):
        precision, scale = spec[len("number(") : -1].split(",")
        return Node("number", size=(int(precision), int(scale)))
    return Node(spec) if spec in SCALAR_KINDS else Node("open")


class _Builder:
    """Turns the model's definitions into nodes, sharing each association's node.

    Type notation of ``resources.json``: a scalar kind, ``number(p,s)``, ``object``
    (free-form), ``@Api/Name`` (a reference) and ``[spec]`` (an array). A reference
    to the definition that holds it is how R39 marks a type it could not resolve, so
    it stays free-form.
    """

    def __init__(self, definitions: Definitions, lines: Mapping[tuple[str, str], str]) -> None:
        self.definitions = definitions
        self.lines = lines  # (owner collection, array field) -> line collection
        self._associations: dict[str, Node] = {}

    def record(self, collection: str, definition: str) -> Node:
        """A record: scalars, associations one level deep, lines in full."""
        props = {CUSTOM_FIELDS: Node("open")}
        for prop, spec in self.definitions[definition].items():
            if prop == CUSTOM_FIELDS:
                continue
            target = spec.strip("[]")[1:] if spec.strip("[]").startswith("@") else None
            if target is None or target == definition:
                props[prop] = _shallow(spec)
            elif not spec.startswith("["):
                props[prop] = self.association(target)
            elif (line := self.lines.get((collection, prop))) is not None:
                props[prop] = Node("array", items=self.record(line, target))
            else:
                props[prop] = Node("array", items=self.association(target))
        return Node("object", dict(sorted(props.items())))

    def association(self, definition: str) -> Node:
        """An associated object: its scalar attributes; its own associations free-form.

        A definition without properties is free-form too: nothing about it is known.
        """
        node = self._associations.get(definition)
        if node is None:
            props = {p: _shallow(s) for p, s in self.definitions[definition].items()}
            node = self._associations[definition] = Node("object", props) if props else Node("open")
        return node


def _shallow(spec: str) -> Node:
    """A property whose references are not followed."""
    if spec.startswith("["):
        return Node("array", items=_shallow(spec[1:-1]))
    return Node("open") if spec.startswith("@") else _scalar(spec)


def load_registry(custom_objects: Mapping[str, str] | None = None) -> Registry:
    """The bundled model as served streams, plus the instance's custom objects.

    ``custom_objects`` maps each custom object's id (its API path segment) to a name;
    its records are served as stream ``custom_object_<name>``.
    """
    return _load_registry(tuple(sorted((custom_objects or {}).items())))


def _read_model() -> dict[str, Any]:
    text = importlib.resources.files(__package__).joinpath(MODEL_FILE).read_text("utf-8")
    model: dict[str, Any] = json.loads(text)
    return model


DOCUMENT_LINES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "purchase_orders": ("order-lines", ("account-allocations",)),
    "expense_reports": ("expense-lines", ("account-allocations", "expense-line-taxes")),
}
"""Documents whose lines R39 serves in full but the model keeps as plain associations
(their lines are resources of their own): line array, then the lines' own arrays."""


def document_schema(stream: StreamDef) -> Node:
    """``stream``'s schema with its lines' associations and arrays rendered in full.

    For realistic documents (see ``generate.DOCUMENT_SHAPES``): Coupa embeds an order's
    lines with their account, allocations, users …, which the served schema leaves
    free-form. The properties stay the same, so records still match ``stream.schema``.
    """
    if stream.name not in DOCUMENT_LINES:
        return stream.schema
    return _document_schema(stream.name, stream.definition)


@functools.lru_cache(maxsize=4)
def _document_schema(name: str, definition: str) -> Node:
    field_name, nested = DOCUMENT_LINES[name]
    line = f"{name}.{field_name}"
    lines = {(name, field_name): line} | {(line, prop): f"{line}.{prop}" for prop in nested}
    full = _Builder(_read_model()["definitions"], lines).record(name, definition)
    array = full.props[field_name]
    assert array.items is not None
    props = {**full.props, field_name: Node("array", items=_no_custom_fields(array.items))}
    return Node("object", props)


def _no_custom_fields(node: Node) -> Node:
    """Lines without the ``custom-fields`` a full record gets, as in the served schema."""
    props = {}
    for prop, child in node.props.items():
        if prop == CUSTOM_FIELDS:
            continue
        items = child.items if child.is_line_array else None
        props[prop] = child if items is None else Node("array", items=_no_custom_fields(items))
    return Node("object", props)


@functools.lru_cache(maxsize=8)
def _load_registry(custom_objects: tuple[tuple[str, str], ...]) -> Registry:
    model = _read_model()
    lines = {(line["owner"], line["field"]): name for name, line in model["lines"].items()}
    builder = _Builder(model["definitions"], lines)
    streams: dict[str, StreamDef] = {}
    custom = model["custom_object"]
    for object_id, object_name in custom_objects:
        model["resources"][f"custom_object_{object_name}"] = {
            **custom,
            "path": f"custom_objects/{object_id}/object_instances",
        }
    for name, resource in model["resources"].items():
        schema = builder.record(name, resource["definition"])
        streams[name] = StreamDef(
            name,
            resource["path"],
            resource["scope"],
            resource["definition"],
            schema,
            key_object=resource.get("key_object"),
        )
    for name, line in model["lines"].items():
        owner = streams[line["owner"]]
        items = owner.schema.props[line["field"]].items
        assert items is not None  # the builder checked it is an array of a definition
        streams[name] = StreamDef(
            name, owner.path, owner.scope, line["definition"], items, owner.name, line["field"]
        )
    return Registry(streams)

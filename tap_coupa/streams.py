"""Every Coupa collection the tap extracts, declared as data.

``schemas/streams.json`` is generated from Coupa's R39 API definitions by
``scripts/generate_schemas.py`` (name, path, keys, scope, parent); each entry becomes
a stream class here. Adding a resource means adding it to the generator's tables and
regenerating: no class body to copy.
"""

from __future__ import annotations

import json
import typing as t
from functools import cache

import msgspec

from tap_coupa import SCHEMAS
from tap_coupa.children import ChildStream
from tap_coupa.collection import CollectionStream
from tap_coupa.decimals import decimals_as_strings
from tap_coupa.deletes import DELETED_AT, DELETED_AT_SCHEMA
from tap_coupa.rawjson import KeyObject
from tap_coupa.shape import EXTRA_FIELDS

if t.TYPE_CHECKING:
    from tap_coupa.client import CoupaStream


class StreamSpec(t.TypedDict):
    """One entry of the generated registry."""

    path: str
    definition: str
    scope: str
    primary_keys: list[str]
    replication_key: str | None
    parent: str | None
    array_field: str | None
    parent_key: str | None
    ancestor_keys: list[str]
    key_object: KeyObject | None


@cache
def registry() -> dict[str, StreamSpec]:
    """The generated stream registry, parents before their children."""
    specs: dict[str, StreamSpec] = json.loads((SCHEMAS / "streams.json").read_text())

    def depth(name: str) -> int:
        parent = specs[name]["parent"]
        return 0 if parent is None else 1 + depth(parent)

    return {name: specs[name] for name in sorted(specs, key=lambda n: (depth(n), n))}


def load_schema(
    name: str, *, decimal_strings: bool = False, deletes: bool = False
) -> dict[str, t.Any]:
    """A stream's schema plus the catch-all for properties R39 does not know.

    ``deletes`` declares ``_sdc_deleted_at``, which reported deletions carry.
    """
    schema: dict[str, t.Any] = json.loads((SCHEMAS / f"{name}.json").read_text())
    schema["properties"][EXTRA_FIELDS] = {"type": ["object", "null"]}
    if deletes:
        schema["properties"][DELETED_AT] = dict(DELETED_AT_SCHEMA)
    if decimal_strings:
        decimals_as_strings(schema)
    return schema


class _Declared(msgspec.Struct):
    """A schema file's top-level property names; their types are skipped, unread."""

    properties: dict[str, msgspec.Raw]


_DECLARED = msgspec.json.Decoder(_Declared)


@cache
def property_names(name: str) -> frozenset[str]:
    """The top-level properties a stream's records may carry (checked in every catalog)."""
    declared = _DECLARED.decode((SCHEMAS / f"{name}.json").read_bytes()).properties
    return frozenset({*declared, EXTRA_FIELDS, DELETED_AT})


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Stream"


@cache
def stream_types() -> dict[str, type[CoupaStream]]:
    """One stream class per registry entry: collections, and children linked to parents."""
    classes: dict[str, type[CoupaStream]] = {}
    for name, spec in registry().items():
        attributes: dict[str, t.Any] = {
            "name": name,
            "path": spec["path"],
            "scope": spec["scope"],
            "primary_keys": tuple(spec["primary_keys"]),
            "replication_key": spec["replication_key"],
            "__doc__": f"Coupa ``/api/{spec['path']}`` ({spec['definition']}).",
        }
        base: type[CoupaStream] = CollectionStream
        if spec["key_object"]:
            attributes["key_object"] = spec["key_object"]
        if spec["parent"]:
            base = ChildStream
            attributes["parent_stream_type"] = classes[spec["parent"]]
            attributes["state_partitioning_keys"] = ()
            attributes["array_field"] = spec["array_field"]
            attributes["parent_key"] = spec["parent_key"]
            attributes["ancestor_keys"] = tuple(spec["ancestor_keys"])
        classes[name] = type(_class_name(name), (base,), attributes)
    return classes

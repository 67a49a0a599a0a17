"""Coupa-style XML rendering (the API's default format when JSON is not asked for).

Rails ``to_xml`` conventions: dashed element names, ``type="integer|decimal|datetime|
boolean|array"`` attributes, ``nil="true"`` for nulls, collections as a plural element
wrapping singular ones.  Kept simple but well-formed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

from .schema import Node
from .vocab import plural, singular

_HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_TYPE_ATTR = {
    "integer": "integer",
    "number": "decimal",
    "datetime": "datetime",
    "date": "date",
    "boolean": "boolean",
}


def element_name(name: str) -> str:
    """A valid XML element name for a JSON key."""
    clean = _BAD_CHARS.sub("-", name.replace("_", "-")) or "value"
    return clean if clean[0].isalpha() else f"_{clean}"


def root_names(path: str) -> tuple[str, str]:
    """(collection, item) element names from an API path: ``payables/invoices``."""
    last = element_name(path.strip("/").split("/")[-1])
    collection = plural(last)
    return collection, singular(collection)


def _scalar(tag: str, value: Any, node: Node | None, out: list[str]) -> None:
    kind = node.kind if node is not None else None
    if value is None:
        out.append(f'<{tag} nil="true"/>')
        return
    if isinstance(value, bool):
        text, type_attr = ("true" if value else "false"), "boolean"
    elif isinstance(value, int):
        text, type_attr = str(value), "integer"
    elif isinstance(value, float):
        text, type_attr = repr(value), "float"
    else:
        text, type_attr = escape(str(value)), _TYPE_ATTR.get(kind or "", "")
    attr = f' type="{type_attr}"' if type_attr else ""
    out.append(f"<{tag}{attr}>{text}</{tag}>")


def _value(tag: str, value: Any, node: Node | None, out: list[str]) -> None:
    if isinstance(value, Mapping):
        out.append(f"<{tag}>")
        _fields(value, node, out)
        out.append(f"</{tag}>")
    elif isinstance(value, list):
        item_tag = singular(tag)
        item_tag = item_tag if item_tag != tag else f"{tag}-item"
        item_node = node.items if node is not None else None
        out.append(f'<{tag} type="array">')
        for item in value:
            _value(item_tag, item, item_node, out)
        out.append(f"</{tag}>")
    else:
        _scalar(tag, value, node, out)


def _fields(obj: Mapping[str, Any], node: Node | None, out: list[str]) -> None:
    props = node.props if node is not None and node.kind == "object" else {}
    for key, value in obj.items():
        _value(element_name(str(key)), value, props.get(key), out)


def render_records(path: str, records: Sequence[Mapping[str, Any]], schema: Node | None) -> bytes:
    """A collection response: ``<invoices type="array"><invoice>…</invoice></invoices>``."""
    collection, item = root_names(path)
    out = [_HEADER, f'<{collection} type="array">']
    for record in records:
        out.append(f"<{item}>")
        _fields(record, schema, out)
        out.append(f"</{item}>")
    out.append(f"</{collection}>\n")
    return "".join(out).encode()


def render_record(path: str, record: Mapping[str, Any], schema: Node | None) -> bytes:
    """A single-record response (``GET /api/<path>/<id>``)."""
    _collection, item = root_names(path)
    out = [_HEADER, f"<{item}>"]
    _fields(record, schema, out)
    out.append(f"</{item}>\n")
    return "".join(out).encode()


def render_errors(errors: Mapping[str, Sequence[str]]) -> bytes:
    """Errors in XML: ``<errors><error>Unauthorized</error></errors>``."""
    out = [_HEADER, "<errors>"]
    for key, messages in errors.items():
        for message in messages:
            out.append(f"<{element_name(key)}>{escape(message)}</{element_name(key)}>")
    out.append("</errors>\n")
    return "".join(out).encode()


def render_warning(message: str) -> bytes:
    """Coupa's empty-result body: ``<results><warning>…</warning></results>``."""
    return f"{_HEADER}<results><warning>{escape(message)}</warning></results>\n".encode()

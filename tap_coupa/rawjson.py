"""Records decoded one level deep: whatever the tap does not look into stays raw JSON.

A full invoice is ~20 KB holding a thousand nested values, but the tap reads only a
few of them: the id, the bookmark, and the decimals it turns into numbers. So a page
is decoded as a list of ``{key: msgspec.Raw}`` objects, a nested value is opened (one
more level) only where a plan must look inside it, and the msgspec writer copies
every other value out again byte for byte. Decoding builds far fewer Python objects,
encoding copies bytes, and the cycle collector skips dicts that only hold ``Raw``.

Where the SDK itself reads every value (stream maps, flattening, BATCH files), a
stream decodes fully instead (``decode(raw=False)``, ``materialize``).
"""

from __future__ import annotations

import typing as t
from decimal import Decimal

import msgspec

Raw = msgspec.Raw
#: A record as the tap handles it: values raw (``Raw``) or decoded.
Record = dict[str, t.Any]
#: How a page is decoded: fully (False), one level deep (True), or by a stream's reader
#: (``passthrough.PageReader``), which may keep whole records as the bytes sent.
Decoding = bool | t.Callable[[bytes], list[Record]]

_page = msgspec.json.Decoder(list[dict[str, Raw]])
_object = msgspec.json.Decoder(dict[str, Raw] | None)
_array = msgspec.json.Decoder(list[dict[str, Raw]] | None)
_elements = msgspec.json.Decoder(list[Raw])
#: A JSON number with a fraction decodes to Decimal, digit for digit (Coupa sends
#: decimals as strings, but a look-alike or a custom field may not).
_full = msgspec.json.Decoder(float_hook=Decimal)


def compact(body: bytes) -> bytes:
    """The page without line breaks between its tokens (a JSON string escapes its own).

    Raw values are copied into Singer messages as they are, and a line break would
    split a message in two. Coupa sends compact JSON; a proxy may not.
    """
    if b"\n" in body or b"\r" in body:
        try:
            return msgspec.json.format(body, indent=-1)
        except msgspec.DecodeError:
            pass  # the decode that follows reports it
    return body


def decode(body: bytes, *, raw: Decoding) -> t.Any:
    """A page: a list of objects one level deep (``raw``), or anything, fully decoded.

    Raises ``msgspec.DecodeError`` on broken JSON; a body of another shape than a list
    of objects (``{"errors": ...}``) is returned fully decoded, for the caller to judge.
    A stream's reader (``raw`` callable) does the same its own way.
    """
    if callable(raw):
        return raw(body)
    if raw:
        try:
            return _page.decode(compact(body))
        except msgspec.ValidationError:
            pass
    return _full.decode(body)


def value(raw: Raw) -> t.Any:
    """One raw value, fully decoded."""
    return _full.decode(raw)


def decode_ids(records: list[Record]) -> list[Record]:
    """Decode each record's id, which the scan compares (once per page)."""
    for record in records:
        if (raw := record.get("id")).__class__ is Raw:
            record["id"] = _full.decode(raw)
    return records


class KeyObject(t.TypedDict):
    """Where a record keeps its own id when its top-level ``id`` is another's."""

    object: str
    keys: list[str]
    displaced_id: str


def lift_keys(records: list[Record], spec: KeyObject) -> list[Record]:
    """Lift each record's own id (and bookmark) out of ``spec["object"]``.

    A purchase order revision's ``id`` is its order's; the revision's own id, which
    Coupa filters and orders by, is in its ``revision-record``. The order's id is kept
    under ``spec["displaced_id"]``.
    """
    for record in decode_ids(records):
        inner = record.get(spec["object"])
        if inner.__class__ is Raw:
            inner = record[spec["object"]] = open_object(inner)
        if not isinstance(inner, dict):
            continue
        record[spec["displaced_id"]] = record.get("id")
        for key in spec["keys"]:
            found = inner.get(key)
            record[key] = _full.decode(found) if found.__class__ is Raw else found
    return records


def elements(text: bytes) -> list[Raw] | None:
    """The elements of a JSON array, each raw; None if ``text`` is not valid JSON."""
    try:
        return _elements.decode(text)
    except msgspec.DecodeError:
        return None


def open_object(raw: Raw) -> t.Any:
    """An object one level deep (or whatever else the value turns out to be)."""
    try:
        return _object.decode(raw)
    except msgspec.ValidationError:
        return _full.decode(raw)


def open_array(raw: Raw) -> t.Any:
    """An array of objects one level deep (or whatever else the value turns out to be)."""
    try:
        return _array.decode(raw)
    except msgspec.ValidationError:
        return _full.decode(raw)


def materialize(item: t.Any) -> t.Any:
    """A fully decoded copy: no ``Raw`` left, and no object shared with ``item``."""
    kind = item.__class__
    if kind is Raw:
        return _full.decode(item)
    if kind is dict:
        return {key: materialize(sub) for key, sub in item.items()}
    if kind is list:
        return [materialize(sub) for sub in item]
    return item

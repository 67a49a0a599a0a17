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

import codecs
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
#: A record's id: an integer, as Coupa's are (not a string, a fraction, a bool or null).
_id = msgspec.json.Decoder(int)
#: A value as JSON spells it, in an error (decimals as numbers, as they were sent).
_json = msgspec.json.Encoder(decimal_format="number")
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


#: Bytes checked at a time for UTF-8 (``check_utf8``).
UTF8_CHUNK = 4096
_UTF8 = codecs.getincrementaldecoder("utf-8")


def decode(body: bytes, *, raw: Decoding) -> t.Any:
    """A page: a list of objects one level deep (``raw``), or anything, fully decoded.

    Raises ``msgspec.DecodeError`` on broken JSON; a body of another shape than a list
    of objects (``{"errors": ...}``) is returned fully decoded, for the caller to judge.
    A stream's reader (``raw`` callable) does the same its own way.
    """
    if raw:
        check_utf8(body)
    if callable(raw):
        return raw(body)
    if raw:
        try:
            return _page.decode(compact(body))
        except msgspec.ValidationError:
            pass
    return _full.decode(body)


def check_utf8(body: bytes) -> None:
    """Raise ``msgspec.DecodeError`` if ``body`` is not UTF-8, as a full decode would.

    msgspec checks a string's bytes only when it decodes the string: one kept raw
    would reach the Singer output, which a target then cannot read. Only the chunks
    holding bytes other than ASCII are decoded (a page is mostly ASCII, and decoding a
    whole page into text costs as much as ~10% of the record path); the decoder carries
    a character that straddles two chunks over.
    """
    if body.isascii():
        return
    decoder = _UTF8()
    pending = False
    start = 0
    try:
        for start in range(0, len(body), UTF8_CHUNK):
            chunk = body[start : start + UTF8_CHUNK]
            if pending or not chunk.isascii():
                decoder.decode(chunk)
                pending = bool(decoder.getstate()[0])
        decoder.decode(b"", True)
    except UnicodeDecodeError as exc:
        msg = f"Invalid UTF-8 encoded string at byte {start + exc.start}"
        raise msgspec.DecodeError(msg) from None


def value(raw: Raw) -> t.Any:
    """One raw value, fully decoded."""
    return _full.decode(raw)


class BadRecordError(ValueError):
    """A page element the scan cannot order: not an object, or without an integer id."""


def decode_ids(records: list[Record]) -> list[Record]:
    """Decode each record's id, which the scan compares (once per page).

    An element that is not an object with an integer id raises ``BadRecordError`` saying
    which and why, instead of a ``KeyError`` or ``TypeError`` deep in the scan. The
    check is this loop's own id decode, now as an integer: records cost no more.
    """
    record: t.Any = None
    try:
        for record in records:
            found = record.get("id")
            if found.__class__ is not int:
                if found.__class__ is not Raw:  # fully decoded, or missing
                    raise BadRecordError(_problem(record, records))
                record["id"] = _id.decode(found)
    except (AttributeError, msgspec.ValidationError):  # not an object; an id not an integer
        raise BadRecordError(_problem(record, records)) from None
    return records


def _problem(record: t.Any, records: list[Record]) -> str:
    """What is wrong with ``record``, an element of the page ``records``."""
    number = next(index for index, item in enumerate(records, 1) if item is record)
    where = f"record {number} of {len(records)}"
    if not isinstance(record, dict):
        return f"{where} is {kind(record)}, not an object"
    if "id" not in record:
        return f"{where} has no id"
    found = record["id"]
    text = bytes(found).decode() if found.__class__ is Raw else _json.encode(found).decode()
    return f"{where} has the id {text[:40]}, not an integer"


_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


def kind(value: t.Any) -> str:
    """What JSON calls a decoded value, for an error: "null", "an object", "a number"..."""
    return "null" if value is None else _KINDS.get(type(value), "a number")


class KeyObject(t.TypedDict):
    """Where a record keeps its own id when its top-level ``id`` is another's."""

    object: str
    keys: list[str]
    displaced_id: str


def lift_keys(records: list[Record], spec: KeyObject) -> list[Record]:
    """Lift each record's own id (and bookmark) out of ``spec["object"]``.

    A purchase order revision's ``id`` is its order's; the revision's own id, which
    Coupa filters and orders by, is in its ``revision-record``. The order's id is kept
    under ``spec["displaced_id"]``. The ids lifted are checked as ``decode_ids`` checks.
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
    return decode_ids(records)


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

"""Records that need no change, emitted as the bytes Coupa sent.

Shaping a record one level deep (``rawjson``, ``shape``) still builds a Python dict of
its top-level values, opens each nested object that holds decimals, and has the
writer encode them all again: for a ~28 KB invoice, more CPU than decoding it fully.
Most records need none of it. So a stream whose records nothing reads but the writer
(no stream maps, deselected properties or child streams) reads each page with msgspec
types compiled from its schema. They check in C what shaping would look at, and
decode only the id and the bookmark:

* every top-level key is one the schema declares (shaping would keep the others under
  ``extra-fields``);
* every decimal is null or a string holding a JSON number, which shaping keeps as it
  is: a strict decode proves they are strings, and a lax decode of those strings
  alone, as finite floats (whose lax grammar is JSON's), proves they are numbers.

Such a record goes out byte for byte. One that fails a check is opened one level deep
and shaped as before, so the output is the same whichever way a record goes
(``test_raw_equivalence``).

Decimals emitted as numbers (``decimal_format: number``) need their text changed, down
in nested objects. There the types hold every declared property: decimals as
``Decimal`` (msgspec parses them in C, exactly as ``Decimal(text)`` does), objects
holding decimals as types of their own, and all else raw; the record is re-encoded
from them in C, every decimal a number. An unknown key fails the decode (a type would
drop it), so the reader learns the keys Coupa adds inside nested objects (such as
``custom-fields``) from the first records that fail, and keeps them raw too. Objects
come out with their keys in the order the first page held them (``_in_order``), the
schema's for keys it lacked: the same JSON object.
"""

from __future__ import annotations

import operator
import sys
import threading
import typing as t
from decimal import Decimal

import msgspec

from tap_coupa import rawjson
from tap_coupa.decimals import DecimalPlan

if t.TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator, Mapping, Sequence

    from tap_coupa.rawjson import Record

Raw = msgspec.Raw
UNSET = msgspec.UNSET
#: Any JSON value in the lax decode that is a finite float: JSON number text only.
_FINITE = t.Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
_encoder = msgspec.json.Encoder()
_numbers = msgspec.json.Encoder(decimal_format="number")
_elements = msgspec.json.Decoder(list[Raw])
#: Any JSON value, numbers with a fraction exactly (a float would refuse 1e400).
_any = msgspec.json.Decoder(float_hook=Decimal)
#: Records that fail the decimals-as-numbers decode looked into for unknown nested keys.
LEARN_FROM = 16
#: Records of the first page whose key order the structs follow.
SAMPLES = 8


class RawRecord(dict[str, t.Any]):
    """A record to emit as ``body``, the bytes Coupa sent; as a dict, its id and bookmark.

    Only the scan and the state read a record before it is written, and they read
    those two.
    """

    __slots__ = ("body",)

    def __init__(self, body: Raw, fields: Mapping[str, t.Any]) -> None:
        super().__init__(fields)
        self.body = body


def _struct(
    schema: Mapping[str, t.Any],
    plan: DecimalPlan | None,
    *,
    keys: Mapping[str, t.Any] | None = None,
    lax: bool = False,
    samples: Sequence[Mapping[str, t.Any]] = (),
    ordered: bool = True,
) -> type[msgspec.Struct]:
    """A struct type for ``schema``'s objects: its decimals, and the objects holding some.

    With ``keys`` (the id, required, and the bookmark, typed), it is the top level:
    every other declared property is a raw field too, an unknown one fails, and a
    missing one is ``UNSET``. Below it, decimals are strings or null, and a null
    or missing one is left out when encoding. ``lax``: decimals are finite floats, and
    not null: lax decoding would read the string "null" as null. Fields follow the key
    order of ``samples`` (see ``_in_order``), at this level only if ``ordered``.
    """
    plan = plan or DecimalPlan()
    fields: dict[str, t.Any] = dict.fromkeys(plan.numbers, _FINITE if lax else str | None)
    properties = schema["properties"]
    nested: dict[str, t.Any] = {
        name: _struct(properties[name], sub, lax=lax, samples=_inside(samples, name))
        for name, sub in plan.objects.items()
    }
    for name, sub in plan.arrays.items():
        items = _struct(properties[name]["items"], sub, lax=lax, samples=_inside(samples, name))
        nested[name] = list[items]  # type: ignore[valid-type]
    fields.update({name: kind if lax else kind | None for name, kind in nested.items()})
    default = UNSET if keys is not None else None
    if keys is not None:
        fields.update(keys)
        fields.update({name: Raw for name in properties if name not in fields})
    if ordered:
        fields = _in_order(fields, samples)
    return _define(fields, default, top=keys is not None, forbid=keys is not None)


def _in_order(fields: dict[str, t.Any], samples: Sequence[Mapping[str, t.Any]]) -> dict[str, t.Any]:
    """``fields`` in the order the first sample holds its keys, the others after them.

    msgspec matches a key against the field after the last one matched first: keys
    arriving in field order cost one comparison each, keys in another order a search
    through the fields. Coupa sends a resource's keys in one order; in that order, a
    full invoice's check took ~38 µs instead of ~45. Only speed depends on it.
    """
    if not samples:
        return fields
    position = {key: index for index, key in enumerate(samples[0])}
    return dict(sorted(fields.items(), key=lambda item: position.get(item[0], len(position))))


def _inside(samples: Sequence[Mapping[str, t.Any]], name: str) -> list[Mapping[str, t.Any]]:
    """The objects under ``name`` in ``samples``: the object itself, or an array's items."""
    found: list[Mapping[str, t.Any]] = []
    for sample in samples:
        value = sample.get(name)
        found += [
            item
            for item in (value if isinstance(value, list) else [value])
            if isinstance(item, dict)
        ]
    return found


def _define(
    fields: Mapping[str, t.Any], default: t.Any, *, top: bool, forbid: bool
) -> type[msgspec.Struct]:
    """A struct type of ``fields`` (by JSON name), the top level's id required.

    Its instances are left out of the garbage collector (``gc=False``): decoded from
    JSON, they hold no cycle, and tracking the ~100 a record makes with decimals as
    numbers cost about a seventh of the CPU.
    """
    attributes = {name: f"f{index}" for index, name in enumerate(fields)}
    return msgspec.defstruct(
        "Check",
        [
            (attributes[name], kind) if name == "id" and top else (attributes[name], kind, default)
            for name, kind in fields.items()
        ],
        rename={attribute: name for name, attribute in attributes.items()},
        forbid_unknown_fields=forbid,
        kw_only=top,  # the id, required, may follow optional fields
        omit_defaults=True,
        gc=False,
    )


def _rewrite(
    schema: Mapping[str, t.Any],
    plan: DecimalPlan,
    extra: Collection[str],
    keys: Mapping[str, t.Any] | None = None,
    samples: Sequence[Mapping[str, t.Any]] = (),
) -> type[msgspec.Struct]:
    """A struct type re-encoding ``schema``'s objects with their decimals as numbers.

    Every declared property is a field, missing ones left out (``UNSET``); below the
    top level, so are the ``extra`` keys learned; any other key fails. Fields follow
    the key order of ``samples``, and so do the objects encoded.
    """
    properties = schema["properties"]
    fields: dict[str, t.Any] = dict.fromkeys(properties, Raw)
    fields.update(dict.fromkeys(plan.numbers, Decimal | None))
    for name, sub in plan.objects.items():
        fields[name] = _rewrite(properties[name], sub, extra, samples=_inside(samples, name)) | None
    for name, sub in plan.arrays.items():
        items = _rewrite(properties[name]["items"], sub, extra, samples=_inside(samples, name))
        fields[name] = list[items] | None  # type: ignore[valid-type]
    if keys is None:
        fields.update({name: Raw for name in extra if name not in fields})
    else:
        fields.update(keys)
    return _define(_in_order(fields, samples), UNSET, top=keys is not None, forbid=True)


def page_reader(
    schema: Mapping[str, t.Any], plan: DecimalPlan | None, replication_key: str | None
) -> PageReader | None:
    """The stream's reader; None if its id or bookmark is a decimal."""
    names = {*plan.numbers, *plan.objects, *plan.arrays} if plan else set()
    if names & {"id", replication_key}:
        return None
    return PageReader(schema, plan, replication_key)


class _Compiled(t.NamedTuple):
    """A reader's decoding, swapped whole when relearned (a worker may be decoding)."""

    top: msgspec.json.Decoder[msgspec.Struct]
    #: The struct attributes holding the id and the bookmark.
    id: str
    bookmark: str
    check: Callable[[msgspec.Struct], None] | None


class PageReader:
    """Decodes a page of one stream's records, passing through every record it can.

    Built only for streams whose records nothing reads but the writer (see
    ``CoupaStream.passthrough``); thread-safe, as a worker may decode a first page.
    """

    def __init__(
        self, schema: Mapping[str, t.Any], plan: DecimalPlan | None, replication_key: str | None
    ) -> None:
        self.replication_key = replication_key
        self._schema = schema
        self._plan = plan
        #: Set when decimals are emitted as numbers: records are then re-encoded.
        self._numbers = plan if plan is not None and not plan.as_text else None
        self._keys: dict[str, t.Any] = {"id": int}
        if replication_key:
            self._keys[replication_key] = str | None
        #: Unknown keys seen in nested objects, and how many failures may still teach some.
        self._extra: set[str] = set()
        self._learn = LEARN_FROM
        #: The first records read, whose key order the structs follow (``_in_order``).
        self._samples: list[Mapping[str, t.Any]] | None = None
        self._lock = threading.Lock()
        self._compiled = self._compile()

    def _compile(self) -> _Compiled:
        samples = self._samples or ()
        if self._numbers is not None:
            top = _rewrite(self._schema, self._numbers, self._extra, self._keys, samples)
        else:
            top = _struct(self._schema, self._plan, keys=self._keys, samples=samples)
        by_name = {field.encode_name: field.name for field in msgspec.structs.fields(top)}
        check = None
        if self._numbers is None and self._plan is not None:
            check = _checker(self._schema, self._plan, by_name, samples)
        bookmark = by_name[self.replication_key] if self.replication_key else ""
        return _Compiled(msgspec.json.Decoder(top), by_name["id"], bookmark, check)

    def __call__(self, body: bytes) -> list[Record]:
        """The page's records; raises like ``rawjson.decode`` on a broken or odd body."""
        try:
            elements = _elements.decode(rawjson.compact(body))
        except msgspec.ValidationError:
            return t.cast("list[Record]", rawjson.decode(body, raw=False))
        if self._samples is None:
            self._learn_order(elements)
        return [self.record(raw) for raw in elements]

    def _learn_order(self, elements: list[Raw]) -> None:
        """Order the structs as the first page's records hold their keys (once)."""
        # Each element is valid JSON already: the page was split by decoding it.
        decoded = (_any.decode(raw) for raw in elements[:SAMPLES])
        samples: list[Mapping[str, t.Any]] = [item for item in decoded if isinstance(item, dict)]
        if not samples:
            return  # an empty page teaches nothing: the next one will
        with self._lock:
            if self._samples is None:
                self._samples = samples
                self._compiled = self._compile()

    def record(self, raw: Raw) -> Record:
        """One record: passed through (re-encoded), or opened one level deep to be shaped."""
        compiled = self._compiled
        try:
            top = compiled.top.decode(raw)
            if compiled.check is not None:
                compiled.check(top)
            # A non-finite decimal ("NaN") fails here: shaping nulls and reports it.
            body = raw if self._numbers is None else Raw(_numbers.encode(top))
        except (msgspec.ValidationError, ValueError):
            if self._numbers is not None and self._learn > 0:
                self._learn_keys(raw)
            return t.cast("Record", rawjson.open_object(raw))
        record = RawRecord(body, {"id": getattr(top, compiled.id)})
        if self.replication_key:
            bookmark = getattr(top, compiled.bookmark)
            if bookmark is not UNSET:
                record[self.replication_key] = bookmark
        return record

    def _learn_keys(self, raw: Raw) -> None:
        """Keep raw, from now on, the unknown keys of the nested objects of ``raw``."""
        self._learn -= 1
        assert self._numbers is not None
        try:
            record = _any.decode(raw)
        except msgspec.DecodeError:
            return
        if not isinstance(record, dict):
            return
        with self._lock:  # a worker may decode a first page meanwhile
            unknown = set(_unknown_keys(record, self._schema, self._numbers)) - self._extra
            if unknown:
                self._extra |= unknown
                self._compiled = self._compile()


def _unknown_keys(
    obj: Mapping[str, t.Any], schema: Mapping[str, t.Any], plan: DecimalPlan
) -> Iterator[str]:
    """The keys ``schema`` does not declare, in the objects below ``obj`` that ``plan`` opens."""
    properties = schema["properties"]
    nested = [(name, properties[name], sub) for name, sub in plan.objects.items()]
    nested += [(name, properties[name]["items"], sub) for name, sub in plan.arrays.items()]
    for name, sub_schema, sub in nested:
        value = obj.get(name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                yield from (key for key in item if key not in sub_schema["properties"])
                yield from _unknown_keys(item, sub_schema, sub)


def _checker(
    schema: Mapping[str, t.Any],
    plan: DecimalPlan,
    by_name: Mapping[str, str],
    samples: Sequence[Mapping[str, t.Any]],
) -> Callable[[msgspec.Struct], None]:
    """The lax check of a strict decode's decimal strings: all in C, no value in Python.

    The decimals (and the objects holding some) are copied from the strict decode into
    a struct of their own, encoded, and decoded again laxly as finite floats. Its top
    level is filled by position; below, objects keep the order the decode gave them.
    """
    names = [*plan.numbers, *plan.objects, *plan.arrays]
    strict = _struct(schema, plan, samples=samples, ordered=False)
    lax_struct = _struct(schema, plan, lax=True, samples=samples, ordered=False)
    lax = msgspec.json.Decoder(lax_struct, strict=False)
    pick = operator.attrgetter(*(by_name[name] for name in names))
    single = len(names) == 1

    def check(top: msgspec.Struct) -> None:
        picked = pick(top)
        lax.decode(_encoder.encode(strict(picked) if single else strict(*picked)))

    return check

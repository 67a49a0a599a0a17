"""Coupa's decimals: where a schema holds them, and how they are emitted.

Coupa sends decimals as strings (``"567.07"``); targets need exact numbers. Instead
of letting the SDK re-walk every nested object of every record against the schema,
each stream compiles its schema into a small plan naming only the places that hold
decimals, and converts those to ``Decimal`` (which the msgspec writer emits as a JSON
number, digit for digit), or, with ``decimal_format=string``, checks and keeps them
as ``x-singer.decimal`` text declared with R39's precision and scale.
"""

from __future__ import annotations

import operator
import re
import typing as t
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from tap_coupa import rawjson
from tap_coupa.rawjson import Raw, Record

Schema = dict[str, t.Any]
SINGER_DECIMAL = "x-singer.decimal"
#: The keywords of SDK's x-singer.decimal that size a DECIMAL column.
SIZE_KEYS = ("precision", "scale")
#: A decimal string whose text is a JSON number as it stands (group 1), or null: a raw
#: value that needs no decoding.
_JSON_DECIMAL = re.compile(
    rb'"(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"|null'
).fullmatch
#: The bytes of JSON numbers and nulls, with separators.
_NUMBER_BYTES = b"0123456789.eE+-nul,\t\n\r "
#: A raw null, as ``tuple.count`` compares a record's raw values with it.
_NULL = Raw(b"null")


def _types(schema: t.Mapping[str, t.Any]) -> set[str]:
    kind = schema.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def is_decimal(schema: t.Mapping[str, t.Any]) -> bool:
    """A property holding a decimal: a JSON number, or a string in x-singer.decimal format."""
    return "number" in _types(schema) or schema.get("format") == SINGER_DECIMAL


def _parse(value: str) -> Decimal | None:
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


@dataclass
class DecimalPlan:
    """Where the decimals are in one object shape (``prefix`` names it in reports).

    ``as_text`` keeps them as strings (checked, and made of any JSON number the API
    sent): the ``decimal_format=string`` mode, where no conversion is needed at all.
    """

    numbers: tuple[str, ...] = ()
    objects: dict[str, DecimalPlan] = field(default_factory=dict)
    arrays: dict[str, DecimalPlan] = field(default_factory=dict)
    prefix: str = ""
    as_text: bool = False

    def __post_init__(self) -> None:
        #: Picks every decimal of an object at once (KeyError when one is missing).
        self._pick: t.Callable[[Record], tuple[t.Any, ...]] | None = (
            operator.itemgetter(*self.numbers) if len(self.numbers) > 1 else None
        )

    @classmethod
    def compile(
        cls, schema: t.Mapping[str, t.Any], prefix: str = "", *, as_text: bool = False
    ) -> DecimalPlan | None:
        """Build the plan for an object schema; None when it holds no decimals."""
        numbers: list[str] = []
        objects: dict[str, DecimalPlan] = {}
        arrays: dict[str, DecimalPlan] = {}
        for name, prop in schema.get("properties", {}).items():
            kinds = _types(prop)
            if is_decimal(prop):
                numbers.append(name)
            elif "object" in kinds and (
                sub := cls.compile(prop, f"{prefix}{name}.", as_text=as_text)
            ):
                objects[name] = sub
            elif "array" in kinds and (
                sub := cls.compile(prop.get("items", {}), f"{prefix}{name}[].", as_text=as_text)
            ):
                arrays[name] = sub
        if not (numbers or objects or arrays):
            return None
        return cls(tuple(numbers), objects, arrays, prefix, as_text)

    def without(self, done: DecimalPlan | None) -> DecimalPlan | None:
        """The plan less what ``done`` already converts (None when nothing is left).

        A child stream's rows are items of its parent's array, which the parent's plan
        has converted already; converting them again would parse each decimal twice.
        """
        if done is None:
            return self
        numbers = tuple(name for name in self.numbers if name not in done.numbers)
        objects = _remaining(self.objects, done.objects)
        arrays = _remaining(self.arrays, done.arrays)
        if not (numbers or objects or arrays):
            return None
        return DecimalPlan(numbers, objects, arrays, self.prefix, self.as_text)

    def apply(self, obj: Record, bad: set[str]) -> None:
        """Convert decimals in place; unparsable or non-finite ones become null, reported.

        Values may still be raw JSON (see ``rawjson``): a decimal string that is
        already JSON number text is emitted as those very bytes, without a Decimal;
        objects and arrays holding decimals are opened one level.
        """
        get = obj.get
        as_text = self.as_text
        numbers = self.numbers
        pick = self._pick
        if pick is not None and self._convert_raw(obj, pick):
            numbers = ()
        for name in numbers:
            value = get(name)
            if value.__class__ is Raw:
                match = _JSON_DECIMAL(value)
                if match is not None:
                    if not as_text and match[1] is not None:
                        obj[name] = Raw(match[1])
                    continue
                value = obj[name] = rawjson.value(value)
            if value.__class__ is str:
                number = _parse(value)
                if number is None:
                    obj[name] = None
                    if value.strip():
                        bad.add(f"{self.prefix}{name}={value[:40]!r}")
                elif not as_text:
                    obj[name] = number
            elif as_text and value is not None and value.__class__ is not bool:
                obj[name] = str(value)  # a JSON number, decoded exactly as Decimal or int
        self._apply_nested(obj, bad)

    def _convert_raw(self, obj: Record, pick: t.Callable[[Record], tuple[t.Any, ...]]) -> bool:
        """All the decimals of ``obj`` at once, when all are raw decimal strings or null.

        The usual case, checked in a few C calls over their joined bytes instead of a
        regular expression per value: unquoted, they must read as a JSON array of
        numbers and nulls, every non-null value having been a string.
        """
        try:
            picked = pick(obj)
            joined = b",".join(picked)
        except (KeyError, TypeError):  # one is missing, or not raw JSON
            return False
        numbers = joined.replace(b'"', b"")
        nulls = picked.count(_NULL)  # the values that are null, not the text "null"
        if (
            numbers.translate(None, _NUMBER_BYTES)
            or joined.count(b"null") != nulls
            or joined.count(b'"') != 2 * (len(self.numbers) - nulls)
        ):
            return False
        values = rawjson.elements(b"[%s]" % numbers)
        if values is None or len(values) != len(self.numbers):
            return False
        if not self.as_text:
            obj.update(zip(self.numbers, values, strict=True))
        return True

    def _apply_nested(self, obj: Record, bad: set[str]) -> None:
        get = obj.get
        for name, plan in self.objects.items():
            value = get(name)
            if value.__class__ is Raw:
                value = obj[name] = rawjson.open_object(value)
            if value.__class__ is dict:
                plan.apply(value, bad)
        for name, plan in self.arrays.items():
            items = get(name)
            if items.__class__ is Raw:
                items = obj[name] = rawjson.open_array(items)
            if items.__class__ is list:
                for item in items:
                    if item.__class__ is dict:
                        plan.apply(item, bad)


def _remaining(
    plans: dict[str, DecimalPlan], done: dict[str, DecimalPlan]
) -> dict[str, DecimalPlan]:
    left = {name: plan.without(done.get(name)) for name, plan in plans.items()}
    return {name: plan for name, plan in left.items() if plan is not None}


def decimals_as_strings(schema: Schema) -> None:
    """Declare every number as an x-singer.decimal string, keeping its DECIMAL(p, s) size.

    SDK SQL targets create DECIMAL(precision, scale) columns for these; any other
    target receives the exact digits as text instead of a float.
    """
    for name, prop in schema.get("properties", {}).items():
        if is_decimal(prop):
            size = {key: prop[key] for key in SIZE_KEYS if key in prop}
            schema["properties"][name] = {
                "type": ["string", "null"],
                "format": SINGER_DECIMAL,
                **size,
            }
        else:
            decimals_as_strings(prop.get("items", prop))


def conformed(schema: Schema, own: Schema) -> Schema:
    """``schema`` (the catalog's) with each decimal spelled as ``own`` (the tap's) spells it.

    The records follow the tap's own schema for this run's ``decimal_format``; a
    catalog discovered with the other format spells the same decimals as numbers
    where the records hold strings, or the reverse. The SDK's catalog model also drops
    precision and scale, which size the target's DECIMAL columns. The catalog's
    choice of properties is kept.
    """
    if "items" in schema and isinstance(own.get("items"), dict):
        return {**schema, "items": conformed(schema["items"], own["items"])}
    props, known = schema.get("properties"), own.get("properties") or {}
    if not isinstance(props, dict):
        return schema
    merged: Schema = {}
    for name, prop in props.items():
        source = known.get(name)
        if not isinstance(source, dict):
            merged[name] = prop
        elif is_decimal(prop) and is_decimal(source):
            merged[name] = dict(source)
        else:
            merged[name] = conformed(prop, source)
    return {**schema, "properties": merged}

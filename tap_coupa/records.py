"""Per-record work, compiled once per stream from its schema so the hot path stays lean.

Coupa sends decimals as strings (``"567.07"``); targets need exact numbers. Instead
of letting the SDK re-walk every nested object of every record against the schema,
each stream compiles its schema into a small plan naming only the places that hold
decimals, and converts those to ``Decimal`` (which the msgspec writer emits as a JSON
number, digit for digit).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import pendulum

Record = dict[str, t.Any]


def _types(schema: t.Mapping[str, t.Any]) -> set[str]:
    kind = schema.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


@dataclass
class DecimalPlan:
    """Where the decimals are in one object shape (``prefix`` names it in reports)."""

    numbers: tuple[str, ...] = ()
    objects: dict[str, DecimalPlan] = field(default_factory=dict)
    arrays: dict[str, DecimalPlan] = field(default_factory=dict)
    prefix: str = ""

    @classmethod
    def compile(cls, schema: t.Mapping[str, t.Any], prefix: str = "") -> DecimalPlan | None:
        """Build the plan for an object schema; None when it holds no decimals."""
        numbers: list[str] = []
        objects: dict[str, DecimalPlan] = {}
        arrays: dict[str, DecimalPlan] = {}
        for name, prop in schema.get("properties", {}).items():
            kinds = _types(prop)
            if "number" in kinds:
                numbers.append(name)
            elif "object" in kinds and (sub := cls.compile(prop, f"{prefix}{name}.")):
                objects[name] = sub
            elif "array" in kinds and (
                sub := cls.compile(prop.get("items", {}), f"{prefix}{name}[].")
            ):
                arrays[name] = sub
        if not (numbers or objects or arrays):
            return None
        return cls(tuple(numbers), objects, arrays, prefix)

    def apply(self, obj: Record, bad: set[str]) -> None:
        """Convert decimal strings in place; unparsable ones become null and are reported."""
        get = obj.get
        for name in self.numbers:
            value = get(name)
            if value.__class__ is str:
                try:
                    obj[name] = Decimal(value)
                except InvalidOperation:
                    obj[name] = None
                    if value.strip():
                        bad.add(f"{self.prefix}{name}={value[:40]!r}")
        for name, plan in self.objects.items():
            value = get(name)
            if value.__class__ is dict:
                plan.apply(value, bad)
        for name, plan in self.arrays.items():
            items = get(name)
            if items.__class__ is list:
                for item in items:
                    if item.__class__ is dict:
                        plan.apply(item, bad)


PrunePlan = dict[str, "PrunePlan | None"]


def compile_prune(mask: t.Mapping[tuple[str, ...], bool]) -> PrunePlan:
    """Turn a selection mask into the nested property names to drop (None = drop it).

    The SDK walks every nested object of every record to apply the mask; compiling it
    once lets a record with everything selected (the usual case) pass untouched.
    """
    plan: PrunePlan = {}
    for crumb, selected in mask.items():
        if selected or len(crumb) < 2 or crumb[0] != "properties":
            continue
        *parents, name = crumb[1::2]
        node: PrunePlan | None = plan
        for parent in parents:
            node = node.setdefault(parent, {}) if node is not None else None
        if node is not None:
            node[name] = None
    return plan


def prune(obj: Record, plan: PrunePlan) -> None:
    """Drop deselected properties in place."""
    for name, sub in plan.items():
        if sub is None:
            obj.pop(name, None)
        elif (value := obj.get(name)).__class__ is dict:
            prune(value, sub)


class InstantMax:
    """The latest instant among ISO-8601 strings that carry different UTC offsets.

    Coupa stamps times in the instance's zone, so the offset flips with daylight
    saving and plain string comparison lies across the flip. Strings that share an
    offset do compare correctly, so the hot path keeps one maximum per offset and
    parses only those few at the end.
    """

    def __init__(self) -> None:
        self._by_offset: dict[str, str] = {}

    def observe(self, value: t.Any) -> None:
        """Account for one replication-key value (ignoring nulls)."""
        if value.__class__ is not str or not value:
            return
        offset = value[-6:] if len(value) > 6 and value[-6] in "+-" else value[-1:]
        current = self._by_offset.get(offset)
        if current is None or value > current:
            self._by_offset[offset] = value

    def latest(self) -> pendulum.DateTime | None:
        """The latest instant observed, or None if none was."""
        instants = [parse_instant(value) for value in self._by_offset.values()]
        return max(instants, default=None)


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", dict: "object", list: "array"}


def infer_properties(samples: t.Iterable[t.Mapping[str, t.Any]]) -> dict[str, t.Any]:
    """JSON Schema properties for the keys seen in ``samples`` (nullable, types unioned)."""
    seen: dict[str, set[str]] = {}
    for sample in samples:
        for key, value in sample.items():
            kinds = seen.setdefault(key, set())
            if value is not None:
                kinds.add(
                    _JSON_TYPES.get(type(value), "array" if isinstance(value, list) else "string")
                )
    return {
        key: {"type": [*sorted(kinds or {"string"}), "null"]} for key, kinds in sorted(seen.items())
    }


def parse_instant(value: str) -> pendulum.DateTime:
    """Parse an ISO-8601 instant; a value without an offset is taken as UTC."""
    parsed = pendulum.parse(value, tz="UTC")
    if not isinstance(parsed, pendulum.DateTime):
        msg = f"{value!r} is not a date-time"
        raise ValueError(msg)
    return parsed

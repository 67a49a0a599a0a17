"""Per-record work (pruning, bookmarks, custom-field typing), compiled to keep it lean."""

from __future__ import annotations

import typing as t
from decimal import Decimal

import pendulum

from tap_coupa import rawjson

Record = dict[str, t.Any]
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
    """Drop deselected properties in place (opening raw objects that hold some)."""
    for name, sub in plan.items():
        if sub is None:
            obj.pop(name, None)
            continue
        value = obj.get(name)
        if value.__class__ is rawjson.Raw:
            value = obj[name] = rawjson.open_object(value)
        if value.__class__ is dict:
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


_JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    Decimal: "number",
    dict: "object",
    list: "array",
}


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

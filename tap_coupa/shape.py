"""Shaping a record for output, with plans compiled once per stream.

The SDK walks every nested object of every record, for type conformance and for the
catalog's deselected properties. Here each stream compiles both into small plans once
(``DecimalPlan``, ``PrunePlan``), so a record with nothing to change passes untouched.
"""

from __future__ import annotations

import typing as t

from tap_coupa import rawjson
from tap_coupa.decimals import DecimalPlan
from tap_coupa.passthrough import RawRecord

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterable, Mapping

    from tap_coupa.rawjson import Record

#: Unknown properties are kept under this catch-all object rather than dropped.
EXTRA_FIELDS = "extra-fields"

PrunePlan = dict[str, "PrunePlan | None"]


def compile_prune(mask: Mapping[tuple[str, ...], bool]) -> PrunePlan:
    """Turn a selection mask into the nested property names to drop (None = drop it)."""
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


class RecordShaper:
    """Converts decimals, keeps unknown properties under ``extra-fields``, drops deselected.

    Each problem (a value that is not a decimal, a property R39 does not know) is
    logged once per stream, not once per record.
    """

    def __init__(
        self,
        stream: str,
        schema: Mapping[str, t.Any],
        *,
        decimal_strings: bool,
        replication_key: str | None,
        logger: logging.Logger,
    ) -> None:
        self.stream = stream
        self.replication_key = replication_key
        self.logger = logger
        #: Every decimal of the schema.
        self.decimals = DecimalPlan.compile(schema, as_text=decimal_strings)
        #: What ``shape`` converts: all of ``decimals``, less what a parent converted.
        self.convert = self.decimals
        self.prune_plan: PrunePlan = {}
        self._known = frozenset(schema["properties"])
        self._reported: set[str] = set()
        #: Values found not to be decimals, reported after each record (reused).
        self._bad: set[str] = set()

    def select(self, mask: Mapping[tuple[str, ...], bool]) -> None:
        """Compile the catalog's selection (once per sync)."""
        self.prune_plan = compile_prune(mask)

    def skip_converted(self, done: DecimalPlan | None) -> None:
        """Convert only what ``done`` (the parent's plan for this array) did not."""
        self.convert = self.decimals.without(done) if self.decimals else None

    def changes(self) -> frozenset[str]:
        """The nested properties shaping and dropping change in place."""
        pruned = [name for name, sub in self.prune_plan.items() if sub is not None]
        converted = [*self.convert.objects, *self.convert.arrays] if self.convert else []
        return frozenset(pruned + converted)

    def shape(self, record: Record) -> Record:
        """Shape one record in place, as it is emitted.

        Done record by record, not page by page: the record's objects are then still
        in the CPU cache when the writer encodes them. A record passed through
        (``passthrough``) was checked to need nothing.
        """
        if record.__class__ is RawRecord:
            return record
        key = self.replication_key
        if key and (value := record.get(key)).__class__ is rawjson.Raw:
            record[key] = rawjson.value(value)
        if self.convert is not None:
            bad = self._bad
            self.convert.apply(record, bad)
            if bad:
                self._report("not a decimal; emitted as null", bad)
                bad.clear()
        if not record.keys() <= self._known:  # compared in place (issuperset copies)
            extra = {name: record.pop(name) for name in list(record) if name not in self._known}
            record[EXTRA_FIELDS] = extra
            self._report("kept under 'extra-fields'", extra)
        return record

    def drop_deselected(self, record: Record) -> None:
        """Drop the catalog's deselected properties, as the record is written.

        Not in ``shape``: child streams read their rows, and their ancestors' ids, from
        the shaped record first, whatever the parent's own selection.
        """
        if self.prune_plan:
            prune(record, self.prune_plan)

    def _report(self, what: str, names: Iterable[str]) -> None:
        new = sorted(set(names) - self._reported)
        if new:
            self._reported.update(new)
            self.logger.warning("Stream %r: fields %s: %s", self.stream, what, ", ".join(new))

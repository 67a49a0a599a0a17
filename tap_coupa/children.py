"""Child streams: the rows of a parent record's nested array, emitted with no request.

Coupa nests lines inside their document (``invoice-lines`` in an invoice, allocations
in each line). A child stream takes them from the parent record as it is emitted, adds
the parent's id, and shapes them with its own, usually richer, schema. Its parent
shapes first: a child converts only the decimals its parent's plan did not.
"""

from __future__ import annotations

import typing as t

from typing_extensions import override

from tap_coupa import rawjson
from tap_coupa.client import CoupaStream

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from singer_sdk.helpers.types import Context

    from tap_coupa.rawjson import Record
    from tap_coupa.shape import RecordShaper


class ChildStream(CoupaStream):
    """Rows of ``parent[array_field]``, each carrying the parent's id as ``parent_key``."""

    #: The parent's array property this stream's rows come from.
    array_field: str = ""
    #: The property carrying the parent record's id.
    parent_key: str | None = None
    #: The ids of the ancestors above the parent, copied from the parent's row, so a
    #: grandchild joins to every level (an allocation: invoice-id, invoice-line-id).
    ancestor_keys: tuple[str, ...] = ()

    _schema_sent = False
    _emitted = 0
    #: Rows not emitted this sync for not being objects in an array, and the first one.
    _odd = 0
    _odd_example = ""
    #: The nested properties the shaper changes in place (see ``_own``).
    _changes: frozenset[str] = frozenset()

    def prepare(self, parent: RecordShaper, version: int | None) -> None:
        """Send SCHEMA once, before any record, and skip what the parent converts.

        By the time a row reaches this stream, its parent has converted everything the
        parent's plan names for that array. A parent that sends ACTIVATE_VERSION (a
        FULL_TABLE sync with emit_activate_version_messages) emits every row of its
        children too, so they take its version: the target replaces their table with
        the parent's, and a deleted document's lines go with it.
        """
        if self.selected and not self._schema_sent:
            self._write_schema_message()
            self._schema_sent = True
        if self.selected and version is not None and version != self._stream_version:
            self._stream_version = version
            self._write_activate_version_message(version)
        self._emitted = 0
        self._odd = 0
        done = parent.decimals.arrays.get(self.array_field) if parent.decimals else None
        self.shaper.skip_converted(done)
        self.prepare_children()
        self._changes = self.shaper.changes()

    def log_counts(self, parent: str) -> None:
        """Log this sync's rows, and those it could not read; then its own children's."""
        if self.selected:
            self.logger.info(
                "Stream %r: %d records (from %r, no extra requests).",
                self.name,
                self._emitted,
                parent,
            )
        if self._odd:
            self.logger.warning(
                "Stream %r: %d rows of %r records were not objects in an array (%s), "
                "so were not emitted as rows (Coupa sends each row as an object in one).",
                self.name,
                self._odd,
                parent,
                self._odd_example,
            )
        self.log_children()

    def _skip(self, parent: Mapping[str, t.Any], value: t.Any, *, whole: bool) -> None:
        """Count a row that is not an object in an array; the first is described."""
        self._odd += 1
        if self._odd == 1:
            parent_id = parent.get("id")
            if parent_id.__class__ is rawjson.Raw:
                parent_id = rawjson.value(parent_id)
            where = self.array_field if whole else f"an item of {self.array_field}"
            self._odd_example = f"id {parent_id}'s {where} is {rawjson.kind(value)}"

    def emit_from(self, parent: Mapping[str, t.Any]) -> None:
        """Emit the rows of ``parent[array_field]``, each carrying its ancestors' ids."""
        rows = parent.get(self.array_field)
        if rows.__class__ is rawjson.Raw:
            rows = rawjson.open_array(rows)
        if not isinstance(rows, list):
            if rows is not None:  # null, or missing: no rows
                self._skip(parent, rows, whole=True)
            return
        parent_id = parent.get("id")
        if parent_id.__class__ is rawjson.Raw:
            parent_id = rawjson.value(parent_id)
        keys = {key: parent.get(key) for key in self.ancestor_keys}
        if self.parent_key:
            keys[self.parent_key] = parent_id
        emit = self.selected
        shape = self.shaper.shape
        # The SDK's rule: a row this stream's map filters out (or removes) feeds no child.
        keep = self.stream_maps[0].get_filter_result if self._children else None
        for row in rows:
            if not isinstance(row, dict):
                self._skip(parent, row, whole=False)
                continue
            record = self._own(row)
            record.update(keys)
            shape(record)
            if keep is not None and keep(record):
                self._sync_children(record)  # first: writing drops deselected properties
            if emit:
                self._write_record_message(record)
                self._emitted += 1

    def _own(self, row: Record) -> Record:
        """A copy of a parent's row that shaping may change: the parent is emitted after.

        Raw values are opened into the copy; only objects the parent opened already,
        and this stream changes too, are copied deeper. Without raw JSON, all of it is.
        """
        if not self.raw_json:
            return t.cast("Record", rawjson.materialize(row))
        record = dict(row)
        for name in self._changes:
            if (value := record.get(name)).__class__ is dict or value.__class__ is list:
                record[name] = rawjson.materialize(value)
        return record

    @override
    def get_records(self, context: Context | None) -> Iterable[Record]:
        """Nothing of its own: rows arrive through ``emit_from`` as the parent syncs."""
        return ()

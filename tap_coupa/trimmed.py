"""Noticing responses trimmed by a Coupa API response filter nobody asked for.

An administrator can make a response filter the default for invoices, orders, users,
expenses and requisitions; every call then gets fewer fields, with no error. A sync
would load mostly empty columns. A sample of the first pages shows it: records that
carry fewer than half of the schema's top-level keys.
"""

from __future__ import annotations

import typing as t

from tap_coupa import rawjson
from tap_coupa.passthrough import RawRecord

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Collection, KeysView, Sequence

    from tap_coupa.rawjson import Record

#: Pages sampled, and records looked at per page: enough to tell, cheap on any page.
SAMPLE_PAGES = 3
RECORDS_PER_PAGE = 5
#: Below this share of declared keys present on average, responses look trimmed.
TRIMMED_SHARE = 0.5


class TrimmedResponses:
    """Warns once if the sampled records lack most of the declared top-level keys."""

    def __init__(self, stream: str, declared: Collection[str], logger: logging.Logger) -> None:
        self.stream = stream
        self.declared = frozenset(declared)
        self.logger = logger
        self._pages = 0
        self._records = 0
        self._present = 0

    def observe(self, records: Sequence[Record]) -> None:
        """Sample one page (only the first few pages are looked at)."""
        if self._pages >= SAMPLE_PAGES or not records:
            return
        self._pages += 1
        step = max(1, len(records) // RECORDS_PER_PAGE)
        for record in records[::step]:
            self._records += 1
            self._present += len(self.declared & _keys(record))
        if self._pages == SAMPLE_PAGES:
            self.finish()

    def finish(self) -> None:
        """Judge the sample (once): at its last page, or when the scan ends before."""
        records, self._records = self._records, 0
        self._pages = SAMPLE_PAGES
        if not records or self._present >= TRIMMED_SHARE * records * len(self.declared):
            return
        self.logger.warning(
            "Stream %r: records carry %.0f of the schema's %d top-level fields on average: "
            "an API response filter set as the default by a Coupa administrator is "
            "likely trimming them. Set request_fields: true (or stream_options.%s."
            "request_fields, or stream_options.%s.fields) to ask for the fields by name.",
            self.stream,
            self._present / records,
            len(self.declared),
            self.stream,
            self.stream,
        )


def _keys(record: Record) -> KeysView[str]:
    """The record's top-level keys (a record passed through holds only two as a dict)."""
    if isinstance(record, RawRecord):
        return t.cast("Record", rawjson.open_object(record.body)).keys()
    return record.keys()

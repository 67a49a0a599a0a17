"""Coupa's ``limit``/``offset`` pagination, planned ahead so pages can be fetched concurrently.

Coupa pages are ``limit`` records (at most 50) starting ``offset`` records into the
result (0-based). Successive offsets here advance by ``limit - overlap``: each page
repeats the last record of the page before it. That shared record is the proof that
nothing slipped between the two pages while the collection changed under the sync;
when it is missing the engine fills the gap with an id-bounded query.
"""

from __future__ import annotations

import typing as t

from singer_sdk.pagination import OffsetPaginator
from typing_extensions import override

MAX_PAGE_SIZE = 50


class RecordsPage(t.Protocol):
    """What the paginator reads of a page: its records, as ``json()``.

    The SDK hands paginators a ``requests.Response``; the engine hands them its own
    decoded ``Page``. Both answer ``json()`` with the page's records.
    """

    def json(self) -> t.Any:
        """The page's records."""


class CoupaOffsetPaginator(OffsetPaginator):
    """Offsets for one id-ordered scan; a short page is the last one."""

    def __init__(self, page_size: int, overlap: int = 1) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            msg = f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}"
            raise ValueError(msg)
        super().__init__(start_value=0, page_size=page_size)
        self.step = max(1, page_size - overlap)

    @override
    def get_next(self, response: RecordsPage) -> int:
        """The offset of the page after the current one."""
        return self.current_value + self.step

    @override
    def has_more(self, response: RecordsPage) -> bool:
        """A full page may have successors; a short one ends the scan."""
        return len(response.json()) >= self.page_size

    @override
    def advance(self, response: RecordsPage) -> None:
        """Move past one page: the SDK's rule, for any page that has records.

        Offsets only grow, so the SDK's loop check (the same token twice) cannot
        fire; the page count and end flag are kept as the SDK keeps them.
        """
        self._page_count += 1
        if self.has_more(response):
            self._value = self.get_next(response)
        else:
            self._finished = True

    def offset(self, index: int) -> int:
        """The offset of page ``index``, so pages can be requested before earlier ones land."""
        return index * self.step

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

MAX_PAGE_SIZE = 50


class CoupaOffsetPaginator(OffsetPaginator):
    """Offsets for one id-ordered scan; a short page is the last one."""

    def __init__(self, page_size: int, overlap: int = 1) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            msg = f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}"
            raise ValueError(msg)
        super().__init__(start_value=0, page_size=page_size)
        self.step = max(1, page_size - overlap)

    def get_next(self, response: t.Any) -> int:
        """The offset of the page after the current one."""
        return self.current_value + self.step

    def has_more(self, response: t.Any) -> bool:
        """A full page may have successors; a short one ends the scan (no extra request)."""
        return len(response) >= self.page_size

    def offset(self, index: int) -> int:
        """The offset of page ``index``, so pages can be requested before earlier ones land."""
        return index * self.step

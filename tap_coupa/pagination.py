"""Coupa's ``limit``/``offset`` pagination, planned ahead so pages can be fetched concurrently.

Coupa pages are ``limit`` records (at most 50) starting ``offset`` records into the
result (0-based). Successive offsets here advance by ``limit - OVERLAP``: each page
repeats the last record of the page before it. That shared record is the proof that
nothing slipped between the two pages while the collection changed under the sync;
when it is missing the engine fills the gap with an id-bounded query.

A short page is not always the last: an endpoint may silently serve fewer records
than ``limit`` asks. ``has_more`` ends a scan on a short page only when the server has
already shown it serves more per page; otherwise the next request settles it, and a
cap seen twice becomes the page size.
"""

from __future__ import annotations

import typing as t

from singer_sdk.pagination import OffsetPaginator
from typing_extensions import override

MAX_PAGE_SIZE = 50
#: Records each page repeats from the page before it: the one the engine checks.
OVERLAP = 1


class RecordsPage(t.Protocol):
    """What the paginator reads of a page: its records, as ``json()``.

    The SDK hands paginators a ``requests.Response``; the engine hands them its own
    decoded ``Page``. Both answer ``json()`` with the page's records.
    """

    def json(self) -> t.Any:
        """The page's records."""


class CoupaOffsetPaginator(OffsetPaginator):
    """Offsets for one id-ordered scan, and whether a page can be its last."""

    def __init__(self, page_size: int) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            msg = f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}"
            raise ValueError(msg)
        super().__init__(start_value=0, page_size=page_size)
        self._limit = page_size
        self.step = max(1, page_size - OVERLAP)
        #: The most records one page has held: the server serves at least this many.
        self.most = 0
        #: The length of the last page if it was short but not proven the last.
        self.unproven = 0

    @property
    @override
    def page_size(self) -> int:
        """Records asked for per page (``limit``): the setting, or a cap the server showed."""
        return self._limit

    @override
    def get_next(self, response: RecordsPage) -> int:
        """The offset of the page after the current one."""
        return self.current_value + self.step

    @override
    def has_more(self, response: RecordsPage) -> bool:
        """Whether records may follow a page.

        A full page may have successors, an empty one has none. A short page of n
        records is the last only if a page has already held more than n: then the
        server serves more than n, and stopped because the records did. Until then it
        may cap ``limit`` at n, and the request after the page settles it.
        """
        count = len(response.json())
        return count >= self.page_size or count >= max(1, self.most)

    @override
    def advance(self, response: RecordsPage) -> None:
        """Move past one page: the SDK's rule, with short pages judged by ``has_more``.

        Two pages in a row that stop at the same short length while records follow
        the first are the server's cap: it becomes ``page_size``, so the scan goes on
        with pages the server serves whole. Offsets only grow, so the SDK's loop check
        (the same token twice) cannot fire; the page count and end flag are kept as
        the SDK keeps them.
        """
        count = len(response.json())
        if 0 < count < self.page_size and count == self.unproven:
            self._limit = count
            self.step = max(1, count - OVERLAP)
        self._page_count += 1
        more = self.has_more(response)
        self.unproven = count if more and count < self.page_size else 0
        self.most = max(self.most, count)
        if more:
            self._value = self.get_next(response)
        else:
            self._finished = True

    def offset(self, index: int) -> int:
        """The offset of page ``index``, so pages can be requested before earlier ones land."""
        return index * self.step

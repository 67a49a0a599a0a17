"""The scan against a collection that changes at every request, pages landing in any order.

Randomized with fixed seeds, in process (the engine's own ``Collection`` and mock
transport): records are deleted, inserted (higher ids), enter the filter (lower ids,
shifting pages right) and leave it, while the endpoint may cap ``limit`` and pages
are sent and answered out of order. Whatever happens, every record that matched
from the scan's start to its end is emitted, once, in id order, in bounded requests.
"""

from __future__ import annotations

import random
import typing as t
from concurrent.futures import Future

import pytest

from tap_coupa.http import Page
from tap_coupa.pagination import CoupaOffsetPaginator
from tests.test_engine import Collection, Query, at_offset, emitted, make_scan, once, ranges

pytestmark = pytest.mark.unit


class _Lazy(Future[Page]):
    """A request sent when its turn comes, or when the scan waits for its answer."""

    def __init__(self, fn: t.Callable[[], Page]) -> None:
        super().__init__()
        self.fn = fn

    def run(self) -> None:
        """Send the request, unless it was cancelled or has been sent."""
        if self.done() or not self.set_running_or_notify_cancel():
            return
        try:
            self.set_result(self.fn())
        except Exception as exc:  # handed to the engine, as the scheduler would
            self.set_exception(exc)

    def result(self, timeout: float | None = None) -> Page:
        self.run()
        return super().result(timeout)


class ShuffledRequests:
    """Sends queued requests in a random order, some only when the scan waits for them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.queued: list[_Lazy] = []

    def submit(
        self,
        stream: str,
        fn: t.Callable[[], Page],
        *,
        speculative: bool = False,
        wanted: t.Callable[[], bool] | None = None,
    ) -> Future[Page]:
        future = _Lazy(fn)
        self.queued.append(future)
        while self.queued and self.rng.random() < 0.5:
            self.queued.pop(self.rng.randrange(len(self.queued))).run()
        return future

    def promote(self, future: Future[Page]) -> None:
        """Order is random anyway."""


class Churn:
    """Random changes before each request; what matched throughout is what must arrive."""

    def __init__(self, coupa: Collection, outside: set[int], rng: random.Random) -> None:
        self.coupa = coupa
        #: Records that exist but do not match the filter yet (old ones, low ids).
        self.outside = outside
        self.rng = rng
        self.start = set(coupa.ids)
        #: Records that stopped matching at some point of the scan.
        self.left: set[int] = set()
        #: Every record that matched at some point of the scan.
        self.ever = set(coupa.ids)
        self.next_id = max(coupa.ids | outside) + 1

    def __call__(self, query: Query) -> None:
        assert len(self.coupa.queries) < 3000, "the scan does not end"
        ids, rng = self.coupa.ids, self.rng
        for _ in range(rng.choice([0, 0, 1, 2, 5, 12])):
            kind = rng.choice(["delete", "delete", "insert", "enter", "leave"])
            if kind in ("delete", "leave") and ids:
                gone = rng.choice(sorted(ids))
                ids.discard(gone)
                self.left.add(gone)
                if kind == "leave":
                    self.outside.add(gone)
            elif kind == "insert":
                ids.add(self.next_id)
                self.next_id += 1
            elif kind == "enter" and self.outside:
                entering = rng.choice(sorted(self.outside))
                self.outside.discard(entering)
                ids.add(entering)
            self.ever |= ids

    def owed(self, after: int | None) -> set[int]:
        """Records that matched from start to end, above the resume point."""
        return {i for i in self.start - self.left if after is None or i > after}


def churned_scan(seed: int) -> None:
    """One random collection, churn, page size, cap, concurrency and resume point."""
    rng = random.Random(seed)
    universe = list(range(1, rng.choice([30, 80, 200]) + 1))
    matching = {i for i in universe if rng.random() < 0.7}
    page_size = rng.choice([2, 3, 5, 10, 50])
    cap = rng.choice([50, 50, max(1, page_size - 1), max(1, page_size // 2), 3])
    coupa = Collection(matching, cap=cap, empty=rng.choice([404, 200]))
    churn = Churn(coupa, set(universe) - matching, rng)
    coupa.before = churn
    after = rng.choice([None, None, rng.choice(universe)])
    scan = make_scan(
        coupa,
        page_size=page_size,
        max_in_flight=rng.choice([1, 2, 4, 8]),
        since=rng.choice([None, "2024-01-01T00:00:00Z"]),
        requests=ShuffledRequests(rng),
        missing_ok=rng.choice([True, False]),  # False: the delete check's listing
    )
    scan.base_id = scan.last_id = after
    scan.paginator = CoupaOffsetPaginator(page_size)
    scan.paginator.most = rng.choice([0, 0, min(page_size, cap)])
    ids = [int(record["id"]) for record in scan]
    context = f"seed {seed}: page_size {page_size}, cap {cap}, after {after}"
    assert ids == sorted(set(ids)), f"{context}: ids strictly increasing, none twice"
    missing = churn.owed(after) - set(ids)
    assert not missing, f"{context}: lost {sorted(missing)[:10]}"
    assert set(ids) <= churn.ever, f"{context}: emitted ids that never matched"


@pytest.mark.parametrize("block", range(6))
def test_a_scan_under_churn_loses_nothing(block: int) -> None:
    """Records deleted, inserted, entering and leaving the filter under the scan: none
    that matched throughout is lost or written twice, and no honest page is refused as
    out of order. (Seen failing with the gap repair by id range, or a stricter order
    check, switched off; not with the read on above a repeating page switched off, which
    ``test_a_page_repeating_the_one_before_...`` below proves.)"""
    for seed in range(block * 100, block * 100 + 100):
        churned_scan(seed)


def test_a_page_repeating_the_one_before_as_records_enter_is_read_on_above_the_last_id() -> None:
    """Eight records enter the filter below the cursor before the third page: it holds
    records already written, none new, and begins before the page before it did. The
    scan reads on above the last id: one page fewer than offsets would need, none skipped."""
    coupa = Collection(range(2, 62, 2))
    coupa.before = once(at_offset(8), lambda: coupa.ids.update(range(1, 17, 2)))
    assert emitted(make_scan(coupa, max_in_flight=1)) == list(range(2, 62, 2))
    assert [q["offset"] for q in coupa.pages()] == ["0", "4", "8", "0", "4", "8", "12", "16", "20"]
    assert ranges(coupa)[0] == ("18", None), "on above 18, the last id written"

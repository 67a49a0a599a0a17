"""A stream's scan run ahead of its turn, on a thread of its own.

The SDK writes streams one after another. Each selected collection's scan starts as
soon as the first stream starts, so its requests join the one scheduler (certain ones
first, the stream being written first); the pages it reads wait here, in order, until
the SDK reaches the stream and takes them.

Why nothing changes for correctness: the scan is the same ``IdScan``, only run on
another thread; records reach the writer in the order the scan emitted them, and the
STATE that covers them is written by the stream as it writes them (never by the scan),
so a sync killed while later streams read ahead resumes each stream from what was
written, exactly as before. Memory stays bounded: a stream ahead of its turn sends
requests only while the scheduler's ``MemoryBudget`` has room, and the stream being
written reads at most ``READY_AHEAD`` pages ahead of the writer.
"""

from __future__ import annotations

import collections
import threading
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Generator, Iterator

    from tap_coupa.engine import Batch
    from tap_coupa.rawjson import Record
    from tap_coupa.scheduler import MemoryBudget

#: Pages the stream being written reads ahead of the writer.
READY_AHEAD = 4


class Feed:
    """Runs ``batches`` on its own thread; iterating yields their records in order."""

    def __init__(
        self, name: str, batches: Generator[Batch, None, None], budget: MemoryBudget
    ) -> None:
        self._batches = batches
        self._budget = budget
        self._cond = threading.Condition()
        #: Pages read, waiting for the writer; each with what it counts in the budget.
        self._waiting: collections.deque[tuple[Batch, int]] = collections.deque()
        self._writing = False
        self._done = False
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"scan-{name}", daemon=True)

    def start(self) -> None:
        """Start the scan."""
        self._thread.start()

    def _run(self) -> None:
        try:
            for batch in self._batches:
                with self._cond:
                    while self._writing and len(self._waiting) >= READY_AHEAD and not self._closed:
                        self._cond.wait()
                    if self._closed:
                        return
                    # Only pages read ahead of the stream's turn count in the budget.
                    held = 0 if self._writing else batch.size
                    self._budget.hold(held)
                    self._waiting.append((batch, held))
                    self._cond.notify_all()
        except BaseException as exc:  # raised where the records are written
            self._error = exc
        finally:
            self._batches.close()
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Record]:
        """The scan's records, as the stream's turn comes; its failure is raised here."""
        with self._cond:
            self._writing = True
            self._cond.notify_all()
        try:
            while True:
                with self._cond:
                    while not self._waiting and not self._done:
                        self._cond.wait()
                    if not self._waiting:
                        if self._error is not None:
                            raise self._error
                        return
                    batch, held = self._waiting.popleft()
                    self._cond.notify_all()
                self._budget.release(held)
                yield from batch.records
        finally:
            self.close()

    def close(self) -> None:
        """Stop the scan (its thread ends at its next page) and drop what waits."""
        with self._cond:
            self._closed = True
            dropped = sum(held for _, held in self._waiting)
            self._waiting.clear()
            self._cond.notify_all()
        if dropped:
            self._budget.release(dropped)

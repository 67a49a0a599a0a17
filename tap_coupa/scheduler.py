"""One pool of request slots and one rate limiter for every stream of a sync.

Every API request of a sync goes through :class:`Scheduler`: ``max_concurrency``
workers, each sending one request at a time. Which request goes next is decided when
the rate limiter grants a token, not when the request was queued, so the order is:

1. requests a stream certainly needs (a scan's next page, a repair, a confirmation)
   before speculative ones (a probe, an offset page that may lie past the end);
2. within each kind, the stream the SDK is emitting first, then the others in the
   order they will be emitted: the records written soonest are downloaded first;
3. within a stream, in the order asked (lower pages first).

Speculative requests therefore only take tokens nothing certain wants. Streams ahead
of their turn download only while the pages they hold, plus those in flight for them,
fit the memory budget (:class:`MemoryBudget`); the stream being emitted is never held
back by it, so the sync always progresses and memory stays bounded.
"""

from __future__ import annotations

import logging
import threading
import typing as t
from concurrent.futures import Future

if t.TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from tap_coupa.ratelimit import RateLimiter

logger = logging.getLogger("tap-coupa")

T = t.TypeVar("T")

#: A worker with nothing to send for this long ends (another starts when needed): a
#: caller running syncs in one process keeps no idle threads.
IDLE_SECONDS = 10.0
#: What a page is assumed to weigh before any has been seen.
FIRST_PAGE_ESTIMATE = 256 * 1024


class MemoryBudget:
    """Bytes held for streams ahead of their turn: downloaded and waiting, or in flight.

    Pages waiting in a stream's feed are counted exactly (their body size); requests in
    flight for a stream ahead are counted at the largest page seen so far, since their
    size is known only once they land.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        #: Called when room is freed (the scheduler wakes its workers).
        self.on_room: Callable[[], None] = lambda: None
        self.held = 0
        self.in_flight = 0
        self.page_estimate = FIRST_PAGE_ESTIMATE
        #: The most ever held plus in flight, as estimated (reported, and tested).
        self.peak = 0
        #: How often room was refused to a stream ahead: every check that found none
        #: counts, so it shows that the budget held streams back, not for how long.
        self.waits = 0

    def summary(self) -> str:
        """The peak and the waits so far, for the log."""
        mb = 1024 * 1024
        return (
            f"read-ahead peak {self.peak / mb:.1f} MB of the {self.limit / mb:.0f} MB "
            f"budget, held back {self.waits} times"
        )

    def _used(self) -> int:
        return self.held + self.in_flight * self.page_estimate

    def room(self) -> bool:
        """Whether one more request may be sent for a stream ahead."""
        with self._lock:
            if self._used() + self.page_estimate <= self.limit or not (self.held or self.in_flight):
                return True
            self.waits += 1
            return False

    def send(self) -> None:
        """A request for a stream ahead goes out."""
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self._used())

    def landed(self) -> None:
        """A request for a stream ahead came back (its page is ``hold``-ed, if kept)."""
        with self._lock:
            self.in_flight -= 1
        self.on_room()

    def hold(self, size: int) -> None:
        """A downloaded page waits in a feed."""
        with self._lock:
            self.held += size
            self.page_estimate = max(self.page_estimate, size)
            self.peak = max(self.peak, self._used())

    def release(self, size: int) -> None:
        """A page left its feed for the writer (the stream written holds 0: no wake-up)."""
        if not size:
            return
        with self._lock:
            self.held -= size
        self.on_room()


class _Task:
    __slots__ = ("ahead", "fn", "future", "speculative", "stream", "wanted")

    def __init__(
        self,
        stream: str,
        fn: Callable[[], t.Any],
        *,
        speculative: bool,
        wanted: Callable[[], bool] | None,
    ) -> None:
        self.stream = stream
        self.fn = fn
        self.speculative = speculative
        self.wanted = wanted
        self.future: Future[t.Any] = Future()
        #: Sent while its stream was ahead of its turn: counted in the budget.
        self.ahead = False


class Scheduler:
    """Sends every request of the sync, certain before speculative, soonest needed first."""

    def __init__(
        self,
        workers: int,
        limiter: RateLimiter,
        budget: MemoryBudget,
        *,
        on_exit: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_exit`` runs on each worker thread as it ends (it closes its connection)."""
        self.workers = max(1, workers)
        self.limiter = limiter
        self.budget = budget
        self._on_exit = on_exit
        self._cond = threading.Condition()
        #: One worker at a time waits for the rate limiter and then picks.
        self._picking = threading.Lock()
        self._queues: dict[str, list[_Task]] = {}
        self._tasks: dict[Future[t.Any], _Task] = {}
        self._rank: dict[str, int] = {}
        self._emitting = -1
        self._alive = 0
        budget.on_room = self._wake

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def plan(self, order: Sequence[str]) -> None:
        """The streams in the order they will be emitted."""
        with self._cond:
            self._rank = {name: rank for rank, name in enumerate(order)}

    def emitting(self, stream: str) -> None:
        """``stream``'s records are being written now: it no longer waits for the budget."""
        with self._cond:
            self._emitting = max(self._emitting, self._rank.get(stream, self._emitting))
            self._cond.notify_all()

    def submit(
        self,
        stream: str,
        fn: Callable[[], T],
        *,
        speculative: bool = False,
        wanted: Callable[[], bool] | None = None,
    ) -> Future[T]:
        """Queue ``fn`` (one request) for ``stream``; ``wanted`` false drops it unsent."""
        task = _Task(stream, fn, speculative=speculative, wanted=wanted)
        with self._cond:
            if self._alive < self.workers:
                self._alive += 1
                threading.Thread(target=self._work, name="tap-coupa", daemon=True).start()
            self._queues.setdefault(stream, []).append(task)
            self._tasks[task.future] = task
            self._cond.notify()
        return task.future

    def promote(self, future: Future[t.Any]) -> None:
        """A queued speculative request turned out to be needed."""
        with self._cond:
            task = self._tasks.get(future)
            if task is not None and task.speculative:
                task.speculative = False
                self._cond.notify()

    def _ahead(self, stream: str) -> bool:
        return self._rank.get(stream, len(self._rank)) > self._emitting

    def _best(self) -> _Task | None:
        """The request to send now, under ``_cond``; dropped ones are cancelled on the way."""
        room: bool | None = None
        candidates: list[_Task] = []
        for stream in sorted(self._queues, key=lambda name: self._rank.get(name, len(self._rank))):
            tasks = self._queues[stream]
            for task in list(tasks):
                if task.future.cancelled() or (task.wanted is not None and not task.wanted()):
                    tasks.remove(task)
                    self._tasks.pop(task.future, None)
                    task.future.cancel()
            if not tasks:
                del self._queues[stream]
                continue
            if self._ahead(stream):
                if room is None:
                    room = self.budget.room()
                if not room:
                    continue
            certain = next((task for task in tasks if not task.speculative), None)
            if certain is not None:
                return certain
            candidates.append(tasks[0])
        return candidates[0] if candidates else None

    def _next(self) -> _Task | None:
        """Wait for a request to send and for the rate limiter, then take the best one.

        A worker ends idle only with nothing queued: a request held back for room (or
        for its stream's turn) is sent by a worker already running, as nothing else
        would start one.
        """
        while True:
            with self._cond:
                while self._best() is None:
                    if not self._cond.wait(timeout=IDLE_SECONDS) and not self._queues:
                        self._alive -= 1
                        return None
            self.limiter.acquire()
            with self._cond:
                task = self._best()
                if task is None:
                    continue  # dropped meanwhile: the token goes to whatever comes next
                self._queues[task.stream].remove(task)
                self._tasks.pop(task.future, None)
                if not task.future.set_running_or_notify_cancel():
                    continue
                if self._ahead(task.stream):
                    task.ahead = True
                    self.budget.send()
                return task

    def _work(self) -> None:
        """Send requests one by one; end after ``IDLE_SECONDS`` with none to send."""
        while True:
            with self._picking:
                task = self._next()
            if task is None:
                self._on_exit()
                return
            try:
                with self.limiter.granted():
                    result = task.fn()
            except BaseException as exc:  # handed to whoever waits for the request
                task.future.set_exception(exc)
            else:
                task.future.set_result(result)
            finally:
                if task.ahead:
                    self.budget.landed()

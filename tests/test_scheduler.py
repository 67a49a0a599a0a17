"""The one scheduler: which request goes next, and the memory budget of streams ahead."""

from __future__ import annotations

import contextlib
import threading
import typing as t

import pytest

from tap_coupa.ratelimit import RateLimiter
from tap_coupa.scheduler import MemoryBudget, Scheduler

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.unit

WAIT = 30.0


class GatedLimiter(RateLimiter):
    """Grants a token only when the test opens the gate: the test decides when sends happen."""

    def __init__(self) -> None:
        super().__init__(10_000, 10_000)
        self.gate = threading.Semaphore(0)
        self.waiting = threading.Event()

    def acquire(self, cancelled: Callable[[], bool] | None = None) -> bool:
        self.waiting.set()
        assert self.gate.acquire(timeout=WAIT), "the test never granted a token"
        self.waiting.clear()
        return True

    @contextlib.contextmanager
    def granted(self) -> Iterator[None]:
        yield

    def grant(self, tokens: int = 1) -> None:
        for _ in range(tokens):
            self.gate.release()


class Log:
    """Tasks that record the order they ran in."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def task(self, name: str) -> Callable[[], str]:
        def run() -> str:
            with self.lock:
                self.sent.append(name)
            return name

        return run


def scheduler(
    limiter: RateLimiter | None = None,
    budget: MemoryBudget | None = None,
    *,
    workers: int = 1,
    order: t.Sequence[str] = ("a", "b", "c"),
) -> Scheduler:
    """A scheduler writing the first stream of ``order``; no rate limit unless given."""
    sched = Scheduler(
        workers, limiter or RateLimiter(10_000, 10_000), budget or MemoryBudget(1 << 30)
    )
    sched.plan(order)
    sched.emitting(order[0])
    return sched


def wait_until(condition: Callable[[], bool]) -> None:
    event = threading.Event()
    for _ in range(3000):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError("condition never held")


def test_the_request_sent_is_chosen_when_the_token_is_granted() -> None:
    """A certain request queued while a speculative one waits for the token goes first."""
    limiter, log = GatedLimiter(), Log()
    sched = scheduler(limiter)
    speculative = sched.submit("a", log.task("speculative"), speculative=True)
    assert limiter.waiting.wait(WAIT), "the worker waits for a token"
    certain = sched.submit("a", log.task("certain"))
    limiter.grant(2)
    assert (certain.result(WAIT), speculative.result(WAIT)) == ("certain", "speculative")
    assert log.sent == ["certain", "speculative"]


def test_certain_requests_of_every_stream_go_before_speculative_ones() -> None:
    limiter, log = GatedLimiter(), Log()
    sched = scheduler(limiter)
    futures = [
        sched.submit("a", log.task("a probe"), speculative=True),
        sched.submit("c", log.task("c page 0")),
        sched.submit("b", log.task("b page 0")),
        sched.submit("a", log.task("a page 1")),
        sched.submit("b", log.task("b page 2"), speculative=True),
    ]
    limiter.grant(len(futures))
    for future in futures:
        future.result(WAIT)
    assert log.sent[:3] == ["a page 1", "b page 0", "c page 0"], (
        "certain first, the stream being written first, then in the order of writing"
    )
    assert log.sent[3:] == ["a probe", "b page 2"]


def test_a_promoted_request_is_sent_as_certain() -> None:
    limiter, log = GatedLimiter(), Log()
    sched = scheduler(limiter)
    first = sched.submit("a", log.task("a page 2"), speculative=True)
    later = sched.submit("a", log.task("a page 3"), speculative=True)
    certain_b = sched.submit("b", log.task("b page 0"))
    sched.promote(later)
    limiter.grant(3)
    for future in (first, later, certain_b):
        future.result(WAIT)
    assert log.sent == ["a page 3", "b page 0", "a page 2"]


def test_an_unwanted_request_is_dropped_unsent() -> None:
    limiter, log = GatedLimiter(), Log()
    sched = scheduler(limiter)
    wanted = threading.Event()
    wanted.set()
    dropped = sched.submit("a", log.task("past the end"), wanted=lambda: not wanted.is_set())
    kept = sched.submit("a", log.task("page 1"))
    limiter.grant(1)
    assert kept.result(WAIT) == "page 1"
    assert dropped.cancelled()
    assert log.sent == ["page 1"]


def test_streams_ahead_wait_for_the_budget_and_the_stream_written_does_not() -> None:
    log, budget = Log(), MemoryBudget(1000)
    sched = scheduler(budget=budget, workers=2)
    budget.hold(900)  # pages of b, waiting for b's turn
    ahead = sched.submit("b", log.task("b page 1"))
    current = sched.submit("a", log.task("a page 7"))
    assert current.result(WAIT) == "a page 7", "the stream being written is never held back"
    wait_until(lambda: budget.waits > 0)
    assert not ahead.done(), "no room: the stream ahead waits"
    budget.release(900)  # b's pages were written
    assert ahead.result(WAIT) == "b page 1"
    wait_until(lambda: budget.in_flight == 0)
    assert budget.held == 0, "every byte counted was given back"


def test_a_stream_ahead_proceeds_once_it_is_written() -> None:
    log, budget = Log(), MemoryBudget(1000)
    sched = scheduler(budget=budget)
    budget.hold(5000)  # b holds far more than the budget (one huge page)
    ahead = sched.submit("b", log.task("b page 1"))
    wait_until(lambda: budget.waits > 0)
    assert not ahead.done()
    sched.emitting("b")
    assert ahead.result(WAIT) == "b page 1"


def test_a_failing_request_fails_its_future_only() -> None:
    sched = scheduler()

    def broken() -> str:
        raise ValueError("boom")

    failed = sched.submit("a", broken)
    with pytest.raises(ValueError, match="boom"):
        failed.result(WAIT)
    assert sched.submit("a", lambda: "next").result(WAIT) == "next"


def test_a_worker_ending_idle_closes_its_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its client, dropped unclosed, would keep its socket open until garbage collected."""
    monkeypatch.setattr("tap_coupa.scheduler.IDLE_SECONDS", 0.05)
    ended = threading.Event()
    worker: list[threading.Thread] = []

    def on_exit() -> None:
        worker.append(threading.current_thread())
        ended.set()

    scheduler = Scheduler(4, RateLimiter(10_000, 10_000), MemoryBudget(1 << 30), on_exit=on_exit)
    sent = scheduler.submit("a", threading.current_thread)
    assert ended.wait(WAIT), "the idle worker ended"
    assert worker == [sent.result()], "on the worker's own thread, once"


def test_a_stream_held_back_longer_than_the_idle_time_is_still_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its request waits in the queue for room (or its turn) while no worker has anything
    to send: the workers must not all end meanwhile, as nothing would start another."""
    monkeypatch.setattr("tap_coupa.scheduler.IDLE_SECONDS", 0.05)
    budget = MemoryBudget(1000)
    sched = scheduler(budget=budget)
    budget.hold(5000)  # pages of b, waiting for b's turn
    ahead = sched.submit("b", lambda: "b page 1")
    # No room, then none again once the worker has waited ``IDLE_SECONDS`` for any.
    wait_until(lambda: budget.waits >= 2)
    sched.emitting("b")
    assert ahead.result(WAIT) == "b page 1"

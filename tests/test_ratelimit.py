"""The shared rate limiter, on a fake clock: bursts, pacing, 429 back-off, cancellation."""

from __future__ import annotations

import itertools

import pytest

from tap_coupa import ratelimit
from tap_coupa.ratelimit import RateLimiter

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(ratelimit.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(ratelimit.time, "sleep", fake.sleep)
    return fake


def send_times(limiter: RateLimiter, clock: FakeClock, count: int) -> list[float]:
    times = []
    for _ in range(count):
        assert limiter.acquire()
        times.append(clock.now - 1000.0)
    return times


def test_burst_then_steady_rate(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=25, burst=10)
    times = send_times(limiter, clock, 60)
    assert times[:10] == [0.0] * 10, "the burst goes out at once"
    gaps = [b - a for a, b in itertools.pairwise(times[10:])]
    assert all(g == pytest.approx(0.04) for g in gaps), "then one request every 1/25 s"
    # Never more than burst + rate * t requests within any t seconds.
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            assert j - i + 1 <= 10 + 25 * (times[j] - start) + 1e-9


def test_429_slows_down_then_recovers(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=20, burst=5)
    send_times(limiter, clock, 10)
    limiter.throttled()
    assert limiter.rate == pytest.approx(14)
    before = clock.now
    limiter.acquire()
    assert clock.now - before >= 1 / 14 - 1e-9, "the burst allowance is gone after a 429"
    clock.now += 60
    limiter.acquire()
    assert limiter.rate == pytest.approx(20), "the rate creeps back to the maximum"


def test_cancelled_request_is_not_sent(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=1, burst=1)
    assert limiter.acquire()
    assert not limiter.acquire(cancelled=lambda: clock.now > 1000.1)


def test_the_burst_starts_once_requests_can_be_sent(clock: FakeClock) -> None:
    """Turns are not handed out while ``ready`` blocks (a token being minted)."""
    calls = []

    def ready() -> None:
        calls.append(clock.now)
        clock.now += 1.0  # the mint takes a second

    limiter = RateLimiter(rate=25, burst=4, ready=ready)
    times = send_times(limiter, clock, 8)
    assert calls == [1000.0], "the limiter waited for ready once"
    assert times[:4] == [1.0] * 4, "the burst goes out when ready returned"
    assert times[4] == pytest.approx(1.04), "not the turns of the second it waited"


def test_a_storm_of_429s_cuts_the_rate_once_and_the_pace_comes_back_in_seconds(
    clock: FakeClock,
) -> None:
    """Ten concurrent requests answered 429 are one storm: one cut, not ten."""
    limiter = RateLimiter(rate=25, burst=16)
    send_times(limiter, clock, 16)
    sent_together = clock.now
    for _ in range(10):
        limiter.throttled(sent_at=sent_together)
    assert limiter.rate == pytest.approx(25 * 0.7), "cut once for the storm"
    assert limiter.acquire()
    limiter.throttled(sent_at=clock.now)
    # (less the little it regained while that request waited for its turn)
    assert limiter.rate == pytest.approx(25 * 0.7 * 0.7, rel=0.02), "a 429 after the cut cuts again"

    times = send_times(limiter, clock, 40)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(gaps)), "waits only shorten"
    assert times[-1] - times[0] < 4.0, f"40 requests took {times[-1] - times[0]:.1f} s"
    clock.now += 30
    assert limiter.acquire()
    assert limiter.rate == pytest.approx(25), "back to the maximum in half a minute"

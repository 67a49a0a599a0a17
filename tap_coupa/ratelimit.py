"""A client-side token bucket shared by every request the tap makes.

Coupa allows 25 requests/s with a burst of 20 per instance and answers 429 beyond
that, often without ``Retry-After``. Pacing requests here, slightly under the limit,
keeps the server's bucket from ever emptying; a 429 that still arrives (another
client on the same instance, a stricter instance) cuts the rate, which then creeps
back up while requests succeed.
"""

from __future__ import annotations

import threading
import time
import typing as t

#: After a 429 the rate is multiplied by this factor...
DECREASE_FACTOR = 0.7
#: ...and regains this many requests/s for every second without one.
RECOVERY_PER_S = 0.5
MIN_RATE = 0.5
#: Waiting requests re-check whether they are still wanted at least this often.
MAX_SLEEP_S = 0.05


class RateLimiter:
    """Thread-safe token bucket with multiplicative decrease on 429."""

    def __init__(self, rate: float, burst: int) -> None:
        self.max_rate = rate
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        elapsed = now - self._updated
        self._updated = now
        if self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate + RECOVERY_PER_S * elapsed)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)

    def acquire(self, cancelled: t.Callable[[], bool] | None = None) -> bool:
        """Block until a request may go out; False if it was ``cancelled`` meanwhile."""
        while True:
            if cancelled is not None and cancelled():
                return False
            with self._lock:
                now = time.monotonic()
                self._refill(now)
                if self._tokens >= 1:
                    self._tokens -= 1
                    return True
                delay = (1 - self._tokens) / self.rate
            time.sleep(min(delay, MAX_SLEEP_S))

    def throttled(self) -> None:
        """Coupa answered 429: slow down and drain the burst allowance."""
        with self._lock:
            self._refill(time.monotonic())
            self.rate = max(MIN_RATE, self.rate * DECREASE_FACTOR)
            self._tokens = min(self._tokens, 0.0)

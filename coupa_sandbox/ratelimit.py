"""Token-bucket rate limiting, as Coupa documents it: 25 requests/s, bursts of 20."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Classic token bucket shared by every API and token request."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self) -> bool:
        """Take one token; False means the request must be answered with 429."""
        with self._lock:
            self._refill()
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    def retry_after(self) -> int:
        """Whole seconds until a token is available (for the optional Retry-After)."""
        with self._lock:
            self._refill()
            return max(1, math.ceil((1.0 - self._tokens) / self.rate))

"""A client-side rate limiter shared by every request the tap makes.

Coupa allows 25 requests/s with a burst of 20 per instance and answers 429 beyond
that, often without ``Retry-After``. Pacing requests here, slightly under the limit,
keeps the server's bucket from ever emptying; a 429 that still arrives (another
client on the same instance, a stricter instance) cuts the rate, which then creeps
back up while requests succeed.

It is a token bucket in its "virtual scheduling" form: each request reserves the next
free send time under a lock and sleeps until then, once. Dozens of waiting threads
therefore do not wake up together to race for each token, which would cost the
thread that decodes and emits records its CPU.
"""

from __future__ import annotations

import contextlib
import threading
import time
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Iterator

#: After a 429 the rate is multiplied by this factor...
DECREASE_FACTOR = 0.7
#: ...and regains this many requests/s for every second without one.
RECOVERY_PER_S = 0.5
MIN_RATE = 0.5
#: A waiting request re-checks whether it is still wanted this often.
CHECK_EVERY_S = 0.25


class RateLimiter:
    """Thread-safe token bucket with multiplicative decrease on 429."""

    def __init__(
        self, rate: float, burst: int, ready: t.Callable[[], object] | None = None
    ) -> None:
        self.max_rate = rate
        self.rate = rate
        self.burst = max(1, burst)
        self._lock = threading.Lock()
        self._updated = time.monotonic()
        #: When the bucket would be full again: sending at ``_full - burst/rate`` or
        #: later keeps within the burst.
        self._full = self._updated
        self._local = threading.local()
        #: Blocks until a request can be sent at all (the first token is minted).
        self._ready: t.Callable[[], object] | None = ready

    def _start(self) -> None:
        """Wait until requests can be sent; the burst starts then, not before.

        Turns taken while, say, the first token is minted would all be sent when it
        comes: the burst plus one turn per ``1/rate`` of the wait, more than Coupa's
        bucket holds.
        """
        ready = self._ready
        if ready is not None:
            ready()
            self._ready = None

    @contextlib.contextmanager
    def granted(self) -> Iterator[None]:
        """The calling thread holds a token already: its next ``acquire`` is free.

        The scheduler waits for the token before choosing which request to send, so
        the one sent is the best at that moment (see ``scheduler``); a retry of it
        waits for a token of its own.
        """
        self._local.granted = True
        try:
            yield
        finally:
            self._local.granted = False

    def _recover(self, now: float) -> None:
        if self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate + RECOVERY_PER_S * (now - self._updated))
        self._updated = now

    def acquire(self, cancelled: t.Callable[[], bool] | None = None) -> bool:
        """Wait for this request's turn; False if it was ``cancelled`` meanwhile."""
        if getattr(self._local, "granted", False):
            self._local.granted = False
            return cancelled is None or not cancelled()
        self._start()
        with self._lock:
            now = time.monotonic()
            self._recover(now)
            interval = 1 / self.rate
            full = max(self._full, now)
            send_at = max(now, full - (self.burst - 1) * interval)
            self._full = full + interval
        while (wait := send_at - time.monotonic()) > 0:
            if cancelled is not None and cancelled():
                return False
            time.sleep(min(wait, CHECK_EVERY_S))
        return cancelled is None or not cancelled()

    def throttled(self) -> None:
        """Coupa answered 429: slow down and give up the burst allowance."""
        with self._lock:
            now = time.monotonic()
            self._recover(now)
            self.rate = max(MIN_RATE, self.rate * DECREASE_FACTOR)
            self._full = max(self._full, now + self.burst / self.rate)

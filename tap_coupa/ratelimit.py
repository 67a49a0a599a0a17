"""A client-side rate limiter shared by every request the tap makes.

Coupa allows 25 requests/s with a burst of 20 per instance and answers 429 beyond
that, often without ``Retry-After``. Pacing requests here, slightly under the limit,
keeps the server's bucket from ever emptying; a 429 that still arrives (another
client on the same instance, a stricter instance) cuts the rate, which then climbs
back while requests succeed.

It is a token bucket whose level may go below zero: each request takes a token under
a lock, and one taken below zero tells it how long to sleep, once. Dozens of waiting
threads therefore do not wake up together to race for each token, which would cost
the thread that decodes and emits records its CPU. The level is in tokens, not in
time, so a rate that changes (cut by a 429, recovering) holds for every later turn.

A storm of 429s answers requests sent together: the rate is cut once for them, not
once for each (as TCP halves its window once per round trip). Cut for each, ten
concurrent 429s left 3% of the rate, and the slow climb back stalled a sync for tens
of seconds after a one-second storm.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Iterator

#: After a 429 the rate is multiplied by this factor...
DECREASE_FACTOR = 0.7
#: ...and regains this share of the maximum rate for every second without one (from
#: one cut back to the maximum in 15 s: gently, so a stricter instance is not overrun).
RECOVERY_SHARE_PER_S = 0.02
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
        #: Tokens in the bucket at ``_updated``; below zero, turns handed out that the
        #: bucket has yet to refill.
        self._tokens = float(self.burst)
        #: When the rate was last cut: a 429 to a request sent before then is the same
        #: storm's.
        self._cut_at = -math.inf
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

    def _advance(self, now: float) -> None:
        """Refill the bucket, and recover the rate, for the time since the last update."""
        elapsed = now - self._updated
        if elapsed <= 0:
            return
        self._tokens = min(self.burst, self._tokens + self.rate * elapsed)
        if self.rate < self.max_rate:
            regained = RECOVERY_SHARE_PER_S * self.max_rate * elapsed
            self.rate = min(self.max_rate, self.rate + regained)
        self._updated = now

    def acquire(self, cancelled: t.Callable[[], bool] | None = None) -> bool:
        """Wait for this request's turn; False if it was ``cancelled`` meanwhile."""
        if getattr(self._local, "granted", False):
            self._local.granted = False
            return cancelled is None or not cancelled()
        self._start()
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            self._tokens -= 1
            send_at = now + max(0.0, -self._tokens / self.rate)
        while (wait := send_at - time.monotonic()) > 0:
            if cancelled is not None and cancelled():
                return False
            time.sleep(min(wait, CHECK_EVERY_S))
        return cancelled is None or not cancelled()

    def throttled(self, sent_at: float | None = None) -> None:
        """Coupa answered 429 to a request sent at ``sent_at``: slow down.

        Its bucket is empty, so the burst allowance goes. The rate is cut unless it
        was already cut after that request was sent: then the 429 is of the storm
        the cut answered.
        """
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            self._tokens = min(self._tokens, 0.0)
            if sent_at is None or sent_at > self._cut_at:
                self.rate = max(MIN_RATE, self.rate * DECREASE_FACTOR)
                self._cut_at = now

"""When a failed request is worth repeating, and how long to wait before it.

Shared by the API transport (``http.py``) and the token request (``auth.py``): Coupa
answers both with 429 when busy, often without ``Retry-After``, and with 5xx during
maintenance.
"""

from __future__ import annotations

import email.utils
import random
import time
import typing as t

import backoff

Handler = t.Callable[[t.Any], None]
F = t.TypeVar("F", bound=t.Callable[..., t.Any])

#: Cap on one backoff wait, so a long Retry-After or a deep retry never stalls a sync.
MAX_WAIT_S = 60.0
#: Answers that may go away on their own.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def wait(base: float = 0.5) -> t.Generator[float, t.Any, None]:
    """Honour ``Retry-After`` when Coupa sends it; else exponential backoff, full jitter.

    A ``backoff`` wait generator: it receives the exception, whose ``retry_after``
    (seconds, or None) is the server's hint.
    """
    exc = yield 0.0
    attempt = 0
    while True:
        hint = getattr(exc, "retry_after", None)
        seconds = hint if hint is not None else random.uniform(0, base * 2**attempt)
        exc = yield min(MAX_WAIT_S, seconds)
        attempt += 1


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retrying(
    call: F,
    worth: type[Exception],
    *,
    max_retries: int,
    on_backoff: Handler,
    on_giveup: Handler,
    giveup: t.Callable[[Exception], bool] | None = None,
) -> F:
    """``call``, repeated at most ``max_retries`` times while it raises ``worth``.

    Between tries it waits as ``wait`` says. ``on_giveup`` raises the final error.
    With ``giveup``, it alone says when to stop (the caller counts the tries).
    """
    return backoff.on_exception(
        wait,
        worth,
        max_tries=None if giveup else max_retries + 1,
        giveup=giveup or (lambda _: False),
        jitter=None,
        on_backoff=on_backoff,
        on_giveup=on_giveup,
        logger=None,
    )(call)

"""The HTTP clients the tap sends with: TLS, timeouts, headers, no redirects.

Free of the SDK, so that the command can start work on threads before importing it:
loading the CA bundle (``load_ahead``; 20-40 ms, nearly all of it in OpenSSL with the
GIL released) and asking for the first token (``ahead``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import ssl
import threading
import time
import typing as t
from concurrent.futures import Future

import httpx

from tap_coupa import __version__

if t.TYPE_CHECKING:
    from collections.abc import Collection, Iterator

#: The ``request_timeout`` setting's default, in seconds (here: the early token needs it).
REQUEST_TIMEOUT = 300


class _Context:
    """The TLS context every client verifies with: loading ahead, then loaded."""

    ahead: Future[ssl.SSLContext] | None = None
    loaded: ssl.SSLContext | None = None
    lock = threading.Lock()


def load_ahead() -> None:
    """Start loading the context on a thread; clients made from now on take it."""
    future: Future[ssl.SSLContext] = Future()

    def load() -> None:
        try:
            future.set_result(httpx.create_ssl_context())
        except BaseException as exc:  # handed over: context() never waits forever
            future.set_exception(exc)

    with _Context.lock:
        _Context.ahead, _Context.loaded = future, None
    # Not a daemon: a run that ends at once (a bad setting) waits the few milliseconds
    # for it, where ending the interpreter under OpenSSL's loading crashes the process.
    threading.Thread(target=load, name="tap-coupa-tls").start()


def context() -> ssl.SSLContext:
    """TLS verification as httpx sets it up by default, loaded once (ahead, if started).

    Every client shares it: the token's, asked for before the SDK is imported, and
    each worker's.
    """
    with _Context.lock:
        if _Context.loaded is None:
            ahead, _Context.ahead = _Context.ahead, None
            if ahead is not None:
                with contextlib.suppress(Exception):  # then loaded here, raising its error
                    _Context.loaded = ahead.result()
            if _Context.loaded is None:
                _Context.loaded = httpx.create_ssl_context()
        return _Context.loaded


def quiet() -> None:
    """Httpx logs every request at INFO; the tap's per-stream summaries say what matters."""
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def client(*, timeout: float, user_agent: str | None, direct: Collection[str] = ()) -> httpx.Client:
    """A keep-alive client with the tap's timeouts and headers, never redirected.

    The environment's proxies are used, but never for the ``direct`` hosts (loopback:
    their plain http must not leave the machine; see ``ahead.loopback_hosts``).

    A response still arriving ``timeout`` seconds after its request was sent is
    abandoned (``_Deadline``), as one that stops arriving is.
    """
    return httpx.Client(
        verify=context(),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
        limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
        headers={"User-Agent": user_agent or f"tap-coupa/{__version__}"},
        follow_redirects=False,
        mounts={f"all://{host}": None for host in direct},
        event_hooks={"request": [_sent], "response": [functools.partial(_within, timeout)]},
    )


class _Deadline(httpx.SyncByteStream):
    """A response body that must have arrived by ``deadline``, or is abandoned.

    httpx's timeouts bound each wait for bytes, not a whole response: a server or proxy
    sending a byte now and then would hold a request (a worker, or, minting the token,
    every request) forever.
    """

    def __init__(self, stream: httpx.SyncByteStream, deadline: float, seconds: float) -> None:
        self._stream = stream
        self._deadline = deadline
        self._seconds = seconds

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if time.monotonic() > self._deadline:
                msg = f"no whole response within request_timeout ({self._seconds:g}s)"
                raise httpx.ReadTimeout(msg)
            yield chunk

    def close(self) -> None:
        self._stream.close()


def _sent(request: httpx.Request) -> None:
    request.extensions[_SENT_AT] = time.monotonic()


def _within(seconds: float, response: httpx.Response) -> None:
    """Give up on the response's body ``seconds`` after its request was sent."""
    assert isinstance(response.stream, httpx.SyncByteStream)
    deadline = response.request.extensions.get(_SENT_AT, time.monotonic()) + seconds
    response.stream = _Deadline(response.stream, deadline, seconds)


#: Where a request keeps when it was sent (httpcore reads only the extensions it knows).
_SENT_AT = "tap_coupa.sent_at"

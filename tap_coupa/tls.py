"""TLS verification as httpx sets it up by default, its CA bundle loaded ahead.

Loading the CA bundle takes 20-40 ms, nearly all of it in OpenSSL with the GIL
released. The command starts it on a thread (``load_ahead``) before it imports the
SDK, and the first connection (the token's, before any request) finds it ready.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from concurrent.futures import Future

import httpx


class _Ahead:
    """The context being loaded ahead, until a connection takes it."""

    future: Future[ssl.SSLContext] | None = None


def load_ahead() -> None:
    """Start loading a context on a thread; the next ``context()`` takes it."""
    future: Future[ssl.SSLContext] = Future()

    def load() -> None:
        try:
            future.set_result(httpx.create_ssl_context())
        except BaseException as exc:  # handed over: context() never waits forever
            future.set_exception(exc)

    _Ahead.future = future
    # Not a daemon: a run that ends at once (a bad setting) waits the few milliseconds
    # for it, where ending the interpreter under OpenSSL's loading crashes the process.
    threading.Thread(target=load, name="tap-coupa-tls").start()


def context() -> ssl.SSLContext:
    """The context loaded ahead, once; otherwise (or if that failed) a new one."""
    future, _Ahead.future = _Ahead.future, None
    if future is not None:
        with contextlib.suppress(Exception):
            return future.result()
    return httpx.create_ssl_context()

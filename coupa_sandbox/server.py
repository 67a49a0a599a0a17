"""HTTP transport: keep-alive HTTP/1.1 on the stdlib server, rate limit, latency, faults.

Socket-level faults (resets, truncated bodies) need the raw connection, so they live
here; everything Coupa-specific is in :mod:`coupa_sandbox.api`.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .admin import PREFIX as ADMIN_PREFIX
from .admin import AdminApi
from .api import (
    HTML_TYPE,
    MAINTENANCE_PAGE,
    CoupaApi,
    Response,
    error_page,
    error_response,
    wants_json,
)
from .state import SandboxState

TOKEN_PATH = "/oauth2/token"
API_PREFIX = "/api/"


class SandboxHTTPServer(ThreadingHTTPServer):
    """Threaded server that remembers open connections so ``stop`` can cut them."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: SandboxState) -> None:
        self.state = state
        self.api = CoupaApi(state)
        self.admin = AdminApi(state)
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, SandboxHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Track the connection, then serve it on its own daemon thread."""
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection once its thread is done with it."""
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (timeouts, our own resets) are normal here, not errors."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Shut every open keep-alive connection (used on stop)."""
        with self._conn_lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class SandboxHandler(BaseHTTPRequestHandler):
    """One keep-alive connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms stalls
    server_version = "CoupaSandbox/1.0"
    sys_version = ""
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging (benchmarks make thousands of requests)."""

    # -- verbs ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        """Resources and admin reads."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Token requests and admin writes."""
        self._dispatch("POST")

    def do_PUT(self) -> None:
        """Writes are not part of the sandbox."""
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        """Writes are not part of the sandbox."""
        self._dispatch("DELETE")

    # -- plumbing ---------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self, method: str) -> None:
        try:
            self._route(method)
        except OSError:
            self.close_connection = True
        except Exception as exc:  # a sandbox bug: answer 500 and show it, keep serving
            traceback.print_exc(file=sys.stderr)
            message = f"Internal sandbox error: {type(exc).__name__}: {exc}"
            with contextlib.suppress(OSError):
                self._send(error_response(500, "error", message), delay=False)

    def _route(self, method: str) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        path = parts.path
        body = self._body()
        headers = self._headers()
        if path.startswith(ADMIN_PREFIX):
            state.stats.request("admin")
            self._send(self.server.admin.handle(method, path, body, parts.query), count=False)
            return
        if path == TOKEN_PATH:
            request_class = "token"
        elif path.startswith(API_PREFIX):
            request_class = "api"
        else:
            state.stats.request("other")
            self._send(error_response(404, "error", "Not Found", wants_json(headers)))
            return
        state.stats.request(request_class)
        if state.bucket is not None and not state.bucket.acquire():
            state.stats.limited()
            extra = {"Retry-After": str(state.bucket.retry_after())} if state.retry_after else {}
            self._send(error_response(429, "error", "Rate limit exceeded", True, extra), delay=True)
            return
        decision = state.faults.decide(request_class)
        if decision.delay:
            time.sleep(decision.delay)
        if decision.kind == "reset":
            self._reset()
            return
        if decision.kind == "5xx":
            if decision.html:
                self._send(Response(decision.status, error_page(decision.status), HTML_TYPE))
            else:
                self._send(error_response(decision.status, "error", "Internal error", True))
            return
        if decision.kind == "maintenance":
            self._send(Response(200, MAINTENANCE_PAGE, HTML_TYPE), delay=True)
            return
        if decision.kind == "storm_429":
            extra = (
                {} if decision.retry_after is None else {"Retry-After": str(decision.retry_after)}
            )
            self._send(error_response(429, "error", "Rate limit exceeded", True, extra))
            return
        if request_class == "token":
            response = (
                self.server.api.token(body, headers)
                if method == "POST"
                else error_response(405, "error", "Method Not Allowed")
            )
        elif method != "GET":
            response = error_response(405, "error", "Method Not Allowed", wants_json(headers))
        else:
            state.store.on_api_request()
            response = self.server.api.get(path, parts.query, headers)
        self._send(response, delay=True, truncate=decision.kind == "truncate")

    def _send(
        self, response: Response, count: bool = True, delay: bool = True, truncate: bool = False
    ) -> None:
        state = self.server.state
        if count:
            state.stats.status(response.status, len(response.body))
            if delay:
                wait = state.latency_ms / 1000.0
                if state.bandwidth:
                    wait += len(response.body) / state.bandwidth
                if wait > 0:
                    time.sleep(wait)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            if truncate:
                self.wfile.write(response.body[: len(response.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(response.body)
        except OSError:  # the client gave up (e.g. timed out during a slow response)
            self.close_connection = True

    def _reset(self) -> None:
        """Abort the connection with a TCP RST and no response at all."""
        self.server.state.stats.status(0)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.wfile.close()
        with contextlib.suppress(OSError):
            self.connection.close()

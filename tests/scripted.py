"""A loopback HTTP server that plays back scripted responses, for precise unit tests."""

from __future__ import annotations

import json
import threading
import typing as t
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: t.Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    truncate: bool = False

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body if self.body is not None else []).encode()


@dataclass
class Seen:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    form: dict[str, str]


class ScriptedServer:
    """Answers each path from its queue of replies; the last reply repeats."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Reply]] = {}
        #: Paths answered by a function of the query instead of a queue of replies.
        self.responders: dict[str, t.Callable[[list[tuple[str, str]]], Reply]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: t.Any) -> None:
                pass

            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                with server._lock:
                    server.seen.append(
                        Seen(
                            self.command,
                            parts.path,
                            parse_qsl(parts.query),
                            dict(self.headers.items()),
                            dict(parse_qsl(body)),
                        )
                    )
                    respond = server.responders.get(parts.path)
                    if respond is not None:
                        reply = respond(parse_qsl(parts.query))
                    else:
                        queue = server.scripts.get(parts.path, [Reply(404, {"errors": {}})])
                        reply = queue.pop(0) if len(queue) > 1 else queue[0]
                payload = reply.payload()
                self.send_response_only(reply.status)
                headers = {
                    "Date": self.date_time_string(),  # a reply may set its own
                    "Content-Type": "application/json",
                    **reply.headers,
                }
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                if reply.truncate:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2] if reply.truncate else payload)
                if reply.truncate:
                    self.close_connection = True

            do_GET = _answer  # noqa: N815 - http.server naming
            do_POST = _answer  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def script(self, path: str, *replies: Reply) -> None:
        self.scripts[path] = list(replies)

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

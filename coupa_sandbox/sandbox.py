"""Python API: start a sandbox in-process (tests) and drive it directly."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import msgspec

from .config import SandboxConfig
from .faults import FaultConfig
from .server import SandboxHTTPServer
from .state import SandboxState


class Sandbox:
    """A Coupa look-alike served from a daemon thread.

    >>> with Sandbox(SandboxConfig(seed=7, records={"invoices": 300})) as sb:
    ...     sb.url  # doctest: +SKIP
    """

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        base = config or SandboxConfig()
        self.config = dataclasses.replace(base, **overrides) if overrides else base
        self.state = SandboxState(self.config)
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        self._server = SandboxHTTPServer((self.config.host, self.config.port), self.state)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="coupa-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open keep-alive connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Serve on the calling thread (the CLI); returns after :meth:`stop`."""
        if self._server is None:
            self._server = SandboxHTTPServer((self.config.host, self.config.port), self.state)
        self._server.serve_forever(poll_interval=0.2)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("sandbox is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.config.host}:{self.port}"

    @property
    def token_url(self) -> str:
        """OAuth token endpoint."""
        return f"{self.url}/oauth2/token"

    # -- data -----------------------------------------------------------------------------

    def streams(self) -> list[str]:
        """Names of the top-level streams served at ``/api/<path>``."""
        return [s.name for s in self.state.registry.top_level]

    def path(self, stream: str) -> str:
        """API path of a top-level stream (``/api/<path>``)."""
        return f"/api/{self.state.store.stream_def(stream).path}"

    def records(self, stream: str) -> list[dict[str, Any]]:
        """Every current record of a top-level stream, as the API returns it, id order."""
        decoded: list[dict[str, Any]] = msgspec.json.decode(self.state.store.records_json(stream))
        return decoded

    def counts(self) -> dict[str, int]:
        """Record count per stream (child streams: nested items)."""
        return self.state.store.counts_now()

    def mutate(
        self,
        stream: str,
        update: int = 0,
        insert: int = 0,
        delete: int = 0,
        delete_ids: Sequence[int] = (),
    ) -> dict[str, list[int]]:
        """Update/insert/delete records now (and delete ``delete_ids``); returns the ids."""
        return self.state.store.mutate(
            stream, update=update, insert=insert, delete=delete, delete_ids=delete_ids
        )

    def set_background(
        self, rules: Mapping[str, Any] | list[Mapping[str, Any]] | None = None, **rule: Any
    ) -> None:
        """Mutate a stream every K API requests while a sync runs; no arguments stop it.

        Example: ``set_background(stream="invoices", every_requests=3, update=2)``.
        """
        self.state.set_background(rules if rules is not None else (rule or None))

    def background(
        self,
        stream: str | None,
        every_requests: int = 1,
        update: int = 0,
        insert: int = 0,
        delete: int = 0,
    ) -> None:
        """Mutate ``stream`` every ``every_requests`` API requests; ``background(None)`` stops."""
        if stream is None:
            self.state.set_background(None)
            return
        self.state.set_background(
            {
                "stream": stream,
                "every_requests": every_requests,
                "update": update,
                "insert": insert,
                "delete": delete,
            }
        )

    def reset(self) -> None:
        """Regenerate every stream from the seed."""
        self.state.store.reset()

    def warm(self) -> None:
        """Generate every stream now (first requests are then fast)."""
        self.state.store.warm()

    # -- behaviour ------------------------------------------------------------------------

    def set_faults(
        self, faults: FaultConfig | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Install faults (mapping, :class:`FaultConfig` or keyword form); nothing clears.

        Keyword names may use ``error_5xx`` for the ``"5xx"`` rule.
        """
        if faults is None and kwargs:
            faults = {("5xx" if k == "error_5xx" else k): v for k, v in kwargs.items()}
        self.state.set_faults(faults)
        return self.state.faults.snapshot()

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.state.set_faults(None)

    def set_rate_limit(
        self, rate: float | None, burst: int = 20, retry_after: bool = False
    ) -> None:
        """Change or disable (``rate=None``) the rate limit."""
        self.state.set_rate_limit(rate, burst, retry_after)

    def set_latency(self, latency_ms: float = 0.0, bandwidth: float | None = None) -> None:
        """Change the per-response latency and bandwidth cap."""
        self.state.latency_ms = latency_ms
        self.state.bandwidth = bandwidth

    def set_page_size(self, page_size: int) -> None:
        """Serve at most ``page_size`` records per page whatever ``limit`` asks (a cap)."""
        self.state.set_page_size(page_size)

    def set_default_response_filter(self, on: bool = True) -> None:
        """Switch an administrator's default API response filter on or off."""
        self.state.default_response_filter = on

    def expire_tokens(self) -> None:
        """Invalidate every issued token."""
        self.state.tokens.expire_all()

    def issue_token(self, scopes: list[str] | None = None) -> str:
        """Mint a token directly (tests that are not about OAuth)."""
        granted = scopes if scopes is not None else sorted(self.state.tokens.allowed_scopes)
        token, _ = self.state.tokens.issue(granted)
        return token

    def stats(self) -> dict[str, Any]:
        """Counters: requests by status, 429s, faults injected, tokens issued."""
        return self.state.stats_snapshot()

    def reset_stats(self) -> None:
        """Zero the request counters and empty the request log."""
        self.state.stats.reset()
        self.state.requests.clear()

    def requests(self, stream: str | None = None) -> list[list[tuple[str, str]]]:
        """The query parameters of each API query served (on ``stream``), oldest first.

        Example: ``any(("id[lt]", "42") in q for q in sb.requests("invoices"))``.
        """
        return [list(params) for params in self.state.requests.queries(stream)]

"""The running instance's shared state: config, data, tokens, faults, counters.

One object that the HTTP layer, the API, the admin API and the Python API all hold,
so a change made through any of them is seen by the others.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .auth import TokenStore
from .clock import Clock
from .config import SandboxConfig
from .faults import FaultConfig, FaultInjector
from .ratelimit import TokenBucket
from .schema import Registry, load_registry
from .store import BackgroundRule, Store


class Stats:
    """Request counters for ``/_sandbox/stats``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self.requests = 0
            self.by_class: dict[str, int] = {}
            self.by_status: dict[str, int] = {}
            self.by_stream: dict[str, int] = {}
            self.rate_limited = 0
            self.body_bytes = 0
            #: Arrival (``time.monotonic()``) of the first and last API request, 429s
            #: included: a benchmark's request window, to compare with the rate limit's.
            self.api_first: float | None = None
            self.api_last: float | None = None

    def request(self, request_class: str) -> None:
        """Count an incoming request of a class (``api``, ``token``, ``admin``, ``other``)."""
        now = time.monotonic()
        with self._lock:
            if request_class != "admin":
                self.requests += 1
            if request_class == "api":
                self.api_first = now if self.api_first is None else self.api_first
                self.api_last = now
            self.by_class[request_class] = self.by_class.get(request_class, 0) + 1

    def status(self, status: int, body_bytes: int = 0) -> None:
        """Count a response status (``reset`` counts as status 0) and its body's size."""
        with self._lock:
            key = str(status)
            self.by_status[key] = self.by_status.get(key, 0) + 1
            self.body_bytes += body_bytes

    def stream(self, name: str) -> None:
        """Count a served request per stream."""
        with self._lock:
            self.by_stream[name] = self.by_stream.get(name, 0) + 1

    def limited(self) -> None:
        """Count a 429 from the token bucket."""
        with self._lock:
            self.rate_limited += 1

    def snapshot(self) -> dict[str, Any]:
        """JSON-able copy."""
        with self._lock:
            return {
                "requests": self.requests,
                "by_class": dict(self.by_class),
                "by_status": dict(self.by_status),
                "by_stream": dict(self.by_stream),
                "rate_limited": self.rate_limited,
                "body_bytes": self.body_bytes,
                "api_first": self.api_first,
                "api_last": self.api_last,
            }


#: API queries the request log keeps (the oldest are dropped first): a sync of a few
#: hundred thousand records (a benchmark) keeps only its last ones.
REQUEST_LOG_SIZE = 20_000

Params = tuple[tuple[str, str], ...]


class LoggedQuery:
    """One API query served: its stream and parameters, when it arrived, what it got."""

    __slots__ = ("at", "params", "records", "stream")

    def __init__(self, stream: str, params: Params) -> None:
        self.stream = stream
        self.params = params
        #: Arrival, ``time.monotonic()`` (the clock of ``Stats.api_first``).
        self.at = time.monotonic()
        #: Records in the answer; None until a page is served (an error answer).
        self.records: int | None = None


class RequestLog:
    """The API queries served (stream and query parameters, in arrival order).

    Tests use it to see which queries a sync really made, e.g. an id-bounded repair;
    the benchmark, to tell requests past a collection's end (0 records) from the rest.
    """

    def __init__(self, size: int = REQUEST_LOG_SIZE) -> None:
        self._lock = threading.Lock()
        self._entries: deque[LoggedQuery] = deque(maxlen=size)

    def add(self, stream: str, params: list[tuple[str, str]]) -> LoggedQuery:
        """Log one query on a top-level stream; the caller sets what it served."""
        entry = LoggedQuery(stream, tuple(params))
        with self._lock:
            self._entries.append(entry)
        return entry

    def queries(self, stream: str | None = None) -> list[Params]:
        """The parameters of each logged query (on ``stream``), oldest first."""
        with self._lock:
            return [e.params for e in self._entries if stream in (None, e.stream)]

    def entries(self) -> list[dict[str, Any]]:
        """Every logged query as JSON, ``{"stream", "params", "at", "records"}``."""
        with self._lock:
            entries = list(self._entries)
        return [
            {
                "stream": e.stream,
                "params": [list(p) for p in e.params],
                "at": e.at,
                "records": e.records,
            }
            for e in entries
        ]

    def clear(self) -> None:
        """Forget every logged query."""
        with self._lock:
            self._entries.clear()


def _background_rules(
    raw: Mapping[str, Any] | list[Mapping[str, Any]] | None,
) -> list[BackgroundRule]:
    if not raw:
        return []
    if isinstance(raw, Mapping):
        if "rules" in raw:
            return [BackgroundRule.from_dict(r) for r in raw["rules"]]
        return [BackgroundRule.from_dict(raw)]
    return [BackgroundRule.from_dict(r) for r in raw]


class SandboxState:
    """Everything a request handler needs."""

    def __init__(self, config: SandboxConfig, registry: Registry | None = None) -> None:
        self.config = config
        self.registry = registry or load_registry(config.custom_objects)
        self.clock = Clock(config.timezone)
        if config.anchor:
            self.anchor = float(int(self.clock.parse(config.anchor)))
        else:
            self.anchor = Clock.today_utc_midnight()
        counts = {s.name: config.record_count(s.name) for s in self.registry.top_level}
        self.store = Store(
            self.registry,
            counts,
            config.seed,
            self.clock,
            self.anchor,
            cache_records=config.cache_records,
            document_shape=config.document_shape,
        )
        self.tokens = TokenStore(
            config.client_id,
            config.client_secret,
            known_scopes=self.registry.scopes,
            allowed_scopes=config.allowed_scopes,
            ttl=config.token_ttl,
        )
        self.faults = FaultInjector()
        self.set_faults(config.faults)
        self.bucket: TokenBucket | None = None
        self.set_rate_limit(config.rate_limit, config.burst, config.retry_after)
        self.latency_ms = config.effective_latency_ms()
        self.set_page_size(config.page_size)
        self.bandwidth = config.effective_bandwidth()
        self.default_response_filter = config.default_response_filter
        self.stats = Stats()
        self.requests = RequestLog()
        self.started = datetime.now().astimezone().isoformat()
        self.store.set_background(_background_rules(config.background))
        if config.eager:
            self.store.warm()

    def set_rate_limit(
        self, rate: float | None, burst: int = 20, retry_after: bool = False
    ) -> None:
        """Change (or, with ``rate=None``, disable) the token bucket."""
        self.bucket = TokenBucket(rate, burst) if rate else None
        self.retry_after = retry_after

    def set_page_size(self, page_size: int) -> None:
        """Serve at most ``page_size`` records per page, whatever ``limit`` asks."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.page_size = page_size

    def set_faults(self, faults: FaultConfig | Mapping[str, Any] | None) -> None:
        """Install a fault configuration; ``None``/``{}`` clears faults."""
        config = faults if isinstance(faults, FaultConfig) else FaultConfig.from_dict(faults)
        self.faults.configure(config)

    def set_background(self, raw: Mapping[str, Any] | list[Mapping[str, Any]] | None) -> None:
        """Install background mutation rules; ``None``/``{}`` stops them."""
        self.store.set_background(_background_rules(raw))

    def stats_snapshot(self) -> dict[str, Any]:
        """Everything ``/_sandbox/stats`` reports."""
        out = self.stats.snapshot()
        faults = self.faults.snapshot()
        by_class = out["by_class"]
        out.update(
            api_requests=by_class.get("api", 0),
            token_requests=by_class.get("token", 0),
            admin_requests=by_class.get("admin", 0),
            throttled=out["by_status"].get("429", 0),  # every 429: bucket and storms
            tokens_issued=self.tokens.issued,
            faults_injected=faults["injected"],
            mutations=dict(self.store.mutations),
            started=self.started,
        )
        return out

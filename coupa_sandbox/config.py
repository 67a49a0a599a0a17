"""Sandbox configuration: one dataclass shared by the Python API and the CLI.

Defaults mirror a real Coupa instance as documented: 50-record pages, 25 req/s with a
burst of 20, 429s without ``Retry-After``, tokens valid for a day, an
America/Los_Angeles instance time zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .clock import DEFAULT_TIMEZONE
from .faults import FaultConfig

DEFAULT_RECORDS = 40
"""Records per top-level stream unless it is a core stream or overridden."""

CORE_RECORDS = 150
EVERY_STREAM = "*"
"""The ``records`` key that sizes every stream not named on its own."""
CORE_STREAMS: frozenset[str] = frozenset(
    {
        "invoices",
        "purchase_orders",
        "purchase_order_lines",
        "requisitions",
        "suppliers",
        "users",
        "approvals",
        "contracts",
        "expense_reports",
        "expense_lines",
        "accounts",
        "budget_lines",
    }
)


@dataclass(frozen=True)
class Profile:
    """A latency profile: fixed per-response latency plus a bandwidth cap."""

    latency_ms: float
    bandwidth: float | None  # bytes per second applied to the body; None = unlimited


PROFILES: dict[str, Profile] = {
    "fast": Profile(latency_ms=0.0, bandwidth=None),
    "realistic": Profile(latency_ms=300.0, bandwidth=2 * 1024 * 1024),
}


@dataclass
class SandboxConfig:
    """Everything that shapes a sandbox instance; all fields have working defaults."""

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 42
    scale: float = 1.0
    records: Mapping[str, int] = field(default_factory=dict)
    anchor: str | None = None  # end of generated history; default: today 00:00 UTC
    timezone: str = DEFAULT_TIMEZONE
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    api_key: str = "sandbox-api-key"
    token_ttl: int = 86399
    allowed_scopes: frozenset[str] | None = None  # None: every known scope
    rate_limit: float | None = 25.0  # requests per second; None disables limiting
    burst: int = 20
    retry_after: bool = False  # send Retry-After with bucket 429s
    profile: str = "fast"
    latency_ms: float | None = None  # overrides the profile
    bandwidth: float | None = None  # overrides the profile (bytes/s)
    # Coupa's default and maximum `limit`; lower, it mimics an endpoint that silently
    # serves fewer records per page than `limit` asks (an SDK-free way to test a cap).
    page_size: int = 50
    empty_status: int = 404  # Coupa answers a query without results with a 404
    faults: Mapping[str, Any] | FaultConfig | None = None  # see coupa_sandbox.faults
    background: Mapping[str, Any] | list[Mapping[str, Any]] | None = None
    eager: bool = False  # generate every stream at start instead of on first access
    cache_records: int = 5000  # generated records kept per stream
    # Invoices, orders, requisitions and expense reports as Coupa serves them ("realistic",
    # ~25 KB per invoice) or in the sparser generic shape ("plain"); see generate.py.
    document_shape: str = "realistic"
    # The instance's custom objects: id (the API path segment) -> name. Their records
    # are served at /api/custom_objects/<id>/object_instances as custom_object_<name>.
    custom_objects: Mapping[str, str] = field(
        default_factory=lambda: {"101": "vehicles", "102": "site_permits"}
    )
    # An administrator's default API response filter (see query.DEFAULT_FILTER_STREAMS).
    default_response_filter: bool = False

    def record_count(self, stream: str) -> int:
        """Initial record count of a top-level stream (explicit counts are not scaled).

        ``records`` may name a stream or ``*``, every stream it does not name (a whole
        catalog of one size, for a benchmark).
        """
        explicit = self.records.get(stream, self.records.get(EVERY_STREAM))
        if explicit is not None:
            return max(0, int(explicit))
        base = CORE_RECORDS if stream in CORE_STREAMS else DEFAULT_RECORDS
        return max(1, round(base * self.scale))

    def effective_latency_ms(self) -> float:
        """Per-response latency after applying the profile."""
        if self.latency_ms is not None:
            return self.latency_ms
        return self._profile().latency_ms

    def effective_bandwidth(self) -> float | None:
        """Bandwidth cap (bytes/s) after applying the profile; None = unlimited."""
        if self.bandwidth is not None:
            return self.bandwidth if self.bandwidth > 0 else None
        return self._profile().bandwidth

    def _profile(self) -> Profile:
        try:
            return PROFILES[self.profile]
        except KeyError:
            raise ValueError(
                f"unknown profile {self.profile!r}; choose from {sorted(PROFILES)}"
            ) from None

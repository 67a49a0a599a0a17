"""Seeded fault injection: the failures a tap meets against a real Coupa instance.

Configured as JSON (admin endpoint, CLI ``--faults``) or a mapping (Python API)::

    {"seed": 3,
     "5xx":         {"probability": 0.1, "statuses": [500, 502, 503, 504], "html": 0.3},
     "reset":       {"every": 7},                 # close the socket, no response
     "truncate":    {"probability": 0.05},        # full Content-Length, half the body
     "slow":        {"probability": 0.02, "seconds": 30},
     "maintenance": {"every": 20},                # 200 text/html maintenance page
     "storm_429":   {"every": 50, "length": 5, "retry_after": null},
     "token_lifetime": 5}                         # or {"seconds": 5, "advertise": false}

Every rule takes trigger keys ``probability``, ``every`` (every Nth eligible request),
``after`` (skip the first N), ``limit`` (inject at most N times) and ``on`` (request
classes: ``"api"`` and/or ``"token"``; default ``["api"]``).  ``{}`` clears all faults.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from random import Random
from typing import Any

RULES = ("reset", "truncate", "5xx", "maintenance", "storm_429")


@dataclass
class Trigger:
    """When a rule fires: by probability and/or every Nth eligible request."""

    probability: float = 0.0
    every: int = 0
    after: int = 0
    limit: int | None = None
    on: tuple[str, ...] = ("api",)
    seen: int = 0
    fired: int = 0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | float | int) -> Trigger:
        """Accept a bare probability or the dict form."""
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return cls(probability=float(raw))
        if not isinstance(raw, Mapping):
            raise ValueError(f"fault trigger must be an object or a number, not {raw!r}")
        on = raw.get("on", ("api",))
        limit = raw.get("limit")
        return cls(
            probability=float(raw.get("probability", 0.0)),
            every=int(raw.get("every", 0) or 0),
            after=int(raw.get("after", 0) or 0),
            limit=None if limit is None else int(limit),
            on=(on,) if isinstance(on, str) else tuple(str(x) for x in on),
        )

    def check(self, rng: Random, request_class: str) -> bool:
        """Advance counters for an eligible request and say whether the rule fires."""
        if request_class not in self.on:
            return False
        self.seen += 1
        roll = rng.random()
        if self.seen <= self.after:
            return False
        if self.limit is not None and self.fired >= self.limit:
            return False
        by_count = self.every > 0 and (self.seen - self.after) % self.every == 0
        return by_count or roll < self.probability

    def to_dict(self) -> dict[str, Any]:
        """JSON form with runtime counters."""
        return {
            "probability": self.probability,
            "every": self.every,
            "after": self.after,
            "limit": self.limit,
            "on": list(self.on),
            "seen": self.seen,
            "fired": self.fired,
        }


@dataclass
class FaultConfig:
    """Parsed fault configuration (see the module docstring for the JSON form)."""

    seed: int = 0
    triggers: dict[str, Trigger] = field(default_factory=dict)
    statuses: tuple[int, ...] = (500, 502, 503, 504)
    html_share: float = 0.3
    slow: Trigger | None = None
    slow_seconds: float = 30.0
    storm_length: int = 5
    storm_retry_after: int | None = None
    token_lifetime: float | None = None
    token_lifetime_advertised: bool = True

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> FaultConfig:
        """Parse the JSON form; unknown keys are an error so typos do not go unnoticed."""
        raw = dict(raw or {})
        known = {"seed", "slow", "token_lifetime", *RULES}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        cfg = cls(seed=int(raw.get("seed", 0)))
        for rule in RULES:
            spec = raw.get(rule)
            if spec is None or spec is False:
                continue
            cfg.triggers[rule] = Trigger.from_dict(spec)
            if isinstance(spec, Mapping):
                if rule == "5xx":
                    cfg.statuses = tuple(int(s) for s in spec.get("statuses", cfg.statuses))
                    cfg.html_share = float(spec.get("html", cfg.html_share))
                if rule == "storm_429":
                    cfg.storm_length = max(1, int(spec.get("length", cfg.storm_length)))
                    retry = spec.get("retry_after")
                    cfg.storm_retry_after = None if retry is None else int(retry)
        slow = raw.get("slow")
        if slow is not None and slow is not False:
            cfg.slow = Trigger.from_dict(slow)
            if isinstance(slow, Mapping):
                cfg.slow_seconds = float(slow.get("seconds", cfg.slow_seconds))
        lifetime = raw.get("token_lifetime")
        if isinstance(lifetime, Mapping):
            cfg.token_lifetime = float(lifetime["seconds"])
            cfg.token_lifetime_advertised = bool(lifetime.get("advertise", True))
        elif lifetime is not None:
            cfg.token_lifetime = float(lifetime)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """JSON form (what ``GET /_sandbox/faults`` shows)."""
        out: dict[str, Any] = {"seed": self.seed}
        for rule, trigger in self.triggers.items():
            spec = trigger.to_dict()
            if rule == "5xx":
                spec.update(statuses=list(self.statuses), html=self.html_share)
            if rule == "storm_429":
                spec.update(length=self.storm_length, retry_after=self.storm_retry_after)
            out[rule] = spec
        if self.slow is not None:
            out["slow"] = {**self.slow.to_dict(), "seconds": self.slow_seconds}
        if self.token_lifetime is not None:
            out["token_lifetime"] = {
                "seconds": self.token_lifetime,
                "advertise": self.token_lifetime_advertised,
            }
        return out


@dataclass
class Decision:
    """What to do to one request; ``kind`` None means answer normally."""

    kind: str | None = None
    status: int = 0
    html: bool = False
    retry_after: int | None = None
    delay: float = 0.0


class FaultInjector:
    """Thread-safe, seeded decisions per request."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.injected: dict[str, int] = {}
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        """Install a new configuration (counters restart)."""
        with self._lock:
            self.config = config
            self._rngs = {rule: Random(f"{config.seed}:fault:{rule}") for rule in (*RULES, "slow")}
            self._storm_left = 0

    def decide(self, request_class: str) -> Decision:
        """Decide the fate of one ``api`` or ``token`` request."""
        with self._lock:
            cfg = self.config
            decision = Decision()
            storm = cfg.triggers.get("storm_429")
            if self._storm_left > 0 and storm is not None and request_class in storm.on:
                self._storm_left -= 1
                decision = Decision("storm_429", 429, retry_after=cfg.storm_retry_after)
            else:
                fired = [
                    rule
                    for rule, trigger in cfg.triggers.items()
                    if trigger.check(self._rngs[rule], request_class)
                ]
                winner = next((rule for rule in RULES if rule in fired), None)
                if winner is not None:
                    cfg.triggers[winner].fired += 1
                    decision = self._decision(winner)
            if cfg.slow is not None and cfg.slow.check(self._rngs["slow"], request_class):
                cfg.slow.fired += 1
                decision.delay = cfg.slow_seconds
                self._count("slow")
            if decision.kind is not None:
                self._count(decision.kind)
            return decision

    def _decision(self, rule: str) -> Decision:
        cfg = self.config
        rng = self._rngs[rule]
        if rule == "5xx":
            status = rng.choice(cfg.statuses) if cfg.statuses else 500
            return Decision("5xx", status, html=rng.random() < cfg.html_share)
        if rule == "maintenance":
            return Decision("maintenance", 200, html=True)
        if rule == "storm_429":
            self._storm_left = cfg.storm_length - 1
            return Decision("storm_429", 429, retry_after=cfg.storm_retry_after)
        return Decision(rule)

    def _count(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1

    def token_lifetime(self) -> tuple[float | None, bool]:
        """Forced token lifetime (seconds) and whether ``expires_in`` advertises it."""
        with self._lock:
            return self.config.token_lifetime, self.config.token_lifetime_advertised

    def snapshot(self) -> dict[str, Any]:
        """Current configuration and injection counts."""
        with self._lock:
            return {"config": self.config.to_dict(), "injected": dict(self.injected)}

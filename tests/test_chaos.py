"""Chaos: with every fault switched on, a full sync still delivers the sandbox's exact data."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from coupa_sandbox import Sandbox, SandboxConfig
from tests.helpers import TapRunner, tap_config

pytestmark = pytest.mark.sandbox

STREAMS = ["invoices", "suppliers", "users"]

FAULTS = {
    "seed": 9,
    "5xx": {"probability": 0.08, "html": 0.5},
    "reset": {"every": 11},
    "truncate": {"every": 13},
    "maintenance": {"every": 17},
    "storm_429": {"every": 29, "length": 3},
    "slow": {"every": 23, "seconds": 4},
    "token_lifetime": 3,
}


def exact(record: dict) -> str:
    """Canonical JSON with decimals compared by value, as a target would store them."""

    def normalise(value: object) -> object:
        if isinstance(value, dict):
            return {k: normalise(v) for k, v in value.items()}
        if isinstance(value, list):
            return [normalise(v) for v in value]
        if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
            return str(Decimal(str(value)).normalize())
        if isinstance(value, str):
            try:
                return str(Decimal(value).normalize())
            except ArithmeticError:
                return value
        return value

    return json.dumps(normalise(record), sort_keys=True)


@pytest.mark.parametrize("retry_after", [False, True], ids=["no-retry-after", "retry-after"])
def test_full_sync_under_every_fault(tap: TapRunner, retry_after: bool) -> None:
    faults = {
        **FAULTS,
        "storm_429": {**FAULTS["storm_429"], "retry_after": 1 if retry_after else None},
    }
    with Sandbox(SandboxConfig(seed=4, latency_ms=5)) as sb:
        sb.set_faults(faults)
        out = tap.run(
            tap_config(sb, page_size=10, request_timeout=2, max_retries=12, max_concurrency=6),
            STREAMS,
        )
        injected = sb.stats()["faults_injected"]
        for stream in STREAMS:
            expected = {r["id"]: exact(r) for r in sb.records(stream)}
            got = {r["id"]: exact(r) for r in out.records[stream]}
            assert got.keys() == expected.keys(), stream
            assert got == expected, f"{stream}: values differ from the sandbox"
    for kind in ("5xx", "reset", "truncate", "maintenance", "storm_429", "slow"):
        assert injected.get(kind, 0) > 0, f"the sandbox never injected {kind}: {injected}"
    assert "Retrying " in out.stderr, "retries are visible in the logs"
    summary = [line for line in out.stderr.splitlines() if "Stream 'invoices':" in line][-1]
    assert " 0 retries" not in summary, summary

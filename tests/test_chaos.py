"""Chaos: with every fault switched on, a full sync still delivers the sandbox's exact data."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from coupa_sandbox import Sandbox, SandboxConfig
from coupa_sandbox.schema import Node
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


def differences(expected: object, got: object, node: Node | None, path: str) -> Iterator[str]:
    """Where the tap's value differs from the sandbox's: exactly, types included.

    The one allowance: a decimal (a ``number`` in the sandbox's schema), which the
    sandbox sends as a string and the tap as a JSON number, is compared by value, as a
    target reading Decimals stores it. Any other string, numeric-looking or not
    (postal codes, account segments), must arrive as the same string.
    """
    if isinstance(expected, dict) and isinstance(got, dict) and expected.keys() == got.keys():
        props = node.props if node is not None else {}
        for key, value in expected.items():
            yield from differences(value, got[key], props.get(key), f"{path}/{key}")
    elif isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        item = node.items if node is not None else None
        for index, (value, other) in enumerate(zip(expected, got, strict=True)):
            yield from differences(value, other, item, f"{path}[{index}]")
    elif is_decimal(node) and isinstance(expected, str) and type(got) in (int, Decimal):
        if got != Decimal(expected):
            yield f"{path}: {expected!r} != {got!r}"
    elif type(got) is not type(expected) or got != expected:
        yield f"{path}: {expected!r:.200} != {got!r:.200}"


def is_decimal(node: Node | None) -> bool:
    """A decimal column: Coupa sends these as strings; the tap may emit them as numbers."""
    return node is not None and node.kind == "number"


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
            expected = {r["id"]: r for r in sb.records(stream)}
            got = {r["id"]: r for r in out.records[stream]}
            assert got.keys() == expected.keys(), stream
            schema = sb.state.registry[stream].schema
            wrong = [d for i in expected for d in differences(expected[i], got[i], schema, stream)]
            assert not wrong, f"values differ from the sandbox: {wrong[:5]}"
    for kind in ("5xx", "reset", "truncate", "maintenance", "storm_429", "slow"):
        assert injected.get(kind, 0) > 0, f"the sandbox never injected {kind}: {injected}"
    assert "Retrying " in out.stderr, "retries are visible in the logs"
    summary = [line for line in out.stderr.splitlines() if "Stream 'invoices':" in line][-1]
    assert " 0 retries" not in summary, summary

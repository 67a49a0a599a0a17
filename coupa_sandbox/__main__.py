"""Command line: ``coupa-sandbox --port 8080 …`` or ``python -m coupa_sandbox``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from .config import PROFILES, SandboxConfig
from .faults import FaultConfig
from .generate import DOCUMENT_SHAPES
from .sandbox import Sandbox

FAULT_FLAGS = {
    "fault_5xx": "5xx",
    "fault_reset": "reset",
    "fault_truncate": "truncate",
    "fault_slow": "slow",
    "fault_maintenance": "maintenance",
    "fault_429_storm": "storm_429",
}


def parse_trigger(spec: str) -> dict[str, Any]:
    """``0.1`` -> probability; ``every=7``; ``p=0.1,every=7,after=3,limit=5,on=api+token``."""
    spec = spec.strip()
    try:
        return {"probability": float(spec)}
    except ValueError:
        pass
    out: dict[str, Any] = {}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        key = {"p": "probability", "n": "every"}.get(key.strip(), key.strip())
        if key == "on":
            out["on"] = value.split("+")
        elif key == "probability":
            out[key] = float(value)
        elif key in ("every", "after", "limit"):
            out[key] = int(value)
        else:
            raise argparse.ArgumentTypeError(f"bad fault spec {spec!r}")
    return out


def _json_arg(value: str) -> Any:
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    return json.loads(text)


def _records(values: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in values:
        name, sep, count = item.partition("=")
        if not sep:
            raise SystemExit(f"--records expects stream=count, got {item!r}")
        out[name.strip()] = int(count)
    return out


def build_parser() -> argparse.ArgumentParser:
    """All CLI options."""
    p = argparse.ArgumentParser(prog="coupa-sandbox", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--scale", type=float, default=1.0, help="multiplies default record counts")
    p.add_argument(
        "--records",
        nargs="+",
        action="extend",
        default=[],
        metavar="STREAM=N",
        help="records of a top-level stream; '*=N' for every stream not named",
    )
    p.add_argument("--anchor", default=None, help="end of generated history (ISO datetime)")
    p.add_argument("--timezone", default="America/Los_Angeles")
    p.add_argument("--eager", action="store_true", help="generate all data before serving")
    p.add_argument("--cache-records", type=int, default=5000, help="records kept per stream")
    p.add_argument(
        "--document-shape",
        choices=DOCUMENT_SHAPES,
        default="realistic",
        help="documents as Coupa serves them (~25 KB per invoice) or sparser (plain)",
    )
    p.add_argument(
        "--custom-objects",
        type=_json_arg,
        default=None,
        help='custom objects as JSON {"<id>": "<name>"}; default: two examples',
    )
    p.add_argument("--client-id", default="sandbox-client")
    p.add_argument("--client-secret", default="sandbox-secret")
    p.add_argument("--api-key", default="sandbox-api-key")
    p.add_argument("--token-ttl", type=int, default=86399)
    p.add_argument("--allowed-scopes", nargs="*", default=None, metavar="SCOPE")
    p.add_argument("--profile", choices=sorted(PROFILES), default="fast")
    p.add_argument("--latency-ms", type=float, default=None)
    p.add_argument("--bandwidth", type=float, default=None, help="bytes/s; 0 = unlimited")
    p.add_argument("--rate-limit", type=float, default=25.0, help="requests per second")
    p.add_argument("--burst", type=int, default=20)
    p.add_argument("--no-rate-limit", action="store_true")
    p.add_argument("--retry-after", action="store_true", help="send Retry-After with 429s")
    p.add_argument(
        "--empty-status",
        type=int,
        default=404,
        help="status for queries without results (Coupa: 404)",
    )
    p.add_argument(
        "--page-size",
        type=int,
        default=50,
        help="most records served per page, whatever limit asks (Coupa: 50)",
    )
    p.add_argument("--faults", type=_json_arg, default=None, help="fault JSON or @file")
    p.add_argument("--fault-seed", type=int, default=None)
    for flag in FAULT_FLAGS:
        p.add_argument(
            "--" + flag.replace("_", "-"), type=parse_trigger, default=None, metavar="SPEC"
        )
    p.add_argument("--html-share", type=float, default=None, help="5xx with HTML bodies")
    p.add_argument("--slow-seconds", type=float, default=None)
    p.add_argument("--storm-length", type=int, default=None)
    p.add_argument("--storm-retry-after", type=int, default=None)
    p.add_argument(
        "--token-lifetime", type=float, default=None, help="force tokens to expire after N seconds"
    )
    p.add_argument(
        "--default-response-filter",
        action="store_true",
        help="trim invoices, orders, users, expenses and requisitions to a few fields "
        "unless a request gives fields (an administrator's default API response filter)",
    )
    p.add_argument(
        "--background",
        type=_json_arg,
        default=None,
        help='background mutation JSON, e.g. {"stream": "invoices", '
        '"every_requests": 3, "update": 2}',
    )
    return p


def fault_config(args: argparse.Namespace) -> dict[str, Any] | None:
    """Merge ``--faults`` JSON with the individual fault flags."""
    faults: dict[str, Any] = dict(args.faults or {})
    for flag, rule in FAULT_FLAGS.items():
        trigger = getattr(args, flag)
        if trigger is not None:
            faults[rule] = {**faults.get(rule, {}), **trigger}
    if args.html_share is not None:
        faults.setdefault("5xx", {})["html"] = args.html_share
    if args.slow_seconds is not None:
        faults.setdefault("slow", {})["seconds"] = args.slow_seconds
    if args.storm_length is not None:
        faults.setdefault("storm_429", {})["length"] = args.storm_length
    if args.storm_retry_after is not None:
        faults.setdefault("storm_429", {})["retry_after"] = args.storm_retry_after
    if args.token_lifetime is not None:
        faults["token_lifetime"] = args.token_lifetime
    if args.fault_seed is not None:
        faults["seed"] = args.fault_seed
    return faults or None


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """Translate parsed arguments into a :class:`SandboxConfig`."""
    faults = fault_config(args)
    FaultConfig.from_dict(faults)  # fail fast on a bad --faults document
    return SandboxConfig(
        host=args.host,
        port=args.port,
        seed=args.seed,
        scale=args.scale,
        records=_records(args.records),
        anchor=args.anchor,
        timezone=args.timezone,
        client_id=args.client_id,
        client_secret=args.client_secret,
        api_key=args.api_key,
        token_ttl=args.token_ttl,
        allowed_scopes=None if args.allowed_scopes is None else frozenset(args.allowed_scopes),
        rate_limit=None if args.no_rate_limit else args.rate_limit,
        burst=args.burst,
        retry_after=args.retry_after,
        profile=args.profile,
        latency_ms=args.latency_ms,
        bandwidth=args.bandwidth,
        empty_status=args.empty_status,
        page_size=args.page_size,
        faults=faults,
        background=args.background,
        eager=args.eager,
        cache_records=args.cache_records,
        document_shape=args.document_shape,
        **({} if args.custom_objects is None else {"custom_objects": args.custom_objects}),
        default_response_filter=args.default_response_filter,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGINT/SIGTERM."""
    parser = build_parser()
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    sandbox = Sandbox(config).start()
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    cfg = sandbox.config
    print(
        f"Coupa sandbox at {sandbox.url} client_id={cfg.client_id} "
        f"client_secret={cfg.client_secret} api_key={cfg.api_key} "
        f"(ready in {time.perf_counter() - started:.2f}s)",
        flush=True,
    )
    try:
        while not stop.wait(0.2):
            pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Start-up cost: process start to the first request, and a small run's wall and CPU time.

Two runs against an in-process sandbox (no latency, no rate limit), each repeated and
reported as medians: (a) a sync of one small stream with a catalog; (b) an incremental
run of every stream, about one page each, from the state a full sync left. The time
to the first request is read from the sandbox's side, so it includes the interpreter
start, imports and everything the tap does before it opens a connection.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from pathlib import Path

from coupa_sandbox import Sandbox, SandboxConfig
from coupa_sandbox.server import SandboxHandler

ONE_STREAM = "uoms"


class FirstRequest:
    """Notes when the sandbox receives its first request after ``arm``."""

    def __init__(self) -> None:
        self.at: float | None = None
        self._lock = threading.Lock()
        dispatch = SandboxHandler._dispatch

        def noted(handler: SandboxHandler, method: str) -> None:
            with self._lock:
                if self.at is None:
                    self.at = time.monotonic()
            dispatch(handler, method)

        SandboxHandler._dispatch = noted  # type: ignore[method-assign,assignment]

    def arm(self) -> None:
        self.at = None


Timing = tuple[float, float, float]


def run(workdir: Path, first: FirstRequest, *args: str) -> tuple[Timing, bytes]:
    """One tap process: ms to its first request, wall s, CPU s, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    first.arm()
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tap_coupa", "--config", "config.json", *args],
        cwd=workdir,
        capture_output=True,
        check=True,
    )
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    to_first = (first.at - start) * 1000 if first.at is not None else float("nan")
    return (to_first, wall, cpu), done.stdout


def catalog(workdir: Path, first: FirstRequest, only: str | None) -> None:
    """Write catalog.json: every stream selected, or only ``only``."""
    _, out = run(workdir, first, "--discover")
    found = json.loads(out)
    for entry in found["streams"]:
        for meta in entry["metadata"]:
            if not meta["breadcrumb"]:
                meta["metadata"]["selected"] = only is None or entry["tap_stream_id"] == only
    (workdir / "catalog.json").write_text(json.dumps(found))


def last_state(stdout: bytes) -> object:
    states = [json.loads(line) for line in stdout.splitlines() if b'"STATE"' in line]
    return states[-1]["value"]


def median_of(label: str, runs: list[Timing]) -> None:
    first, wall, cpu = (statistics.median(r[i] for r in runs) for i in range(3))
    print(f"{label:<36} first request {first:7.0f} ms  wall {wall:6.2f} s  CPU {cpu:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    first = FirstRequest()
    config = SandboxConfig(rate_limit=None, scale=0.05, eager=True)
    with Sandbox(config) as sandbox, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        settings: dict[str, t.Any] = {
            "base_url": sandbox.url,
            "client_id": config.client_id,
            "client_secret": config.client_secret,
            "max_requests_per_second": 10000,
        }
        (workdir / "config.json").write_text(json.dumps(settings))
        catalog(workdir, first, ONE_STREAM)
        one = [run(workdir, first, "--catalog", "catalog.json")[0] for _ in range(args.runs)]
        catalog(workdir, first, None)
        _, out = run(workdir, first, "--catalog", "catalog.json")
        (workdir / "state.json").write_text(json.dumps(last_state(out)))
        files = ["--catalog", "catalog.json", "--state", "state.json"]
        incremental = [run(workdir, first, *files)[0] for _ in range(args.runs)]
        requests = len(sandbox.requests())
    median_of(f"(a) one stream ({ONE_STREAM})", one)
    median_of("(b) incremental, every stream", incremental)
    print(f"sandbox API queries over all runs: {requests}")


if __name__ == "__main__":
    main()

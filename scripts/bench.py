"""`make bench`: how close tap-coupa comes to Coupa's rate limit, and what each record costs.

Two sandbox profiles, each a separate process on loopback:

* realistic: ~300 ms latency plus ~2 MiB/s per response, full invoice payloads, a
  25 requests/s limit with a burst of 20 and no ``Retry-After``. The tap runs with
  default settings and again with ``max_concurrency=1`` (sequential).
* fast: no latency, no limit. CPU per record is compared with the floor: decoding the
  same pages and encoding RECORD messages with msgspec, measured in this run.

The physical ceiling is the rate limit times 50 records per request.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import msgspec

STREAM = "invoices"
RATE_LIMIT = 25
PAGE = 50


@dataclass
class Result:
    label: str
    records: int
    seconds: float
    requests: int
    throttled: int
    retries: int
    peak_rss_mb: float
    cpu_us_per_record: float

    def row(self, floor_us: float | None) -> str:
        rate = self.records / self.seconds
        ratio = f"{rate / (RATE_LIMIT * PAGE):6.1%}"
        floor = f"{self.cpu_us_per_record / floor_us:5.2f}x" if floor_us else "    -"
        return (
            f"{self.label:26} {self.records:>7} {rate:>9.0f} {self.requests / self.seconds:>7.1f} "
            f"{self.throttled:>5} {self.retries:>7} {self.peak_rss_mb:>8.0f} "
            f"{self.cpu_us_per_record:>8.0f} {floor:>7} {ratio:>8}"
        )


HEADER = (
    f"{'run':26} {'records':>7} {'rec/s':>9} {'req/s':>7} {'429s':>5} {'retries':>7} "
    f"{'RSS MB':>8} {'CPU µs/r':>8} {'÷floor':>7} {'ceiling':>8}"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.load(response)


class SandboxProcess:
    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "coupa_sandbox", "--port", str(self.port), *args]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                get_json(f"{self.url}/_sandbox/counts")
                return
            except OSError:
                time.sleep(0.2)
        self.process.kill()
        raise SystemExit("sandbox did not start")

    def stats(self) -> dict[str, int]:
        stats = get_json(f"{self.url}/_sandbox/stats")
        assert isinstance(stats, dict)
        return stats

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def run_tap(label: str, sandbox: SandboxProcess, workdir: Path, **settings: object) -> Result:
    config = {
        "base_url": sandbox.url,
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        **settings,
    }
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    catalog = json.loads(
        subprocess.run(
            [sys.executable, "-m", "tap_coupa", "--config", str(config_path), "--discover"],
            capture_output=True,
            check=True,
        ).stdout
    )
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] == STREAM
    catalog_path = workdir / "catalog.json"
    catalog_path.write_text(json.dumps(catalog))
    before = sandbox.stats()
    log_path = workdir / f"{label}.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tap_coupa",
                "--config",
                str(config_path),
                "--catalog",
                str(catalog_path),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        assert process.stdout is not None
        records = sum(1 for line in process.stdout if line.startswith(b'{"type":"RECORD"'))
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"{label}: tap failed, see {log_path}")
    after = sandbox.stats()
    log = log_path.read_text()
    return Result(
        label=label,
        records=records,
        seconds=seconds,
        requests=after["by_class"]["api"] - before["by_class"].get("api", 0),
        throttled=after["429s"] - before["429s"],
        retries=log.count("Retrying "),
        peak_rss_mb=usage.ru_maxrss / 1024,
        cpu_us_per_record=(usage.ru_utime + usage.ru_stime) * 1e6 / max(records, 1),
    )


def floor_us_per_record(sandbox: SandboxProcess, token: str, pages: int) -> float:
    """µs per record to JSON-decode Coupa pages and encode RECORD messages with msgspec."""
    bodies = []
    for index in range(pages):
        request = urllib.request.Request(
            f"{sandbox.url}/api/{STREAM}?order_by=id&limit={PAGE}&offset={index * PAGE}",
            headers={"Accept": "application/json", "Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            bodies.append(response.read())
    decoder = msgspec.json.Decoder()
    encoder = msgspec.json.Encoder()
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    started = time.process_time()
    count = 0
    for body in bodies:
        for record in decoder.decode(body):
            encoder.encode(
                {"type": "RECORD", "stream": STREAM, "record": record, "time_extracted": now}
            )
            count += 1
    return (time.process_time() - started) * 1e6 / count


def token(sandbox: SandboxProcess) -> str:
    data = b"grant_type=client_credentials&client_id=sandbox-client&client_secret=sandbox-secret"
    with urllib.request.urlopen(f"{sandbox.url}/oauth2/token", data=data, timeout=30) as response:
        return str(json.load(response)["access_token"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=9000, help="invoices in the main runs")
    parser.add_argument("--sequential-records", type=int, default=1000)
    parser.add_argument("--fast-records", type=int, default=30000)
    args = parser.parse_args()
    results: list[tuple[Result, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        realistic = ["--profile", "realistic", "--rate-limit", str(RATE_LIMIT), "--burst", "20"]
        print(f"realistic profile: {args.records} invoices ...", flush=True)
        sandbox = SandboxProcess(*realistic, "--records", f"{STREAM}={args.records}")
        try:
            results.append((run_tap("realistic, defaults", sandbox, workdir), None))
        finally:
            sandbox.close()
        print(f"realistic profile, sequential: {args.sequential_records} invoices ...", flush=True)
        sandbox = SandboxProcess(*realistic, "--records", f"{STREAM}={args.sequential_records}")
        try:
            results.append(
                (run_tap("realistic, max_concurrency=1", sandbox, workdir, max_concurrency=1), None)
            )
        finally:
            sandbox.close()
        for count in (args.records, args.fast_records):
            print(f"fast profile: {count} invoices ...", flush=True)
            sandbox = SandboxProcess(
                "--profile", "fast", "--no-rate-limit", "--records", f"{STREAM}={count}"
            )
            try:
                floor = floor_us_per_record(sandbox, token(sandbox), pages=40)
                fast = run_tap(f"fast, {count}", sandbox, workdir, max_requests_per_second=10000)
                results.append((fast, floor))
            finally:
                sandbox.close()
    print()
    print(HEADER)
    for result, floor in results:
        print(result.row(floor))
        if floor:
            print(f"{'':26} floor (msgspec decode + RECORD encode): {floor:.0f} µs/record")
    concurrent, sequential = results[0][0], results[1][0]
    speedup = (concurrent.records / concurrent.seconds) / (sequential.records / sequential.seconds)
    print(f"\nconcurrent vs sequential throughput (realistic profile): {speedup:.1f}x")
    print(f"ceiling: {RATE_LIMIT} req/s x {PAGE} records = {RATE_LIMIT * PAGE} records/s")


if __name__ == "__main__":
    main()

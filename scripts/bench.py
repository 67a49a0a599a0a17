"""`make bench`: how close tap-coupa comes to Coupa's rate limit, and what each record costs.

Two sandbox profiles, each a separate process on loopback:

* realistic: ~300 ms latency plus ~2 MiB/s per response, full invoice payloads, a
  25 requests/s limit with a burst of 20 and no ``Retry-After``. The tap runs with
  default settings and again with ``max_concurrency=1`` (sequential).
* fast: no latency, no limit. CPU per record is compared with two floors, measured in
  this run on the same pages: msgspec decoding them fully, and decoding them one level
  deep as the tap does (values kept raw), each then encoding RECORD messages.
* fields: realistic, invoices with half their properties deselected, with and without
  ``request_fields``: bytes per page (the sandbox counts them) and records/s.
* whole catalog: realistic, every stream of the catalog selected (child streams and the
  sandbox's custom objects too), ``--catalog-records`` records in each collection; a
  full sync, then an incremental one from its final state after ``--catalog-changes``
  changes per collection. See :func:`catalog_runs` for what each figure means.

The physical ceiling is the rate limit times 50 records per request. Records/s and "of
ceiling" come from the stream's scan as the tap logs it; the wall-clock figures time
the whole sync process, start-up included.
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import gc
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from coupa_sandbox.config import PROFILES
from coupa_sandbox.shape import Figures

STREAM = "invoices"
#: Each fast run is made with decimals as numbers (the default) and as strings.
DECIMAL_FORMATS = ("number", "string")
FAST_REPEATS = 3
RATE_LIMIT = 25
BURST = 20
PAGE = 50
REALISTIC = ["--profile", "realistic", "--rate-limit", str(RATE_LIMIT), "--burst", str(BURST)]
#: The realistic profile's latency: no request is answered sooner.
ROUND_TRIP = PROFILES["realistic"].latency_ms / 1000
#: A stream's scan summary, as the tap logs it.
SCAN_LOG = re.compile(
    r"Stream '(?P<stream>[^']+)': (?P<records>\d+) records, .*? "
    r"in (?P<seconds>[\d.]+)s, (?P<cpu>[\d.]+)s CPU"
)
#: The floors: msgspec decoding pages fully, and one level deep as the tap does.
FLOOR_DECODERS: dict[str, msgspec.json.Decoder[t.Any]] = {
    "full": msgspec.json.Decoder(),
    "one level": msgspec.json.Decoder(list[dict[str, msgspec.Raw]]),
}
Floors = dict[str, float]
"""µs per record for each of :data:`FLOOR_DECODERS`; empty where none was measured."""


@dataclass
class Result:
    label: str
    records: int
    #: The stream's scan, as the tap logs it.
    seconds: float
    #: The sync process from start to exit: start-up, stream setup and exit included.
    wall: float
    #: The ``--discover`` process run before it (Meltano caches its catalog).
    discover_wall: float
    requests: int
    throttled: int
    retries: int
    peak_rss_mb: float
    #: The process's CPU time during the stream's scan, as the tap logs it.
    cpu_seconds: float
    #: Response bodies the sandbox sent (token and API).
    body_bytes: int = 0

    def cpu_us_per_record(self) -> float:
        return self.cpu_seconds * 1e6 / max(self.records, 1)

    def ratios(self, floors: Floors) -> dict[str, float]:
        """CPU per record over each floor measured."""
        return {name: self.cpu_us_per_record() / floor for name, floor in floors.items()}

    def row(self, floors: Floors) -> str:
        rate = self.records / self.seconds
        limited = self.label.startswith("realistic")  # the fast profile has no rate limit
        ratio = f"{rate / (RATE_LIMIT * PAGE):6.1%}" if limited else "-"
        ratios = self.ratios(floors)
        by_floor = " ".join(
            f"{ratios[name]:>7.2f}x" if name in ratios else f"{'-':>8}" for name in FLOOR_DECODERS
        )
        return (
            f"{self.label:28} {self.records:>7} {self.seconds:>6.1f} {self.wall:>6.1f} "
            f"{self.wall - self.seconds:>6.1f} {rate:>6.0f} {self.records / self.wall:>6.0f} "
            f"{self.requests / self.seconds:>6.1f} {self.throttled:>5} {self.retries:>7} "
            f"{self.peak_rss_mb:>6.0f} {self.cpu_us_per_record():>8.0f} {by_floor} {ratio:>8}"
        )


HEADER = (
    f"{'':28} {'':>7} {'scan':>6} {'wall':>6} {'wall -':>6} {'rec/s':>6} {'rec/s':>6} "
    f"{'req/s':>6} {'':>5} {'':>7} {'':>6} {'':>8} {'÷ full':>8} {'÷ 1-lvl':>8} "
    f"{'ceiling':>8}\n"
    f"{'run':28} {'records':>7} {'s':>6} {'s':>6} {'scan s':>6} {'scan':>6} {'wall':>6} "
    f"{'scan':>6} {'429s':>5} {'retries':>7} {'RSS MB':>6} {'CPU µs/r':>8} {'floor':>8} "
    f"{'floor':>8} {'(scan)':>8}"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> t.Any:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.load(response)


def post_json(url: str, payload: object) -> t.Any:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def discover(config_path: Path) -> dict[str, t.Any]:
    """The tap's catalog, from ``--discover``."""
    command = [sys.executable, "-m", "tap_coupa", "--config", str(config_path), "--discover"]
    catalog: dict[str, t.Any] = json.loads(
        subprocess.run(command, capture_output=True, check=True).stdout
    )
    return catalog


def select_streams(catalog: Mapping[str, t.Any], chosen: t.Callable[[str], bool]) -> None:
    """Select the streams ``chosen`` accepts, deselect the others."""
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = chosen(entry["tap_stream_id"])


class SandboxProcess:
    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "coupa_sandbox",
            "--port",
            str(self.port),
            "--eager",
            *args,
        ]
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

    def stats(self) -> dict[str, t.Any]:
        stats = get_json(f"{self.url}/_sandbox/stats")
        assert isinstance(stats, dict)
        return stats

    def tap_config(self, workdir: Path, **settings: object) -> Path:
        """A tap config for this sandbox, written to ``workdir``."""
        config = {
            "base_url": self.url,
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
            **settings,
        }
        path = workdir / "config.json"
        path.write_text(json.dumps(config))
        return path

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def count_records(stream: t.IO[bytes]) -> int:
    """RECORD messages on a pipe, counted in large chunks so the reader costs little.

    (A line-by-line Python reader took a good share of the two cores from the tap.)
    """
    marker = b'{"type":"RECORD"'
    count, tail = 0, b""
    while chunk := stream.read(1 << 20):
        data = tail + chunk
        count += data.count(marker)
        tail = data[-(len(marker) - 1) :]  # too short to hold a marker counted already
    return count


def half_deselected(schema: dict[str, t.Any]) -> set[str]:
    """Half of the properties, as a user who wants header columns would deselect them:
    the nested ones (associations, lines) first, then every other scalar."""
    properties = schema["properties"]
    names = sorted(set(properties) - {"id", "updated-at", "extra-fields"})
    nested = [n for n in names if properties[n].get("properties") or "items" in properties[n]]
    scalars = [n for n in names if n not in nested]
    return set([*nested, *scalars[::2], *scalars[1::2]][: len(properties) // 2])


def run_tap(
    label: str,
    sandbox: SandboxProcess,
    workdir: Path,
    half: bool = False,
    /,
    **settings: object,
) -> Result:
    config_path = sandbox.tap_config(workdir, **settings)
    discover_started = time.monotonic()
    catalog = discover(config_path)
    discover_wall = time.monotonic() - discover_started
    select_streams(catalog, STREAM.__eq__)
    for entry in catalog["streams"]:
        dropped = half_deselected(entry["schema"]) if half else set()
        for meta in entry["metadata"]:
            if meta["breadcrumb"] and meta["breadcrumb"][-1] in dropped:
                meta["metadata"]["selected"] = False
    catalog_path = workdir / "catalog.json"
    catalog_path.write_text(json.dumps(catalog))
    before = sandbox.stats()
    log_path = workdir / f"{label}.log"
    started = time.monotonic()
    with log_path.open("w") as log_file:
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
            stderr=log_file,
        )
        assert process.stdout is not None
        records = count_records(process.stdout)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"{label}: tap failed, see {log_path}")
    after = sandbox.stats()
    log = log_path.read_text()
    scan = next((m for m in SCAN_LOG.finditer(log) if m["stream"] == STREAM), None)
    if scan is None:
        raise SystemExit(f"{label}: the tap logged no scan summary, see {log_path}")
    return Result(
        label=label,
        records=records,
        seconds=float(scan["seconds"]),
        wall=seconds,
        discover_wall=discover_wall,
        requests=after["api_requests"] - before["api_requests"],
        throttled=after["throttled"] - before["throttled"],
        retries=log.count("Retrying "),
        peak_rss_mb=usage.ru_maxrss / 1024,
        cpu_seconds=float(scan["cpu"]),
        body_bytes=after["body_bytes"] - before["body_bytes"],
    )


def fetch_pages(sandbox: SandboxProcess, token: str, pages: int) -> list[bytes]:
    """The first pages of the stream, as the tap requests them."""
    bodies = []
    for index in range(pages):
        request = urllib.request.Request(
            f"{sandbox.url}/api/{STREAM}?order_by=id&limit={PAGE}&offset={index * PAGE}",
            headers={"Accept": "application/json", "Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            bodies.append(response.read())
    return bodies


def floor_us_per_record(bodies: list[bytes], decoder: msgspec.json.Decoder[t.Any]) -> float:
    """µs per record to decode Coupa pages and encode RECORD messages with msgspec."""
    encoder = msgspec.json.Encoder()
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    gc.collect()
    gc.freeze()  # as the tap does: the heap built before records flow is not rescanned
    best = float("inf")
    for _ in range(3):  # best of three, as microbenchmarks go
        started = time.process_time()
        count = 0
        for body in bodies:
            for record in decoder.decode(body):
                message = {
                    "type": "RECORD",
                    "stream": STREAM,
                    "record": record,
                    "time_extracted": now,
                }
                encoder.encode(message)
                count += 1
        best = min(best, (time.process_time() - started) * 1e6 / count)
    return best


def measure_floors(bodies: list[bytes]) -> Floors:
    """Both floors on the same pages; none without pages (the realistic profile)."""
    if not bodies:
        return {}
    return {name: floor_us_per_record(bodies, decoder) for name, decoder in FLOOR_DECODERS.items()}


def _mean(before: Floors, after: Floors) -> Floors:
    return {name: (before[name] + after[name]) / 2 for name in before}


def _span(values: t.Iterable[float], unit: str, digits: int = 2) -> str:
    ordered = sorted(values)
    return f"{ordered[0]:.{digits}f}-{ordered[-1]:.{digits}f}{unit}"


def token(sandbox: SandboxProcess) -> str:
    data = b"grant_type=client_credentials&client_id=sandbox-client&client_secret=sandbox-secret"
    with urllib.request.urlopen(f"{sandbox.url}/oauth2/token", data=data, timeout=30) as response:
        return str(json.load(response)["access_token"])


@dataclass
class Measured:
    """One profile's tap runs, each paired with the floors measured around it."""

    pairs: list[tuple[Floors, Result]]
    #: Every floor measurement, for the range the machine's drift gives.
    floors: list[Floors]
    #: Size of the invoices the floors decode (what a CPU figure per record is of).
    pages: Figures | None = None

    def shown(self) -> tuple[Floors, Result]:
        """The median run by CPU over the floor of the tap's own method."""
        ranked = sorted(self.pairs, key=lambda pair: pair[1].ratios(pair[0]).get("one level", 0))
        return ranked[len(ranked) // 2]


def measure(
    label: str, count: int, profile: list[str], settings: Mapping[str, object], workdir: Path
) -> Measured:
    sandbox = SandboxProcess(
        *profile, "--records", f"{STREAM}={count}", "--cache-records", str(count)
    )
    try:
        # CPU per record on this 2-core machine varies ±20% run to run, and so does the
        # floor. The fast profile runs three times, each with its own floors; the median
        # ratio is shown, every run is printed.
        repeats = FAST_REPEATS if "fast" in label else 1
        pages = min(40, -(-count // PAGE))  # past the last record the sandbox answers 404
        bodies = fetch_pages(sandbox, token(sandbox), pages) if "fast" in label else []
        # The machine's speed drifts over seconds: each run is paired with the mean of
        # the floors measured just before and just after it.
        floors = [measure_floors(bodies)]
        results = []
        for _ in range(repeats):
            results.append(run_tap(label, sandbox, workdir, **settings))
            floors.append(measure_floors(bodies))
    finally:
        sandbox.close()
    pairs = [(_mean(floors[i], floors[i + 1]), result) for i, result in enumerate(results)]
    shape = Figures.of(r for body in bodies for r in msgspec.json.decode(body)) if bodies else None
    return Measured(pairs, [f for f in floors if f], shape)


def report(measured: dict[str, Measured]) -> None:
    """The table, each fast run against its floors, and the figures the README quotes."""
    print()
    print(HEADER)
    for each in measured.values():
        floors, result = each.shown()
        print(result.row(floors))
        if floors:
            print(
                f"{'':28} floors, same pages, µs/record: full decode {floors['full']:.0f}, "
                f"one level (the tap's method) {floors['one level']:.0f}"
            )
        if each.pages:
            print(f"{'':28} floor pages, per invoice: {each.pages}")
        if len(each.pairs) > 1:
            runs = "; ".join(
                f"{r.cpu_us_per_record():.0f} ÷ "
                + ", ÷ ".join(
                    f"{f[name]:.0f} = {ratio:.2f}x" for name, ratio in r.ratios(f).items()
                )
                for f, r in each.pairs
            )
            print(f"{'':28} each run, CPU µs/r ÷ full / one-level floor: {runs}")
    print()
    concurrent = measured.get("realistic, defaults")
    sequential = measured.get("realistic, max_concurrency=1")
    if concurrent and sequential:
        fast, slow = concurrent.shown()[1], sequential.shown()[1]
        print(
            "concurrent vs sequential throughput (realistic profile): "
            f"{fast.records / fast.seconds / (slow.records / slow.seconds):.1f}x by scan, "
            f"{fast.records / fast.wall / (slow.records / slow.wall):.1f}x by wall"
        )
    all_floors = [f for each in measured.values() for f in each.floors]
    for name in FLOOR_DECODERS:
        if all_floors:
            floor = _span((f[name] for f in all_floors), " µs/record", 0)
            print(f"{name} floor: {floor} over this run")
    for form in DECIMAL_FORMATS:
        pairs = [
            pair
            for label, each in measured.items()
            if len(each.pairs) > 1 and label.endswith(f"decimals {form}")
            for pair in each.pairs
        ]
        for name in FLOOR_DECODERS:
            if pairs:
                ratios = _span((r.ratios(f)[name] for f, r in pairs), "x")
                print(f"decimals as {form}: single fast runs {ratios} of the {name} floor")
    results = [result for each in measured.values() for _, result in each.pairs]
    print(
        f"--discover (a separate process before each sync, not in wall s): "
        f"{_span((r.discover_wall for r in results), ' s')}"
    )
    print(f"ceiling: {RATE_LIMIT} req/s x {PAGE} records = {RATE_LIMIT * PAGE} records/s")
    print(
        "scan: the stream's scan as the tap logs it (rec/s, req/s and ceiling are by scan); "
        "wall: the sync process from start to exit; wall - scan: its start-up (interpreter, "
        "imports, catalog, streams, token) and exit. CPU µs/r: the process's CPU time "
        "(all threads) during the scan, as the tap logs it."
    )


def fast_settings(decimal_format: str) -> dict[str, object]:
    """The fast profile's tap settings: no rate limit of the tap's own either."""
    return {"max_requests_per_second": 10000, "decimal_format": decimal_format}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=80000, help="invoices, realistic profile")
    parser.add_argument("--sequential-records", type=int, default=1000)
    parser.add_argument("--fast-records", type=int, nargs="+", default=[8000, 24000])
    parser.add_argument(
        "--fields-records", type=int, default=10000, help="invoices, half deselected; 0 skips"
    )
    parser.add_argument("--only-fields", action="store_true", help="run only the fields runs")
    parser.add_argument(
        "--listing-ids", type=int, default=100000, help="ids for the delete check; 0 skips"
    )
    parser.add_argument("--only-listing", action="store_true", help="run only the delete check")
    parser.add_argument(
        "--catalog-records",
        type=int,
        default=120,
        help="in each collection, whole catalog; 0 skips",
    )
    parser.add_argument(
        "--catalog-changes",
        type=int,
        default=40,
        help="changes in each collection before the whole catalog's incremental sync",
    )
    parser.add_argument(
        "--only-catalog", action="store_true", help="run only the whole-catalog syncs"
    )
    parser.add_argument(
        "--only-fast", action="store_true", help="run only the fast runs (both decimal formats)"
    )
    args = parser.parse_args()
    # As pip does when it installs the tap: each run then loads bytecode, and times the
    # tap, not the compiler (PYTHONDONTWRITEBYTECODE would have every run compile it).
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "tap_coupa", quiet=1)
    if args.only_catalog:
        catalog_runs(args.catalog_records, args.catalog_changes)
        return
    if args.only_fields:
        fields_runs(args.fields_records)
        return
    if args.only_listing:
        listing_run(args.listing_ids)
        return
    fast = ["--profile", "fast", "--no-rate-limit"]
    runs: list[tuple[str, int, list[str], Mapping[str, object]]] = [
        ("realistic, defaults", args.records, REALISTIC, {}),
        (
            "realistic, max_concurrency=1",
            args.sequential_records,
            REALISTIC,
            {"max_concurrency": 1},
        ),
    ]
    if args.only_fast:
        runs = []
    runs += [
        (f"fast, {n}, decimals {form}", n, fast, fast_settings(form))
        for n in args.fast_records
        for form in DECIMAL_FORMATS
    ]
    measured: dict[str, Measured] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, count, profile, settings in [run for run in runs if run[1] > 0]:
            print(f"{label}: {count} invoices ...", flush=True)
            measured[label] = measure(label, count, profile, settings, Path(tmp))
    report(measured)
    if args.only_fast:
        return
    fields_runs(args.fields_records)
    listing_run(args.listing_ids)
    catalog_runs(args.catalog_records, args.catalog_changes)


LISTING_STREAM = "uoms"
LISTING_LOG = re.compile(
    r"delete check listed (\d+) ids in (\d+) requests, (\d+) deleted.*? in ([\d.]+)s"
)


def listing_run(count: int) -> None:
    """The delete check's cost: list ``count`` ids, delete 1% at random, list again."""
    if count <= 0:
        return
    print(f"delete check: {count} ids, 1% deleted ...", flush=True)
    sandbox = SandboxProcess(
        "--profile",
        "fast",
        "--no-rate-limit",
        "--records",
        f"{LISTING_STREAM}={count}",
        "--cache-records",
        str(count),
    )
    # A bookmark in the future: the scan reads nothing, the listing reads every id.
    state: object = {
        "bookmarks": {
            LISTING_STREAM: {
                "replication_key": "updated-at",
                "replication_key_value": "2999-01-01T00:00:00+00:00",
            }
        }
    }
    rows: list[tuple[str, int, int, int, float, object]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            config = sandbox.tap_config(
                workdir, detect_deletes=[LISTING_STREAM], max_requests_per_second=10000
            )
            selected = discover(config)
            select_streams(selected, LISTING_STREAM.__eq__)
            (workdir / "catalog.json").write_text(json.dumps(selected))
            for label in ("first listing (baseline)", "after 1% deleted"):
                if rows:
                    mutation = {"stream": LISTING_STREAM, "delete": count // 100}
                    post_json(f"{sandbox.url}/_sandbox/mutate", mutation)
                (workdir / "state.json").write_text(json.dumps(state))
                files = ["--catalog", "catalog.json", "--state", "state.json"]
                done = subprocess.run(
                    [sys.executable, "-m", "tap_coupa", "--config", "config.json", *files],
                    cwd=workdir,
                    capture_output=True,
                    check=True,
                )
                states = [
                    json.loads(line)["value"]
                    for line in done.stdout.splitlines()
                    if line.startswith(b'{"type":"STATE"')
                ]
                state = states[-1]
                found = LISTING_LOG.search(done.stderr.decode())
                assert found, done.stderr.decode()[-2000:]
                ids, requests, deleted, seconds = found.groups()
                entry = states[-1]["bookmarks"][LISTING_STREAM]["deletes"]
                rows.append((label, int(ids), int(requests), int(deleted), float(seconds), entry))
    finally:
        sandbox.close()
    print(
        f"\n{'delete check':28} {'ids':>7} {'requests':>8} {'deleted':>7} {'s (fast)':>8} "
        f"{'s @25/s':>7} {'state B':>8}"
    )
    for label, ids, requests, deleted, seconds, entry in rows:
        print(
            f"{label:28} {ids:>7} {requests:>8} {deleted:>7} {seconds:>8.1f} "
            f"{requests / RATE_LIMIT:>7.1f} {len(json.dumps(entry)):>8}"
        )
    print(
        "s @25/s: the listing's requests at Coupa's 25 requests/s; state B: the stream's "
        "deletes entry in the state, as JSON."
    )


def fields_runs(count: int) -> None:
    """Half of the invoices' properties deselected: a projection vs pruning after transfer."""
    if count <= 0:
        return
    print(f"fields: {count} invoices, half their properties deselected ...", flush=True)
    sandbox = SandboxProcess(
        *REALISTIC, "--records", f"{STREAM}={count}", "--cache-records", str(count)
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = [
                run_tap(label, sandbox, Path(tmp), True, request_fields=on)
                for label, on in [("half deselected", False), ("half, request_fields", True)]
            ]
    finally:
        sandbox.close()
    print(f"\n{'run':28} {'records':>7} {'KB/page':>8} {'rec/s':>7} {'req/s':>6} {'CPU µs/r':>8}")
    for result in results:
        print(
            f"{result.label:28} {result.records:>7} "
            f"{result.body_bytes / 1024 / max(result.requests, 1):>8.1f} "
            f"{result.records / result.seconds:>7.0f} {result.requests / result.seconds:>6.1f} "
            f"{result.cpu_us_per_record():>8.0f}"
        )


#: The change an incremental filter on each replication key sees: an update moves
#: ``updated-at``, an insert is a new ``created-at``. Collections without a key (read
#: whole each time) are left as they are.
#: The incremental sync is repeated: its wall time, a few seconds, varies with the machine.
INCREMENTAL_REPEATS = 3
CHANGE_BY_KEY = {"updated-at": "update", "created-at": "insert"}


@dataclass
class CatalogRun:
    """One sync of the whole catalog, with the sandbox's account of its requests."""

    label: str
    collections: int
    #: RECORD messages: collections' and child streams'.
    records: int
    #: API requests the sandbox received (429s included; not the token request).
    sent: int
    #: For each collection, max(1, ceil(records the run's filter matches / PAGE)).
    needed: int
    throttled: int
    #: From the process's start to the sandbox receiving its first API request.
    startup: float
    #: From the first API request the sandbox received to the last.
    window: float
    #: From the process's start to its exit.
    wall: float
    peak_rss_mb: float
    #: Requests by kind, from the sandbox's request log (see :func:`request_kind`).
    kinds: dict[str, int]
    #: How many collections took each number of requests.
    per_collection: dict[int, int]
    #: The tap's stream scans, each as it logs it, summed.
    scans: float
    #: The state the sync ended with.
    state: dict[str, t.Any]

    def floor(self) -> float:
        """The least the window can be: the burst at once, the rest at the rate limit.

        Never less than one round trip, so that a sync needing no more than the burst
        is still compared with something it could reach.
        """
        return max((self.needed - BURST) / RATE_LIMIT, ROUND_TRIP)

    def row(self) -> str:
        floor = self.floor()
        return (
            f"{self.label:30} {self.collections:>5} {self.records:>7} {self.sent:>5} "
            f"{self.needed:>6} {self.sent / self.needed:>6.2f}x {self.throttled:>5} "
            f"{self.startup:>6.2f} {self.window:>6.2f} {floor:>6.2f} "
            f"{floor / self.window if self.window else 0:>7.0%} {self.wall:>6.2f} "
            f"{self.wall / floor:>6.2f}x {self.peak_rss_mb:>6.0f}"
        )

    def breakdown(self) -> str:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.kinds.items()))
        per = ", ".join(f"{n} ({c})" for n, c in sorted(self.per_collection.items()))
        return (
            f"{'':30} requests by kind: {kinds}; requests (collections): {per}; "
            f"stream scans summed: {self.scans:.1f} s"
        )


CATALOG_HEADER = (
    f"{'whole catalog, realistic':30} {'':>5} {'':>7} {'':>5} {'':>6} {'sent/':>7} "
    f"{'':>5} {'to 1st':>6} {'window':>6} {'floor':>6} {'floor/':>7} {'wall':>6} "
    f"{'wall/':>7} {'':>6}\n"
    f"{'run':30} {'colls':>5} {'records':>7} {'sent':>5} {'needed':>6} {'needed':>7} "
    f"{'429s':>5} {'req s':>6} {'s':>6} {'s':>6} {'window':>7} {'s':>6} {'floor':>7} "
    f"{'RSS MB':>6}"
)


def request_kind(entry: Mapping[str, t.Any]) -> str:
    """What a served request was, and whether it found nothing (0 records).

    A page by offset, a probe (``limit=1``), or a keyset query (``id[gt]``: a short
    page's confirmation or a gap's repair). 429s are not in the sandbox's log.
    """
    params = dict(entry["params"])
    if params.get("limit") == "1":
        kind = "probe"
    elif any(key.startswith("id[gt]") for key in params):
        kind = "id[gt]"
    else:
        kind = "page"
    if entry["records"] is None:
        return f"{kind} failed"
    return f"{kind} past the end" if entry["records"] == 0 else kind


def needed_requests(sandbox: SandboxProcess, collections: list[str], state: t.Any) -> int:
    """One request per PAGE records each collection's scan matches, at least one.

    The filter is the bookmark the state holds for the collection (none: every
    record); the sandbox counts what it matches.
    """
    bookmarks = state.get("bookmarks", {})
    total = 0
    for name in collections:
        bookmark = bookmarks.get(name, {})
        query = ""
        if "replication_key_value" in bookmark:
            key = bookmark["replication_key"].replace("-", "_")
            query = urllib.parse.urlencode({f"{key}[gt_or_eq]": bookmark["replication_key_value"]})
        matching = get_json(f"{sandbox.url}/_sandbox/matching/{name}?{query}")["records"]
        total += max(1, -(-matching // PAGE))
    return total


def catalog_sync(
    label: str,
    sandbox: SandboxProcess,
    workdir: Path,
    collections: list[str],
    state: dict[str, t.Any],
) -> CatalogRun:
    """Sync the catalog in ``workdir`` from ``state``; stdout goes to a file, read after."""
    needed = needed_requests(sandbox, collections, state)
    (workdir / "state.json").write_text(json.dumps(state))
    output_path, log_path = workdir / "output.jsonl", workdir / f"{label}.log"
    post_json(f"{sandbox.url}/_sandbox/reset-stats", {})
    files = ["--config", "config.json", "--catalog", "catalog.json", "--state", "state.json"]
    started = time.monotonic()
    with output_path.open("wb") as output, log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tap_coupa", *files], cwd=workdir, stdout=output, stderr=log
        )
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"{label}: tap failed, see {log_path}")
    stats = sandbox.stats()
    entries = get_json(f"{sandbox.url}/_sandbox/requests")
    data = output_path.read_bytes()
    final = data[data.rfind(b'{"type":"STATE"') :].split(b"\n", 1)[0]
    per_stream = Counter(entry["stream"] for entry in entries)
    return CatalogRun(
        label=label,
        collections=len(collections),
        records=data.count(b'{"type":"RECORD"'),
        sent=stats["api_requests"],
        needed=needed,
        throttled=stats["throttled"],
        # Both clocks are CLOCK_MONOTONIC: one clock for every process on the machine.
        startup=stats["api_first"] - started,
        window=stats["api_last"] - stats["api_first"],
        wall=wall,
        peak_rss_mb=usage.ru_maxrss / 1024,
        kinds=dict(Counter(request_kind(entry) for entry in entries)),
        per_collection=dict(Counter(per_stream.values())),
        scans=sum(float(m["seconds"]) for m in SCAN_LOG.finditer(log_path.read_text())),
        state=json.loads(final)["value"],
    )


def catalog_runs(count: int, changes: int) -> None:
    """Every stream selected: a full sync, then an incremental one from its state.

    The sandbox holds ``count`` records in every collection, custom objects included
    (the tap is configured with the ones the sandbox serves); child streams come with
    their parents' records, at no request. Between the runs each collection gets
    ``changes`` changes its bookmark filter sees (:data:`CHANGE_BY_KEY`), about one page.

    The figures (the targets are issue 13's):

    * sent: ``/api/`` requests the sandbox received, counted on arrival (429s
      included, the token request not). Needed: for each collection, one request per
      PAGE records its scan's filter matches, at least one; the sandbox counts the
      matches (``/_sandbox/matching``) under the bookmark the run starts from. Target:
      sent ≤ 1.1x needed.
    * window: from the first API request's arrival at the sandbox to the last's. Floor:
      the least it can be, ``(needed - BURST) / RATE_LIMIT``: the burst's requests go at
      once, the rest at the rate limit (and never less than one round trip, the
      profile's latency). Target for the full sync: floor ≥ 90% of the window.
    * wall: the sync process from start to exit, start-up included; "to 1st req", its
      part before the first API request. Target for the incremental sync: wall ≤ 1.5x
      the floor; what the floor leaves out (start-up, the last response's round trip)
      must fit in that half.
    """
    if count <= 0:
        return
    print(f"whole catalog: {count} records in each collection ...", flush=True)
    sandbox = SandboxProcess(*REALISTIC, "--records", f"*={count}", "--cache-records", str(count))
    runs: list[CatalogRun] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            served = get_json(f"{sandbox.url}/_sandbox/streams")
            objects = [
                {
                    "name": s["name"].removeprefix("custom_object_"),
                    "object_id": s["path"].split("/")[1],
                }
                for s in served
                if s["name"].startswith("custom_object_")
            ]
            catalog = discover(sandbox.tap_config(workdir, custom_objects=objects))
            select_streams(catalog, lambda _: True)
            (workdir / "catalog.json").write_text(json.dumps(catalog))
            names = {entry["tap_stream_id"] for entry in catalog["streams"]}
            collections = [s["name"] for s in served if s["name"] in names]
            runs.append(catalog_sync(f"full sync, {count} each", sandbox, workdir, collections, {}))
            for stream in served:
                change = CHANGE_BY_KEY.get(stream["replication_key"])
                if stream["name"] in names and change:
                    post_json(
                        f"{sandbox.url}/_sandbox/mutate",
                        {"stream": stream["name"], change: changes},
                    )
            # Each incremental run starts from the full sync's state: the same work.
            for repeat in range(1, INCREMENTAL_REPEATS + 1):
                label = f"incremental, {changes} changed, {repeat}"
                runs.append(catalog_sync(label, sandbox, workdir, collections, runs[0].state))
    finally:
        sandbox.close()
    print(f"\n{CATALOG_HEADER}")
    for run in runs:
        print(run.row())
        print(run.breakdown())
    ratios = sorted(run.wall / run.floor() for run in runs[1:])
    if ratios:
        print(
            f"incremental wall/floor over {len(ratios)} runs: median "
            f"{statistics.median(ratios):.2f}x, {ratios[0]:.2f}-{ratios[-1]:.2f}x"
        )
    print(
        f"sent: /api/ requests the sandbox received (429s included, not the token's); "
        f"needed: per collection max(1, ceil(matching records / {PAGE})); window: first to "
        f"last API request received; floor: max((needed - {BURST}) / {RATE_LIMIT} req/s, "
        f"{ROUND_TRIP:.1f} s); wall: process start to exit; to 1st req: start to the first "
        "API request. Targets: floor/window ≥ 90% (full), sent/needed ≤ 1.1x, 0 429s, "
        "wall/floor ≤ 1.5x (incremental). Requests by kind: the sandbox's log; past the "
        "end: 0 records."
    )


if __name__ == "__main__":
    main()

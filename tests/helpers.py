"""What tests share beyond fixtures: running the tap and reading its Singer output."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import typing as t
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from coupa_sandbox import Sandbox
from tests import forkserver

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"

#: A small schema with decimals at every level a plan reaches.
SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": ["integer", "null"]},
        "total": {"type": ["number", "null"]},
        "name": {"type": ["string", "null"]},
        "currency": {
            "type": ["object", "null"],
            "properties": {"rate": {"type": ["number", "null"]}},
        },
        "lines": {
            "type": ["array", "null"],
            "items": {
                "type": ["object", "null"],
                "properties": {"price": {"type": ["number", "null"]}},
            },
        },
        "open": {"type": ["object", "null"]},
    },
}


def tap_config(sb: Sandbox, **overrides: t.Any) -> dict[str, t.Any]:
    return {
        "base_url": sb.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **overrides,
    }


def sandbox_custom_objects(sb: Sandbox) -> list[dict[str, str]]:
    """The ``custom_objects`` setting naming every custom object the sandbox serves."""
    served = sb.state.config.custom_objects
    return [{"name": name, "object_id": object_id} for object_id, name in served.items()]


@dataclass
class Output:
    """What one tap run printed, parsed."""

    records: dict[str, list[dict[str, t.Any]]] = field(default_factory=lambda: defaultdict(list))
    schemas: dict[str, dict[str, t.Any]] = field(default_factory=dict)
    states: list[dict[str, t.Any]] = field(default_factory=list)
    stderr: str = ""
    stdout: str = ""
    returncode: int = 0

    @property
    def state(self) -> dict[str, t.Any]:
        return self.states[-1] if self.states else {}

    def ids(self, stream: str) -> set[int]:
        return {r["id"] for r in self.records.get(stream, [])}


def parse_output(stdout: str, stderr: str = "", returncode: int = 0) -> Output:
    out = Output(stderr=stderr, stdout=stdout, returncode=returncode)
    for line in stdout.splitlines():
        if not line.strip():
            continue
        message = json.loads(line, parse_float=Decimal)  # as a target reads decimals
        kind = message["type"]
        if kind == "RECORD":
            out.records[message["stream"]].append(message["record"])
        elif kind == "SCHEMA":
            out.schemas[message["stream"]] = message
        elif kind == "STATE":
            out.states.append(message["value"])
    return out


#: Settings that only decide how the tap talks to the instance, not what --discover says.
CONNECTION_SETTINGS = frozenset(
    {
        "base_url", "client_id", "client_secret", "api_key", "token_url", "scopes",
        "user_agent", "allow_http", "request_timeout", "max_retries", "page_size",
        "max_requests_per_second", "rate_limit_burst", "max_concurrency", "start_date",
        "prefetch_memory_mb",
    }
)  # fmt: skip


def discovered(config_text: str) -> Discovery:
    """``tap-coupa --discover``'s catalog for a config.

    An offline discovery depends only on the settings that shape schemas, so it runs
    once per distinct answer in a session (its output shared on disk by the xdist
    workers, see ``DISCOVERIES``) and is parsed once per worker; a live one (custom
    fields, custom objects) runs each time.
    """
    config = json.loads(config_text)
    if config.get("discover_custom_fields") or config.get("custom_objects"):
        return Discovery(json.loads(_discover(config_text)))
    shaping = json.dumps(
        {k: v for k, v in config.items() if k not in CONNECTION_SETTINGS}, sort_keys=True
    )
    if shaping not in _OFFLINE:
        _OFFLINE[shaping] = Discovery(json.loads(_shared_discovery(shaping, config_text)))
    return _OFFLINE[shaping]


@dataclass
class Discovery:
    """A discovered catalog (shared: never modify it) with each entry's JSON text, as
    selected or not, once made: the catalogs written from it repeat the same entries."""

    catalog: dict[str, t.Any]
    _texts: dict[tuple[int, bool], str] = field(default_factory=dict)

    def selecting(
        self, streams: t.Collection[str], deselect: t.Mapping[str, t.Collection[str]]
    ) -> str:
        """The catalog's JSON with only ``streams`` selected, less ``deselect``'s
        top-level properties (by stream)."""
        parts = []
        for index, entry in enumerate(self.catalog["streams"]):
            selected = entry["tap_stream_id"] in streams
            dropped = deselect.get(entry["tap_stream_id"], ())
            if dropped:
                parts.append(json.dumps(_selecting(entry, selected, dropped)))
                continue
            if (index, selected) not in self._texts:
                self._texts[index, selected] = json.dumps(_selecting(entry, selected, ()))
            parts.append(self._texts[index, selected])
        assert self.catalog.keys() == {"streams"}, self.catalog.keys()
        return '{"streams": [' + ", ".join(parts) + "]}"


def _selecting(
    entry: dict[str, t.Any], selected: bool, dropped: t.Collection[str]
) -> dict[str, t.Any]:
    """A copy of a catalog entry with ``selected`` set: at the root, and False for the
    ``dropped`` properties."""
    metadata = []
    for meta in entry["metadata"]:
        if meta["breadcrumb"] == []:
            value = selected
        elif meta["breadcrumb"][-1] in dropped:
            value = False
        else:
            metadata.append(meta)
            continue
        metadata.append({**meta, "metadata": {**meta["metadata"], "selected": value}})
    return {**entry, "metadata": metadata}


_OFFLINE: dict[str, Discovery] = {}
#: Where offline discoveries are kept for every worker of the session (set by conftest).
DISCOVERIES: Path | None = None


def _shared_discovery(shaping: str, config_text: str) -> str:
    if DISCOVERIES is None:
        return _discover(config_text)
    path = DISCOVERIES / f"{hashlib.sha256(shaping.encode()).hexdigest()}.json"
    if not path.exists():
        text = _discover(config_text)
        json.loads(text)  # only a whole catalog is kept
        DISCOVERIES.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}")
        partial.write_text(text)
        partial.replace(path)  # atomic: a worker reads a whole file or none
    return path.read_text()


def _discover(config_text: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(config_text)
        return run_tap(["--config", str(path), "--discover"], check=True).stdout


def run_tap(
    args: t.Sequence[str],
    *,
    check: bool = False,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m tap_coupa ARGS`` as ``subprocess.run`` with ``capture_output`` and
    ``text`` would run it (a forked process, see tests/forkserver.py)."""
    command = [*forkserver.TAP, *args]
    with forkserver.popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException:
            process.kill()
            raise
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if check:
        done.check_returncode()
    return done


def catalog_for(
    tmp_path: Path,
    config_path: Path,
    streams: t.Collection[str],
    deselect: t.Mapping[str, t.Collection[str]] | None = None,
) -> Path:
    """A catalog from --discover with only ``streams`` selected, less ``deselect``'s
    top-level properties (by stream)."""
    path = tmp_path / "catalog.json"
    path.write_text(discovered(config_path.read_text()).selecting(streams, deselect or {}))
    return path


def add_root_metadata(path: Path, metadata: dict[str, dict[str, t.Any]]) -> None:
    """Add stream-level metadata to a catalog file, as Meltano's ``metadata:`` extra does."""
    catalog = json.loads(path.read_text())
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"].update(metadata.get(entry["tap_stream_id"], {}))
    path.write_text(json.dumps(catalog))


class TapRunner:
    """Runs ``tap-coupa`` as a process of its own (forked: tests/forkserver.py), as
    Meltano would."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self._catalogs: dict[str, Path] = {}
        #: Stream-level catalog metadata to add, e.g. {"suppliers": {"replication-method": ...}}.
        self.root_metadata: dict[str, dict[str, t.Any]] = {}

    def files(
        self,
        config: dict[str, t.Any],
        streams: t.Collection[str],
        state: dict[str, t.Any] | None,
        deselect: t.Mapping[str, t.Collection[str]] | None = None,
    ) -> list[str]:
        config_path = self.tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        key = json.dumps([sorted(streams), {k: sorted(v) for k, v in (deselect or {}).items()}])
        if key not in self._catalogs:
            self._catalogs[key] = catalog_for(self.tmp_path, config_path, streams, deselect)
            if self.root_metadata:
                add_root_metadata(self._catalogs[key], self.root_metadata)
        args = ["--config", str(config_path), "--catalog", str(self._catalogs[key])]
        if state is not None:
            state_path = self.tmp_path / "state.json"
            state_path.write_text(json.dumps(state))
            args += ["--state", str(state_path)]
        return args

    def run(
        self,
        config: dict[str, t.Any],
        streams: t.Collection[str],
        state: dict[str, t.Any] | None = None,
        *,
        check: bool = True,
        env: dict[str, str] | None = None,
        deselect: t.Mapping[str, t.Collection[str]] | None = None,
    ) -> Output:
        done = run_tap(
            self.files(config, streams, state, deselect), env={**os.environ, **(env or {})}
        )
        out = parse_output(done.stdout, done.stderr, done.returncode)
        if check and done.returncode != 0:
            pytest.fail(f"tap-coupa exited {done.returncode}:\n{done.stderr[-4000:]}")
        return out

    def run_and_kill(
        self,
        config: dict[str, t.Any],
        streams: t.Collection[str],
        state: dict[str, t.Any] | None,
        *,
        sig: int = signal.SIGKILL,
        after_s: float | None = None,
        when: t.Callable[[dict[str, t.Any]], bool] | None = None,
        delay_s: float = 0.0,
    ) -> Output:
        """Start a sync and kill it; return what it printed (stdout and stderr).

        The kill comes ``after_s`` seconds in, or ``delay_s`` seconds after the first
        Singer message for which ``when`` is true (e.g. a checkpoint), whichever is
        first. A sync that ends before either is returned as it ended.
        """
        err_path = self.tmp_path / "killed.err"
        lines: list[bytes] = []
        timers: list[threading.Timer] = []
        with err_path.open("wb") as stderr:
            process = forkserver.popen(
                [*forkserver.TAP, *self.files(config, streams, state)],
                stdout=subprocess.PIPE,
                stderr=stderr,
            )

            def kill_in(seconds: float) -> None:
                timers.append(threading.Timer(seconds, process.send_signal, (sig,)))
                timers[-1].start()

            try:
                if after_s is not None:
                    kill_in(after_s)
                assert process.stdout is not None
                for line in process.stdout:
                    lines.append(line)
                    if when is not None and line.endswith(b"\n") and when(json.loads(line)):
                        when = None
                        kill_in(delay_s)
                returncode = process.wait(timeout=60)
            finally:
                for timer in timers:
                    timer.cancel()
                if process.poll() is None:
                    process.kill()
                    process.wait()
        # A kill can cut the last line short; a target would drop it too.
        if lines and not lines[-1].endswith(b"\n"):
            lines.pop()
        return parse_output(b"".join(lines).decode(), err_path.read_text(), returncode)

    def pipe(self, config: dict[str, t.Any], streams: t.Collection[str], target: list[str]) -> None:
        """Pipe a sync into a Singer target command, as ``meltano run`` would."""
        with forkserver.popen(
            [*forkserver.TAP, *self.files(config, streams, None)],
            stdout=subprocess.PIPE,
        ) as tap_process:
            loaded = subprocess.run(
                target, stdin=tap_process.stdout, capture_output=True, check=False
            )
        assert loaded.returncode == 0, loaded.stderr.decode()[-3000:]
        assert tap_process.returncode == 0


def same(emitted: t.Any, served: t.Any) -> bool:
    """Equal as a target sees them: Coupa's decimal strings arrive as exact numbers."""
    if isinstance(emitted, (Decimal, int)) and isinstance(served, str):
        return not isinstance(emitted, bool) and Decimal(served) == Decimal(emitted)
    if isinstance(emitted, dict) and isinstance(served, dict):
        return emitted.keys() == served.keys() and all(same(emitted[k], served[k]) for k in served)
    if isinstance(emitted, list) and isinstance(served, list):
        return len(emitted) == len(served) and all(map(same, emitted, served))
    return bool(emitted == served)


def installed(command: str) -> str:
    """A console script of the test environment (the dev extra installs the targets)."""
    found = shutil.which(command, path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail(f"{command} is not installed in the test environment (pip install -e .[dev])")
    return found

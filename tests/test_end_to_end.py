"""The tap piped into a real Singer target (target-duckdb), and Meltano running both."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from coupa_sandbox import Sandbox
from tap_coupa.tap import TapCoupa
from tests.helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    TapRunner,
    installed,
    sandbox_custom_objects,
    tap_config,
)

pytestmark = pytest.mark.external

ROOT = Path(__file__).resolve().parent.parent
STREAMS = ["invoices", "invoice_lines", "suppliers", "currencies"]


def load(tap: TapRunner, tmp_path: Path, config: dict[str, object], streams: list[str]) -> Path:
    database = tmp_path / "warehouse.duckdb"
    target_config = tmp_path / "target.json"
    target_config.write_text(
        json.dumps({"filepath": str(database), "default_target_schema": "coupa"})
    )
    tap.pipe(config, streams, [installed("target-duckdb"), "--config", str(target_config)])
    return database


def test_loaded_rows_equal_the_sandbox(sandbox: Sandbox, tap: TapRunner, tmp_path: Path) -> None:
    database = load(tap, tmp_path, tap_config(sandbox), STREAMS)
    with duckdb.connect(str(database), read_only=True) as db:
        for stream in ["invoices", "suppliers", "currencies"]:
            expected = {r["id"] for r in sandbox.records(stream)}
            rows = {row[0] for row in db.execute(f"select id from coupa.{stream}").fetchall()}
            assert rows == expected, stream
        lines = [line for r in sandbox.records("invoices") for line in r.get("invoice-lines") or []]
        loaded_lines = db.execute("select count(*) from coupa.invoice_lines").fetchone()
        assert loaded_lines is not None
        assert loaded_lines[0] == len(lines)
        invoice = next(r for r in sandbox.records("invoices") if r.get("invoice-number"))
        row = db.execute(
            'select "invoice-number", "updated-at" from coupa.invoices where id = ?',
            [invoice["id"]],
        ).fetchone()
        assert row is not None
        assert row[0] == invoice["invoice-number"]


def test_every_stream_loads_with_matching_row_counts(
    sandbox: Sandbox, tap: TapRunner, tmp_path: Path
) -> None:
    expected = sandbox.counts()
    settings = tap_config(sandbox, custom_objects=sandbox_custom_objects(sandbox))
    database = load(tap, tmp_path, settings, sorted(expected))
    with duckdb.connect(str(database), read_only=True) as db:
        tables = {
            name
            for (name,) in db.execute("select table_name from information_schema.tables").fetchall()
        }
        for stream, count in expected.items():
            loaded = (
                db.execute(f"select count(*) from coupa.{stream}").fetchone()
                if stream in tables
                else (0,)
            )
            assert loaded is not None
            assert loaded[0] == count, stream
        # target-duckdb stores JSON numbers as DOUBLE: equal to the nearest double.
        # Exact digits in a SQL target are checked with PostgreSQL (test_sql_target).
        totals = dict(db.execute('select id, "gross-total" from coupa.invoices').fetchall())
    sample = [r for r in sandbox.records("invoices") if r.get("gross-total")]
    assert sample
    for record in sample:
        assert totals[record["id"]] == float(record["gross-total"])


def meltano() -> str:
    """Meltano from MELTANO_BIN (`make pytest` sets it) or PATH; missing, the test fails."""
    found = os.environ.get("MELTANO_BIN") or shutil.which("meltano")
    if not found:
        pytest.fail("Meltano is not installed: run `make pytest`, or set MELTANO_BIN")
    return found


def test_meltano_gives_number_settings_and_scopes_as_the_tap_reads_them(tmp_path: Path) -> None:
    """Set with ``meltano config set``, in .env or the environment, they reach the tap.

    meltano.yml declares them strings: Meltano's array kind rejects a scopes string, and
    its decimal kind makes a Decimal it cannot write as JSON (Meltano 4.4).
    """
    shutil.copy(ROOT / "meltano.yml", tmp_path / "meltano.yml")
    env = {
        **os.environ,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TAP_COUPA_MAX_REQUESTS_PER_SECOND": "7.5",
    }

    def config(*args: str) -> str:
        done = subprocess.run(
            [meltano(), "config", *args], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    config("set", "tap-coupa", "scopes", "core.common.read core.user.read")
    config("set", "--store", "dotenv", "tap-coupa", "request_timeout", "30.5")
    given = json.loads(config("print", "tap-coupa"))
    settings = TapCoupa(config={**given, "base_url": "https://acme.coupahost.com"}).settings
    assert settings.scopes == ("core.common.read", "core.user.read")
    assert (settings.request_timeout, settings.max_requests_per_second) == (30.5, 7.5)


def test_readme_meltano_config_commands_run(tmp_path: Path) -> None:
    """The README's Install section's ``meltano config`` lines work with the pinned Meltano.

    Meltano 4 takes the subcommand first (``meltano config set tap-coupa ...``); the
    README had the older order, which fails with "No such command 'tap-coupa'".
    """
    shutil.copy(ROOT / "meltano.yml", tmp_path / "meltano.yml")
    install = (ROOT / "README.md").read_text().split("## Install", 1)[1].split("\n## ", 1)[0]
    lines = [line.split() for line in install.splitlines() if line.startswith("meltano config")]
    assert lines, "the README's Install section shows how to configure the tap in Meltano"
    env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"}
    for words in lines:
        args = ["x" if word == "..." else word for word in words[1:]]
        done = subprocess.run(
            [meltano(), *args], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{' '.join(words)}: {done.stderr[-500:]}"


def test_meltano_run_twice_is_incremental(fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    """Each run takes the one token the command asked for from Meltano's files.

    Meltano passes ``--config``, ``--catalog`` (and ``--state``) files it generates: the
    token is asked for before the SDK is imported, once, and logged once.
    """
    project = tmp_path / "project"
    (project / "output").mkdir(parents=True)
    for name in ["meltano.yml", "pyproject.toml", "README.md"]:
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "tap_coupa", project / "tap_coupa")
    shutil.copytree(ROOT / "coupa_sandbox", project / "coupa_sandbox")
    env = {
        **os.environ,
        "TAP_COUPA_BASE_URL": fresh_sandbox.url,
        "TAP_COUPA_CLIENT_ID": CLIENT_ID,
        "TAP_COUPA_CLIENT_SECRET": CLIENT_SECRET,
        "TAP_COUPA__SELECT": json.dumps(["suppliers.*", "users.*"]),
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    run = [meltano(), "run", "tap-coupa", "target-duckdb"]
    subprocess.run([meltano(), "install"], cwd=project, env=env, check=True, capture_output=True)
    tokens = fresh_sandbox.state.stats.snapshot()["by_class"].get("token", 0)
    first = subprocess.run(run, cwd=project, env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr[-3000:]
    tokens = taken_once(fresh_sandbox, first.stderr, tokens)
    state = json.loads(
        subprocess.run(
            [meltano(), "state", "get", "dev:tap-coupa-to-target-duckdb"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    bookmark = state["singer_state"]["bookmarks"]["suppliers"]
    assert bookmark["replication_key"] == "updated-at"
    assert "progress" not in bookmark

    fresh_sandbox.mutate("suppliers", update=2, insert=1)
    second = subprocess.run(run, cwd=project, env=env, capture_output=True, text=True, check=False)
    assert second.returncode == 0, second.stderr[-3000:]
    taken_once(fresh_sandbox, second.stderr, tokens)
    assert "Resuming" not in second.stderr
    total = len(fresh_sandbox.records("suppliers"))
    counts = {s: int(n) for s, n in re.findall(r"Stream '(\w+)': (\d+) records", second.stderr)}
    assert 3 <= counts["suppliers"] < total, "the second run extracts only what changed"
    with duckdb.connect(str(project / "output" / "warehouse.duckdb"), read_only=True) as db:
        loaded = db.execute("select count(*) from coupa.suppliers").fetchone()
    assert loaded is not None
    assert loaded[0] == total


def taken_once(sandbox: Sandbox, log: str, before: int) -> int:
    """Check a run asked for one token, the one asked ahead; return the tokens asked so far."""
    tokens = int(sandbox.state.stats.snapshot()["by_class"].get("token", 0))
    assert tokens == before + 1, "one token request a run"
    assert log.count("Obtained a Coupa access token") == 1
    assert "(expires in 86399s; asked for while the tap started)" in log, "not asked ahead"
    assert CLIENT_SECRET not in log
    assert "HTTP Request:" not in log, "httpx logs each request at INFO"
    return tokens

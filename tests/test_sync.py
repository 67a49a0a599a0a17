"""End-to-end syncs against the sandbox: completeness, exact values, incremental state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import typing as t
from decimal import Decimal
from pathlib import Path

import pendulum
import pytest

from coupa_sandbox import Sandbox
from tap_coupa import tap as tap_module
from tap_coupa.streams import load_schema
from tap_coupa.tap import TapCoupa
from tests import forkserver
from tests.helpers import TapRunner, catalog_for, tap_config

pytestmark = pytest.mark.sandbox


def instant(value: str) -> pendulum.DateTime:
    parsed = pendulum.parse(value)
    assert isinstance(parsed, pendulum.DateTime)
    return parsed


def test_full_sync_delivers_every_record_with_exact_values(
    sandbox: Sandbox, tap: TapRunner
) -> None:
    out = tap.run(tap_config(sandbox, page_size=7), ["invoices", "invoice_lines"])
    expected = {r["id"]: r for r in sandbox.records("invoices")}
    got = {r["id"]: r for r in out.records["invoices"]}
    assert got.keys() == expected.keys()
    assert len(out.records["invoices"]) == len(expected), "no duplicates without changes"
    sample = next(r for r in expected.values() if r.get("gross-total"))
    emitted = got[sample["id"]]
    # Decimal strings arrive as JSON numbers with every digit kept.
    assert Decimal(str(emitted["gross-total"])) == Decimal(sample["gross-total"])
    assert emitted["updated-at"] == sample["updated-at"], "datetimes keep their offset"
    assert emitted["custom-fields"] == sample["custom-fields"]
    lines = [line for r in expected.values() for line in r.get("invoice-lines") or []]
    assert {line["id"] for line in out.records["invoice_lines"]} == {line["id"] for line in lines}
    parents = {line["invoice-id"] for line in out.records["invoice_lines"]}
    assert parents <= expected.keys()


def test_bookmark_is_an_instant_and_resyncs_only_changes(
    fresh_sandbox: Sandbox, tap: TapRunner
) -> None:
    config = tap_config(fresh_sandbox)
    first = tap.run(config, ["suppliers"])
    bookmark = first.state["bookmarks"]["suppliers"]
    assert bookmark["replication_key"] == "updated-at"
    latest = max(instant(r["updated-at"]) for r in fresh_sandbox.records("suppliers"))
    assert instant(bookmark["replication_key_value"]) == latest
    assert "progress" not in bookmark

    second = tap.run(config, ["suppliers"], first.state)
    # Only records sharing the bookmark's second are delivered again.
    assert all(instant(r["updated-at"]) == latest for r in second.records["suppliers"])

    fresh_sandbox.mutate("suppliers", update=3, insert=2)
    third = tap.run(config, ["suppliers"], second.state)
    changed = {
        r["id"] for r in fresh_sandbox.records("suppliers") if instant(r["updated-at"]) > latest
    }
    assert len(changed) == 5
    assert changed <= third.ids("suppliers")
    assert len(third.records["suppliers"]) <= len(changed) + len(second.records["suppliers"])


def test_ties_at_the_bookmark_are_never_lost(fresh_sandbox: Sandbox, tap: TapRunner) -> None:
    records = fresh_sandbox.records("invoices")
    by_second: dict[str, list[int]] = {}
    for record in records:
        by_second.setdefault(record["updated-at"], []).append(record["id"])
    tie_value, tie_ids = max(by_second.items(), key=lambda item: len(item[1]))
    assert len(tie_ids) > 5, "the sandbox makes many records share one updated-at second"
    state = {
        "bookmarks": {
            "invoices": {"replication_key": "updated-at", "replication_key_value": tie_value}
        }
    }
    out = tap.run(tap_config(fresh_sandbox, page_size=3), ["invoices"], state)
    assert set(tie_ids) <= out.ids("invoices")
    expected = {r["id"] for r in records if instant(r["updated-at"]) >= instant(tie_value)}
    assert out.ids("invoices") == expected


def test_start_date_is_honoured_across_offsets(sandbox: Sandbox, tap: TapRunner) -> None:
    records = sandbox.records("purchase_orders")
    instants = sorted(instant(r["updated-at"]) for r in records)
    start = instants[len(instants) // 2]
    config = tap_config(sandbox, start_date=start.in_timezone("Asia/Tokyo").isoformat())
    out = tap.run(config, ["purchase_orders"])
    expected = {r["id"] for r in records if instant(r["updated-at"]) >= start}
    assert out.ids("purchase_orders") == expected


def test_state_bookmark_wins_over_older_start_date(sandbox: Sandbox, tap: TapRunner) -> None:
    records = sandbox.records("users")
    instants = sorted(instant(r["updated-at"]) for r in records)
    bookmark = instants[-3]
    state = {
        "bookmarks": {
            "users": {
                "replication_key": "updated-at",
                "replication_key_value": bookmark.isoformat(),
            }
        }
    }
    out = tap.run(tap_config(sandbox, start_date="2000-01-01T00:00:00Z"), ["users"], state)
    assert out.ids("users") == {r["id"] for r in records if instant(r["updated-at"]) >= bookmark}


def test_a_sync_loads_only_the_schemas_of_the_streams_it_syncs(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[str] = []

    def recording(name: str, **options: bool) -> dict[str, t.Any]:
        loaded.append(name)
        return load_schema(name, **options)

    monkeypatch.setattr(tap_module, "load_schema", recording)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(tap_config(sandbox)))
    catalog = json.loads(catalog_for(tmp_path, config_path, ["invoice_lines"]).read_text())
    TapCoupa(config=tap_config(sandbox), catalog=catalog).sync_all()
    assert sorted(loaded) == ["invoice_lines", "invoices"]  # the child's rows come from invoices


def test_full_table_stream_without_replication_key(sandbox: Sandbox, tap: TapRunner) -> None:
    out = tap.run(tap_config(sandbox), ["currencies"])
    assert out.ids("currencies") == {r["id"] for r in sandbox.records("currencies")}
    assert "replication_key_value" not in out.state["bookmarks"].get("currencies", {})


@pytest.mark.parametrize("key", ["forced-replication-method", "replication-method"])
def test_full_table_forced_by_the_catalog_ignores_and_drops_the_bookmark(
    sandbox: Sandbox, tap: TapRunner, key: str
) -> None:
    """The SDK's spelling and Meltano's ``metadata:`` spelling both force a full sync."""
    future = {"replication_key": "updated-at", "replication_key_value": "2999-01-01T00:00:00Z"}
    state = {"bookmarks": {"suppliers": future, "users": future}}
    tap.root_metadata = {"suppliers": {key: "FULL_TABLE"}}
    out = tap.run(tap_config(sandbox), ["suppliers", "users"], state)
    assert out.ids("suppliers") == {r["id"] for r in sandbox.records("suppliers")}
    assert len(out.ids("suppliers")) >= 30
    assert "replication_key_value" not in out.state["bookmarks"]["suppliers"], "no bookmark kept"
    # The stream next to it stays incremental: its future bookmark still holds.
    assert not out.records["users"]
    assert out.state["bookmarks"]["users"]["replication_key_value"] == "2999-01-01T00:00:00Z"


def test_activate_version_covers_a_full_table_stream_and_its_child_streams(
    sandbox: Sandbox, tap: TapRunner
) -> None:
    """Each stream of a FULL_TABLE family announces one version before its records,
    which carry it: a target replaces the lines' table with the documents'."""
    tap.root_metadata = {"invoices": {"forced-replication-method": "FULL_TABLE"}}
    family = ["invoices", "invoice_lines", "invoice_line_account_allocations"]
    config = tap_config(sandbox, emit_activate_version_messages=True)
    out = tap.run(config, [*family, "users"])
    messages = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    activations = [(m["stream"], m["version"]) for m in messages if m["type"] == "ACTIVATE_VERSION"]
    versions = dict(activations)
    assert sorted(versions) == sorted(family), "users stays incremental"
    assert len(activations) == len(family), "once per stream"
    records = [m for m in messages if m["type"] == "RECORD" and m["stream"] in family]
    assert {m["stream"] for m in records} == set(family)
    assert all(m["version"] == versions[m["stream"]] for m in records)
    for stream in family:
        kinds = [m["type"] for m in messages if m.get("stream") == stream]
        assert kinds[:3] == ["SCHEMA", "ACTIVATE_VERSION", "RECORD"], stream


def test_a_forced_method_the_tap_does_not_know_is_one_clear_error(
    sandbox: Sandbox, tap: TapRunner
) -> None:
    tap.root_metadata = {"suppliers": {"replication-method": "LOG_BASED"}}
    out = tap.run(tap_config(sandbox), ["suppliers"], check=False)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "LOG_BASED" in errors[0]
    assert "FULL_TABLE" in errors[0]


@pytest.mark.parametrize("where", ["global", "stream"])
def test_lookback_rereads_records_updated_before_the_bookmark(
    sandbox: Sandbox, tap: TapRunner, where: str
) -> None:
    records = sandbox.records("invoices")
    instants = sorted(instant(r["updated-at"]) for r in records)
    bookmark = instants[len(instants) * 3 // 4]
    lookback = pendulum.duration(days=30)
    state = {
        "bookmarks": {
            "invoices": {"replication_key": "updated-at", "replication_key_value": str(bookmark)}
        }
    }
    setting = (
        {"lookback_window": "P30D"}
        if where == "global"
        else {"stream_options": {"invoices": {"lookback_window": "P30D"}}}
    )
    out = tap.run(tap_config(sandbox, **setting), ["invoices"], state)
    expected = {r["id"] for r in records if instant(r["updated-at"]) >= bookmark - lookback}
    late = {r["id"] for r in records if bookmark - lookback <= instant(r["updated-at"]) < bookmark}
    assert late, "some records lie inside the window, before the bookmark"
    assert out.ids("invoices") == expected
    # The bookmark rules are unchanged: it still ends at the latest record read.
    assert instant(out.state["bookmarks"]["invoices"]["replication_key_value"]) == instants[-1]


def test_sigterm_writes_the_state_and_exits_non_zero(
    fresh_sandbox: Sandbox, tap: TapRunner
) -> None:
    """An orchestrator stopping a sync must not see success; the state is still written."""
    fresh_sandbox.set_latency(200)
    out = tap.run_and_kill(
        tap_config(fresh_sandbox, page_size=5, max_concurrency=1),
        ["invoices"],
        None,
        sig=signal.SIGTERM,
        when=lambda message: message["type"] == "RECORD",
    )
    assert out.records["invoices"], "the sync was under way"
    assert out.returncode == 128 + signal.SIGTERM
    last = out.stdout.strip().splitlines()[-1]
    assert json.loads(last)["type"] == "STATE"


def test_every_connection_is_closed_no_resource_warning(sandbox: Sandbox, tap: TapRunner) -> None:
    """Meltano runs taps with PYTHONWARNINGS=once: an unclosed socket prints a warning.

    An exec'd process: a forked one keeps the warning filters its server started with.
    """
    args = tap.files(tap_config(sandbox, max_concurrency=8), ["invoices", "users"], None)
    done = subprocess.run(
        [*forkserver.TAP, *args],
        env={**os.environ, "PYTHONWARNINGS": "once"},
        cwd=forkserver.ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"stream":"users"' in done.stdout
    assert "ResourceWarning" not in done.stderr, done.stderr[-2000:]


def test_the_deselected_streams_are_named_in_one_line(sandbox: Sandbox, tap: TapRunner) -> None:
    """The SDK logs a line per deselected stream: a hundred, each run."""
    out = tap.run(tap_config(sandbox), ["users", "currencies"])
    assert out.records["users"], "the selected streams synced"
    assert "Skipping deselected stream '" not in out.stderr
    total = len(json.loads(next(tap.tmp_path.glob("catalog*.json")).read_text())["streams"])
    assert f"Skipping {total - 2} deselected streams." in out.stderr

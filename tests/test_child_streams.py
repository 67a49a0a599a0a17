"""Child streams against the sandbox: every nested row, exact values, every ancestor's id.

Expectations come from the sandbox's records, walked down its own line collections
(``Store.array_chain``), not from the tap's registry.
"""

from __future__ import annotations

import signal
import typing as t

import pendulum
import pytest

from coupa_sandbox import Sandbox, SandboxConfig
from tests.helpers import TapRunner, same, tap_config

pytestmark = pytest.mark.sandbox

#: Children of suppliers and the other owners the generator's CHILDREN table gained,
#: plus a grandchild (invoice line allocations) for the ancestor keys.
NEW_CHILDREN = {
    "supplier_remit_to_addresses": "supplier-id",
    "supplier_addresses": "supplier-id",
    "supplier_contacts": "supplier-id",
    "supplier_diversities": "supplier-id",
    "supplier_information_addresses": "supplier-information-id",
    "supplier_information_contacts": "supplier-information-id",
    "business_entity_addresses": "business-entity-id",
    "asn_header_lines": "asn-header-id",
    "cycle_count_lines": "cycle-count-id",
    "order_pad_lines": "order-pad-id",
    "quote_request_lines": "quote-request-id",
    "quote_response_lines": "quote-response-id",
    "receipt_request_lines": "receipt-request-id",
    "return_request_lines": "return-request-id",
    "warehouse_locations": "warehouse-id",
}

Row = dict[str, t.Any]


def nested_rows(sandbox: Sandbox, stream: str) -> list[tuple[list[int], Row]]:
    """Each item of a sandbox line collection with the ids of the records above it."""
    chain = sandbox.state.store.array_chain(stream)
    assert chain is not None, stream
    top, fields = chain
    level: list[tuple[list[int], Row]] = [([], record) for record in sandbox.records(top)]
    for field in fields:
        level = [
            ([*ids, parent["id"]], item)
            for ids, parent in level
            for item in parent.get(field) or []
        ]
    return level


@pytest.fixture(scope="module")
def synced(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Row]]:
    tap = TapRunner(tmp_path_factory.mktemp("children"))
    out = tap.run(tap_config(sandbox), [*NEW_CHILDREN, "invoice_line_account_allocations"])
    return out.records


@pytest.mark.parametrize("stream", sorted(NEW_CHILDREN))
def test_new_child_stream_is_complete_with_exact_values(
    sandbox: Sandbox, synced: dict[str, list[Row]], stream: str
) -> None:
    served = {item["id"]: (ids, item) for ids, item in nested_rows(sandbox, stream)}
    emitted = {row["id"]: row for row in synced[stream]}
    assert served, f"the sandbox serves no {stream} rows: the test would prove nothing"
    assert emitted.keys() == served.keys()
    assert len(synced[stream]) == len(served), "no duplicates"
    parent_key = NEW_CHILDREN[stream]
    for row_id, (ids, item) in served.items():
        row = dict(emitted[row_id])
        assert row.pop(parent_key) == ids[-1], f"{stream} {row_id}: {parent_key}"
        row.pop("extra-fields", None)
        differ = [k for k in item if k != parent_key and not same(row.get(k), item[k])]
        assert not differ, f"{stream} {row_id}: {[(k, row.get(k), item[k]) for k in differ]}"


def test_grandchild_rows_carry_every_ancestors_id(
    sandbox: Sandbox, synced: dict[str, list[Row]]
) -> None:
    served = nested_rows(sandbox, "invoice_line_account_allocations")
    assert served
    expected = {item["id"]: ids for ids, item in served}
    got = {
        row["id"]: [row.get("invoice-id"), row.get("invoice-line-id")]
        for row in synced["invoice_line_account_allocations"]
    }
    assert got == expected


def test_children_get_their_rows_whatever_the_parent_deselects(
    sandbox: Sandbox, tap: TapRunner
) -> None:
    """A parent written without its array, a child without its parent's id: rows still flow."""
    streams = ["invoices", "invoice_lines", "invoice_line_account_allocations"]
    out = tap.run(
        tap_config(sandbox),
        streams,
        deselect={"invoices": ["invoice-lines"], "invoice_lines": ["invoice-id"]},
    )
    expected = nested_rows(sandbox, "invoice_line_account_allocations")
    assert expected, "the sandbox has allocations"
    assert out.records["invoices"], "the parent is selected and emitted"
    assert not any("invoice-lines" in r for r in out.records["invoices"])
    lines = out.records["invoice_lines"]
    assert len(lines) == len(nested_rows(sandbox, "invoice_lines"))
    assert not any("invoice-id" in r for r in lines), "deselected on the child itself"
    got = {r["id"]: (r["invoice-id"], r["invoice-line-id"]) for r in out.records[streams[2]]}
    assert got == {row["id"]: (ids[0], ids[1]) for ids, row in expected}


def lines_of(sb: Sandbox) -> int:
    return sum(len(invoice.get("invoice-lines") or []) for invoice in sb.records("invoices"))


def test_a_child_selected_after_its_parents_bookmark_gets_every_row(
    fresh_sandbox: Sandbox, tap: TapRunner
) -> None:
    """Its rows come from the parent's scan: the bookmark it left did not emit them."""
    config = tap_config(fresh_sandbox)
    first = tap.run(config, ["invoices"])
    fresh_sandbox.mutate("invoices", update=2)
    added = tap.run(config, ["invoices", "invoice_lines"], first.state)
    assert "reading from start_date" in added.stderr
    assert len(added.records["invoice_lines"]) == lines_of(fresh_sandbox) > 20
    again = tap.run(config, ["invoices", "invoice_lines"], added.state)
    assert "reading from start_date" not in again.stderr
    assert 0 < len(again.records["invoices"]) < len(first.records["invoices"]), "incremental"


def test_a_parent_selected_after_only_its_children_were_gets_every_record(
    fresh_sandbox: Sandbox, tap: TapRunner
) -> None:
    """The parent was read for its children, but none of its own records went out."""
    config = tap_config(fresh_sandbox)
    lines = tap.run(config, ["invoice_lines"])
    assert not lines.records.get("invoices")
    fresh_sandbox.mutate("invoices", update=2)
    both = tap.run(config, ["invoices", "invoice_lines"], lines.state)
    assert both.ids("invoices") == {r["id"] for r in fresh_sandbox.records("invoices")}


def test_a_child_streams_lookback_window_rereads_its_rows(
    fresh_sandbox: Sandbox, tap: TapRunner
) -> None:
    """The child's own window (stream_options) applies to the parent's scan it reads from."""
    window = {"stream_options": {"invoice_lines": {"lookback_window": "P30D"}}}
    config = tap_config(fresh_sandbox, **window)
    first = tap.run(config, ["invoices", "invoice_lines"])
    bookmark = pendulum.parse(first.state["bookmarks"]["invoices"]["replication_key_value"])
    assert isinstance(bookmark, pendulum.DateTime)
    since = bookmark - pendulum.duration(days=30)
    again = tap.run(config, ["invoices", "invoice_lines"], first.state)
    late = [
        r
        for r in fresh_sandbox.records("invoices")
        if since <= pendulum.parse(r["updated-at"]) < bookmark
    ]
    assert late, "some invoices lie inside the child's window"
    assert {r["id"] for r in late} <= {r["invoice-id"] for r in again.records["invoice_lines"]}


def test_a_child_forced_to_full_table_reads_its_parent_in_full(
    fresh_sandbox: Sandbox, tap: TapRunner
) -> None:
    config = tap_config(fresh_sandbox)
    tap.root_metadata = {"invoice_lines": {"replication-method": "FULL_TABLE"}}
    first = tap.run(config, ["invoices", "invoice_lines"])
    fresh_sandbox.mutate("invoices", update=2)
    again = tap.run(config, ["invoices", "invoice_lines"], first.state)
    assert len(again.records["invoice_lines"]) == lines_of(fresh_sandbox)


def test_an_interrupted_scan_is_not_resumed_for_a_child_it_did_not_emit(tap: TapRunner) -> None:
    config_of = SandboxConfig(seed=3, records={"invoices": 1200}, rate_limit=None)
    with Sandbox(config_of) as sb:
        config = tap_config(sb)
        killed = tap.run_and_kill(
            config,
            ["invoices"],
            None,
            when=lambda m: (
                m["type"] == "STATE" and "progress" in m["value"]["bookmarks"].get("invoices", {})
            ),
        )
        assert killed.returncode == -signal.SIGKILL
        resumed = tap.run(config, ["invoices", "invoice_lines"], killed.state)
        assert "not resuming the interrupted scan" in resumed.stderr
        assert len(resumed.records["invoice_lines"]) == lines_of(sb)
        assert resumed.ids("invoices") == {r["id"] for r in sb.records("invoices")}


def test_a_stream_map_filtering_a_childs_rows_drops_its_own_childrens_rows(
    sandbox: Sandbox, tap: TapRunner
) -> None:
    """The SDK's rule (README): a parent's record filtered out takes its children's rows.

    It holds for a child stream that is itself a parent, as an invoice line is to its
    allocations, whether the line is filtered or removed by the map.
    """
    lines = nested_rows(sandbox, "invoice_lines")
    kept = {row["id"] for _, row in lines if row["id"] % 2 == 0}
    assert kept
    assert len(kept) < len(lines)
    streams = ["invoice_lines", "invoice_line_account_allocations"]
    even = {"invoice_lines": {"__filter__": "id % 2 == 0"}}
    out = tap.run(tap_config(sandbox, stream_maps=even), streams)
    assert {r["id"] for r in out.records["invoice_lines"]} == kept
    allocations = out.records["invoice_line_account_allocations"]
    assert allocations, "the kept lines' allocations still go out"
    assert {r["invoice-line-id"] for r in allocations} <= kept
    removed = tap.run(tap_config(sandbox, stream_maps={"invoice_lines": None}), streams)
    assert not removed.records.get("invoice_lines")
    assert not removed.records.get("invoice_line_account_allocations")

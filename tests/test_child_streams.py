"""Child streams against the sandbox: every nested row, exact values, every ancestor's id.

Expectations come from the sandbox's records, walked down its own line collections
(``Store.array_chain``), not from the tap's registry.
"""

from __future__ import annotations

import typing as t

import pytest

from coupa_sandbox import Sandbox
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

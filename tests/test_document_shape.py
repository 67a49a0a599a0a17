"""Documents as Coupa serves them: the payloads the benchmark and the CPU floor measure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import httpx
import pytest

from coupa_sandbox import Sandbox, SandboxConfig
from coupa_sandbox.shape import Figures, nested_objects
from coupa_sandbox.state import SandboxState

pytestmark = pytest.mark.sandbox

RECORDS = 300
DECIMAL = re.compile(r"-?\d+\.\d+")
#: Document -> (its lines, the lines' tax lines or tax detail, their allocations).
DOCUMENTS = {
    "invoices": ("invoice-lines", "tax-lines", "account-allocations"),
    "purchase_orders": ("order-lines", "order-line-tax-detail", "account-allocations"),
    "requisitions": ("requisition-lines", "requisition-line-tax-detail", "account-allocations"),
    "expense_reports": ("expense-lines", "expense-line-taxes", "account-allocations"),
}
#: Mean size of an invoice: about 25 KB and 100 nested objects, as Coupa serves them.
INVOICE_KB = (22.0, 32.0)
INVOICE_OBJECTS = (85.0, 115.0)


@cache
def records(stream: str, shape: str = "realistic") -> list[dict[str, Any]]:
    config = SandboxConfig(records={stream: RECORDS}, document_shape=shape)
    return SandboxState(config).store.snapshot(stream)


def has_decimal(item: Mapping[str, Any]) -> bool:
    return any(isinstance(v, str) and DECIMAL.fullmatch(v) for v in item.values())


def is_user(value: Any) -> bool:
    return isinstance(value, dict) and {"id", "login", "email"} <= value.keys()


@pytest.mark.parametrize("stream", sorted(DOCUMENTS))
def test_documents_have_lines_with_taxes_allocations_decimals_and_associations(
    stream: str,
) -> None:
    lines_field, taxes_field, allocations_field = DOCUMENTS[stream]
    docs = records(stream)
    assert {len(doc[lines_field]) for doc in docs} == {1, 2, 3, 4}
    for doc in docs:
        assert has_decimal(doc) or stream == "purchase_orders"  # R39: no header amounts
        assert is_user(doc["created-by"]), doc["id"]
        for line in doc[lines_field]:
            assert has_decimal(line)
            assert is_user(line["created-by"])
            assert is_user(line["updated-by"])
            assert isinstance(line["account"], dict)
            assert "code" in line["account"]
            taxes = line[taxes_field]
            for tax in taxes if isinstance(taxes, list) else [taxes]:
                assert isinstance(tax, dict)
                assert tax["id"]
                if isinstance(taxes, list):  # tax lines carry amounts; a tax detail codes
                    assert has_decimal(tax)
            assert 1 <= len(line[allocations_field]) <= 2
            for allocation in line[allocations_field]:
                assert has_decimal(allocation)
                assert DECIMAL.fullmatch(allocation["pct"])
                assert isinstance(allocation["account"], dict)


def test_invoice_headers_name_supplier_and_currency() -> None:
    for doc in records("invoices"):
        assert isinstance(doc["supplier"], dict)
        assert doc["supplier"]["name"]
        assert isinstance(doc["currency"], dict)
        assert doc["currency"]["code"]


def test_invoices_weigh_about_25_kb_and_100_nested_objects() -> None:
    figures = Figures.of(records("invoices"))
    assert INVOICE_KB[0] <= figures.mean_bytes / 1000 <= INVOICE_KB[1], figures
    assert INVOICE_OBJECTS[0] <= figures.mean_objects <= INVOICE_OBJECTS[1], figures


def test_plain_shape_keeps_the_sparser_generic_records() -> None:
    """The switch: ``plain`` serves the earlier, lighter documents (up to 5 lines)."""
    plain = Figures.of(records("invoices", "plain"))
    assert plain.mean_objects < INVOICE_OBJECTS[0]
    assert max(len(doc["invoice-lines"]) for doc in records("invoices", "plain")) == 5


def test_served_pages_are_the_generated_documents() -> None:
    """What a client fetches is what was measured: same records, same nested objects."""
    config = SandboxConfig(records={"purchase_orders": 60}, rate_limit=None)
    with Sandbox(config) as sandbox:
        headers = {"Accept": "application/json", "Authorization": f"Bearer {sandbox.issue_token()}"}
        served = httpx.get(f"{sandbox.url}/api/purchase_orders?limit=50", headers=headers).json()
        expected = sandbox.records("purchase_orders")[:50]
    assert served == expected
    assert sum(map(nested_objects, served)) / len(served) > 40

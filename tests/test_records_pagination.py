"""Decimal conversion, instant comparison across offsets, and the offset paginator."""

from __future__ import annotations

from decimal import Decimal

import pendulum
import pytest

from tap_coupa.pagination import CoupaOffsetPaginator
from tap_coupa.records import DecimalPlan, InstantMax

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


def test_decimal_plan_converts_exactly_and_only_numbers() -> None:
    plan = DecimalPlan.compile(SCHEMA)
    assert plan is not None
    record = {
        "id": 3,
        "total": "12345678901234.123456789",
        "name": "567.07",
        "currency": {"rate": "1.000000001"},
        "lines": [{"price": "0.10"}, {"price": None}, "not-an-object"],
        "open": {"price": "9.99"},
    }
    bad: set[str] = set()
    plan.apply(record, bad)
    assert record["total"] == Decimal("12345678901234.123456789")
    assert str(record["total"]) == "12345678901234.123456789"
    assert record["name"] == "567.07", "strings stay strings"
    assert record["currency"]["rate"] == Decimal("1.000000001")
    assert record["lines"][0]["price"] == Decimal("0.10")
    assert record["lines"][1]["price"] is None
    assert record["open"] == {"price": "9.99"}, "open objects are passed through untouched"
    assert bad == set()


def test_decimal_plan_reports_unparsable_values() -> None:
    plan = DecimalPlan.compile(SCHEMA)
    assert plan is not None
    record = {"total": "N/A", "lines": [{"price": ""}]}
    bad: set[str] = set()
    plan.apply(record, bad)
    assert record == {"total": None, "lines": [{"price": None}]}
    assert bad == {"total='N/A'"}


def test_schema_without_numbers_has_no_plan() -> None:
    assert DecimalPlan.compile({"properties": {"a": {"type": ["string", "null"]}}}) is None


def test_instant_max_compares_instants_not_strings() -> None:
    latest = InstantMax()
    # 09:30-08:00 is 17:30Z, later than 10:00-07:00 = 17:00Z, though it sorts first.
    for value in ["2025-03-09T10:00:00-07:00", "2025-03-09T09:30:00-08:00", None, ""]:
        latest.observe(value)
    assert latest.latest() == pendulum.datetime(2025, 3, 9, 17, 30)
    latest.observe("2025-03-09T17:30:01Z")
    assert latest.latest() == pendulum.datetime(2025, 3, 9, 17, 30, 1)


def test_instant_max_empty() -> None:
    assert InstantMax().latest() is None


def test_paginator_overlaps_pages_by_one_record() -> None:
    paginator = CoupaOffsetPaginator(50)
    assert [paginator.offset(i) for i in range(4)] == [0, 49, 98, 147]
    paginator.advance([{}] * 50)
    assert not paginator.finished
    assert paginator.current_value == 49
    paginator.advance([{}] * 12)
    assert paginator.finished, "a short page is the last one: no extra empty request"


@pytest.mark.parametrize("size", [0, 51, 500])
def test_paginator_rejects_sizes_coupa_does_not_allow(size: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 50"):
        CoupaOffsetPaginator(size)

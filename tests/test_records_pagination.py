"""Decimals (as numbers or x-singer.decimal strings), instant comparison across offsets, and the offset paginator."""

from __future__ import annotations

import copy
import json
import typing as t
from decimal import Decimal

import pendulum
import pytest

from tap_coupa.decimals import SINGER_DECIMAL, DecimalPlan, conformed, decimals_as_strings
from tap_coupa.http import Page, parse_records
from tap_coupa.instants import InstantMax
from tap_coupa.pagination import CoupaOffsetPaginator
from tests.helpers import SCHEMA

pytestmark = pytest.mark.unit


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


def test_decimal_plan_nulls_values_json_cannot_carry() -> None:
    plan = DecimalPlan.compile(SCHEMA)
    assert plan is not None
    record = {"total": "NaN", "currency": {"rate": "-Infinity"}}
    bad: set[str] = set()
    plan.apply(record, bad)
    assert record == {"total": None, "currency": {"rate": None}}
    assert bad == {"total='NaN'", "currency.rate='-Infinity'"}


def test_json_numbers_decode_exactly() -> None:
    body = b'[{"id": 1, "total": 12345678901234567890.123456789, "count": 7}]'
    [record] = parse_records(body, stream="invoices", path="invoices")
    assert record["total"] == Decimal("12345678901234567890.123456789")
    assert record["count"] == 7


def sized_schema() -> dict[str, t.Any]:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["total"].update(precision=30, scale=4)
    schema["properties"]["lines"]["items"]["properties"]["price"].update(precision=46, scale=20)
    return schema


def test_decimal_strings_keep_text_and_declare_sizes() -> None:
    schema = sized_schema()
    decimals_as_strings(schema)
    props = schema["properties"]
    assert props["total"] == {
        "type": ["string", "null"],
        "format": "x-singer.decimal",
        "precision": 30,
        "scale": 4,
    }
    assert props["currency"]["properties"]["rate"]["format"] == "x-singer.decimal"
    assert "precision" not in props["currency"]["properties"]["rate"], "R39 gave no size"
    assert props["lines"]["items"]["properties"]["price"]["scale"] == 20
    assert props["name"] == {"type": ["string", "null"]}
    plan = DecimalPlan.compile(schema, as_text=True)
    assert plan is not None
    record = {
        "total": "567.070",
        "currency": {"rate": Decimal("1.25")},  # a JSON number, decoded exactly
        "lines": [{"price": 3}, {"price": "abc"}],
    }
    bad: set[str] = set()
    plan.apply(record, bad)
    assert record == {
        "total": "567.070",
        "currency": {"rate": "1.25"},
        "lines": [{"price": "3"}, {"price": None}],
    }
    assert bad == {"lines[].price='abc'"}


def test_sizes_dropped_by_a_catalog_are_restored() -> None:
    sized = sized_schema()
    decimals_as_strings(sized)
    from_catalog = json.loads(json.dumps(sized))
    for prop in [
        from_catalog["properties"]["total"],
        from_catalog["properties"]["lines"]["items"]["properties"]["price"],
    ]:
        del prop["precision"], prop["scale"]
    del from_catalog["properties"]["name"]  # deselected
    restored = conformed(from_catalog, sized)
    assert restored["properties"]["total"]["precision"] == 30
    assert restored["properties"]["lines"]["items"]["properties"]["price"]["scale"] == 20
    assert "name" not in restored["properties"]
    assert "precision" not in from_catalog["properties"]["total"], "the input is not modified"


def test_a_catalog_of_the_other_decimal_format_is_spelled_as_the_records_are() -> None:
    as_numbers = sized_schema()
    as_strings = sized_schema()
    decimals_as_strings(as_strings)
    to_strings = conformed(as_numbers, as_strings)["properties"]
    to_numbers = conformed(as_strings, as_numbers)["properties"]
    assert to_strings["total"]["format"] == SINGER_DECIMAL
    assert to_strings["lines"]["items"]["properties"]["price"]["type"] == ["string", "null"]
    assert to_numbers["total"]["type"] == ["number", "null"]
    assert "format" not in to_numbers["lines"]["items"]["properties"]["price"]
    assert to_numbers["name"] == as_numbers["properties"]["name"], "the rest is the catalog's"


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
    paginator.advance(Page([{}] * 50, None))
    assert not paginator.finished
    assert paginator.current_value == 49
    paginator.advance(Page([{}] * 12, None))
    assert paginator.finished, "a short page is the last one: no extra empty request"
    assert paginator.count == 2


@pytest.mark.parametrize("size", [0, 51, 500])
def test_paginator_rejects_sizes_coupa_does_not_allow(size: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 50"):
        CoupaOffsetPaginator(size)


def test_a_child_plan_skips_what_the_parent_converted() -> None:
    parent = DecimalPlan.compile(SCHEMA)
    assert parent is not None
    line = {
        "properties": {
            "price": {"type": ["number", "null"]},
            "tax": {"type": ["number", "null"]},
            "taxes": {"type": ["array"], "items": {"properties": {"rate": {"type": "number"}}}},
        }
    }
    child = DecimalPlan.compile(line)
    assert child is not None
    left = child.without(parent.arrays["lines"])
    assert left is not None
    assert left.numbers == ("tax",), "price was converted with the parent's lines"
    assert list(left.arrays) == ["taxes"]
    row = {"price": Decimal("0.10"), "tax": "0.02", "taxes": [{"rate": "0.2"}]}
    left.apply(row, set())
    assert row == {
        "price": Decimal("0.10"),
        "tax": Decimal("0.02"),
        "taxes": [{"rate": Decimal("0.2")}],
    }
    covered = DecimalPlan.compile({"properties": {"price": {"type": "number"}}})
    assert (
        DecimalPlan.compile({"properties": {"price": {"type": "number"}}}).without(covered) is None
    )

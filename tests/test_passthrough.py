"""Records passed through as the bytes sent: only those shaping would leave as they are."""

from __future__ import annotations

import copy
import logging
import re
import typing as t
from decimal import Decimal, InvalidOperation

import msgspec
import pytest

from tap_coupa import rawjson
from tap_coupa.decimals import DecimalPlan, decimals_as_strings
from tap_coupa.passthrough import PageReader, RawRecord, page_reader
from tap_coupa.shape import RecordShaper
from tests.helpers import SCHEMA
from tests.test_rawjson import VALUES, as_json, records

pytestmark = pytest.mark.unit

KEY = "updated-at"
#: What shaping keeps as it is with decimals as strings: null, or JSON number text.
NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def string_schema() -> dict[str, t.Any]:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["tax"] = {"type": ["number", "null"]}
    schema["properties"]["currency"]["properties"]["fee"] = {"type": ["number", "null"]}
    schema["properties"][KEY] = {"type": ["string", "null"], "format": "date-time"}
    decimals_as_strings(schema)
    return schema


def shaper(schema: dict[str, t.Any]) -> RecordShaper:
    return RecordShaper(
        "test", schema, decimal_strings=True, replication_key=KEY, logger=logging.getLogger()
    )


def reader(schema: dict[str, t.Any]) -> PageReader:
    built = page_reader(schema, DecimalPlan.compile(schema, as_text=True), KEY)
    assert built is not None
    return built


def unchanged(value: t.Any) -> bool:
    """A decimal shaping keeps byte for byte (a valid string in another form is decoded)."""
    if value is None:
        return True
    if not isinstance(value, str) or not NUMBER_TEXT.fullmatch(value):
        return False
    try:
        return Decimal(value).is_finite() and abs(float(value)) != float("inf")
    except InvalidOperation:
        return False


def passes(record: dict[str, t.Any]) -> bool:
    """Whether nothing in ``record`` needs shaping: the oracle, written out plainly."""
    currency, lines = record.get("currency"), record.get("lines")
    decimals = [record.get("total"), record.get("tax")]
    if currency is not None:
        if not isinstance(currency, dict):
            return False
        decimals += [currency.get("rate"), currency.get("fee")]
    if lines is not None:
        if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
            return False
        decimals += [line.get("price") for line in lines]
    return (
        isinstance(record.get("id"), int)
        and isinstance(record.get(KEY), str | None)
        and record.keys() <= string_schema()["properties"].keys()
        and all(unchanged(value) for value in decimals)
    )


def page() -> list[dict[str, t.Any]]:
    """Odd values at every level, plus records each failing one more check."""
    valid = {"id": 99, KEY: "2025-03-10T08:00:00-07:00", "total": "1.5", "lines": [{"price": "2"}]}
    return [
        *records(),
        *(
            {
                "id": 100 + index,
                "total": value,
                "currency": {"rate": value},
                "lines": [{"price": value}],
            }
            for index, value in enumerate(VALUES)
        ),
        valid,
        {**valid, "surprise": 1},
        {**valid, "id": "99"},
        {key: value for key, value in valid.items() if key != "id"},
        {**valid, KEY: 5},
        {**valid, "lines": [{"price": "2", "note": "lines may hold anything else"}]},
        {**valid, "currency": {"rate": "1e400"}},
    ]


def test_only_records_shaping_would_leave_alone_pass_through_and_all_come_out_the_same() -> None:
    schema = string_schema()
    sent = page()
    body = msgspec.json.encode(sent)
    # Records the scan would refuse (an id not an integer) are in: the reader shapes them.
    got = reader(schema)(body)
    expected = rawjson.decode(body, raw=True)
    shape = shaper(schema).shape
    passed = [record.__class__ is RawRecord for record in got]
    assert passed == [passes(record) for record in sent]
    assert 5 < sum(passed) < len(sent) - 5, "both ways are taken"
    for record, before, original in zip(got, expected, sent, strict=True):
        out = record.body if isinstance(record, RawRecord) else shape(record)
        assert as_json(out) == as_json(shape(before)), original
        if isinstance(record, RawRecord):
            assert bytes(record.body) == msgspec.json.encode(original), "the bytes sent"
            assert record == {key: original[key] for key in ("id", KEY) if key in original}


def test_a_record_passed_through_holds_its_id_and_bookmark_only() -> None:
    record = {"id": 7, KEY: "2025-03-10T08:00:00-07:00", "total": "1.50", "name": "x"}
    [got] = reader(string_schema())(msgspec.json.encode([record]))
    assert isinstance(got, RawRecord)
    assert got == {"id": 7, KEY: "2025-03-10T08:00:00-07:00"}
    [missing] = reader(string_schema())(msgspec.json.encode([{"id": 8}]))
    assert missing == {"id": 8}, "a missing bookmark is not added"


def number_schema() -> dict[str, t.Any]:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"][KEY] = {"type": ["string", "null"], "format": "date-time"}
    return schema


def test_decimals_as_numbers_are_re_encoded_as_shaping_would_write_them() -> None:
    """Odd decimals at every level: a record passed or shaped, the JSON is the same."""
    schema = number_schema()
    body = msgspec.json.encode(page())
    built = page_reader(schema, DecimalPlan.compile(schema), KEY)
    assert built is not None
    got = built(body)
    expected = rawjson.decode(body, raw=True)
    shape = RecordShaper(
        "test", schema, decimal_strings=False, replication_key=KEY, logger=logging.getLogger()
    ).shape
    passed = [record.__class__ is RawRecord for record in got]
    assert 5 < sum(passed) < len(got) - 5, "both ways are taken"
    for record, before in zip(got, expected, strict=True):
        out = record.body if isinstance(record, RawRecord) else shape(record)
        assert as_json(out) == as_json(shape(before))


def test_unknown_keys_in_nested_objects_are_learned_and_kept() -> None:
    """The first record with an undeclared nested key is shaped; the next ones pass."""
    schema = number_schema()
    built = page_reader(schema, DecimalPlan.compile(schema), KEY)
    assert built is not None
    line = {"price": "2.50", "custom-fields": {"x": "y"}}
    sent = [{"id": index, "total": "1", "lines": [line]} for index in range(3)]
    got = built(msgspec.json.encode(sent))
    assert [record.__class__ is RawRecord for record in got] == [False, True, True]
    assert isinstance(got[1], RawRecord)
    assert msgspec.json.Decoder(float_hook=Decimal).decode(got[1].body) == {
        "id": 1,
        "total": 1,
        "lines": [{"price": Decimal("2.50"), "custom-fields": {"x": "y"}}],
    }
    [surprise] = built(msgspec.json.encode([{"id": 4, "surprise": 1}]))
    assert surprise.__class__ is not RawRecord, "unknown top-level keys go to extra-fields"


def test_a_stream_whose_id_or_bookmark_is_a_decimal_is_shaped() -> None:
    schema = number_schema()
    schema["properties"][KEY] = {"type": ["number", "null"]}
    assert page_reader(schema, DecimalPlan.compile(schema), KEY) is None
    plain = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {}}}
    assert page_reader(plain, DecimalPlan.compile(plain), KEY) is not None


def test_line_breaks_between_tokens_never_reach_the_output() -> None:
    """A Singer message is one line: a pretty-printed page is compacted first."""
    body = b'[\r\n  {\n    "id": 1,\n    "name": "a\\nb",\n    "total": "1.5"\n  }\n]\n'
    [passed] = reader(string_schema())(body)
    assert isinstance(passed, RawRecord)
    [shaped] = rawjson.decode(body, raw=True)
    for raw in (passed.body, shaped["name"]):
        assert b"\n" not in bytes(raw)
        assert b"\r" not in bytes(raw)
    assert as_json(passed.body) == {"id": 1, "name": "a\nb", "total": "1.5"}


def test_a_page_of_another_shape_is_decoded_for_the_caller() -> None:
    body = b'{"errors": {"id": ["bad"]}}'
    assert reader(string_schema())(body) == {"errors": {"id": ["bad"]}}
    with pytest.raises(msgspec.DecodeError):
        reader(string_schema())(b'[{"id": 1}')


def test_the_structs_follow_the_key_order_of_the_first_page() -> None:
    """msgspec matches keys fastest in field order: the reader learns Coupa's order.

    Decimals as numbers are re-encoded in that order too, at every level; a later
    record in another order is read all the same.
    """
    schema = number_schema()
    schema["properties"]["lines"]["items"]["properties"]["qty"] = {"type": ["number", "null"]}
    built = page_reader(schema, DecimalPlan.compile(schema), KEY)
    assert built is not None
    line = {"qty": "3", "price": "2.50"}
    sent = {"open": None, "lines": [line], "total": "1", "name": "n", KEY: None, "id": 1}
    other = {"id": 2, "total": "4", "lines": [{"price": "1", "qty": "1"}]}
    [first, second] = built(msgspec.json.encode([sent, other]))
    assert isinstance(first, RawRecord)
    assert isinstance(second, RawRecord)
    out = msgspec.json.decode(first.body)
    assert list(out) == list(sent), "the keys as sent"
    assert list(out["lines"][0]) == list(line)
    assert msgspec.json.decode(second.body) == {
        "id": 2,
        "total": 4,
        "lines": [{"price": 1, "qty": 1}],
    }

    strings = reader(string_schema())
    strings(msgspec.json.encode([sent]))
    fields = msgspec.structs.fields(strings._compiled.top.type)
    names = [field.encode_name for field in fields]
    assert [name for name in names if name in sent] == list(sent)


def test_the_key_order_is_learned_from_the_first_page_with_records() -> None:
    built = reader(string_schema())
    assert built(b"[]") == []
    sent = {"name": "n", "total": "1", "id": 1}
    [passed] = built(msgspec.json.encode([sent]))
    assert isinstance(passed, RawRecord)
    names = [field.encode_name for field in msgspec.structs.fields(built._compiled.top.type)]
    assert [name for name in names if name in sent] == list(sent)

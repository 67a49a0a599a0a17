"""Records kept as raw JSON where the tap does not look: the same output as decoding it all."""

from __future__ import annotations

import copy
import json
import typing as t
from decimal import Decimal

import msgspec
import pytest
from singer_sdk.contrib.msgspec import encoder

from tap_coupa import rawjson
from tap_coupa.decimals import DecimalPlan, decimals_as_strings
from tap_coupa.shape import prune
from tests.helpers import SCHEMA

pytestmark = pytest.mark.unit

#: Decimals as Coupa and look-alikes send them, valid or not.
VALUES: list[t.Any] = [
    "567.07",
    "-0.00",
    "12345678901234567890.123456789",
    "0.0000001",
    "1e5",
    None,
    12.5,
    7,
    "007.5",
    ".5",
    " 1.5",
    "",
    "N/A",
    "NaN",
    "-Infinity",
    "null",
    " null",
    "1,5",
    '1"2',
    True,
]


def records() -> list[dict[str, t.Any]]:
    """Records mixing those values at every level a plan reaches, and some keys missing."""
    out = []
    for index, value in enumerate(VALUES):
        other = VALUES[(index * 7 + 3) % len(VALUES)]
        out.append(
            {
                "id": index,
                "total": value,
                "tax": other,
                "currency": {"rate": other, "code": "USD", "fee": "0.10"},
                "lines": [{"price": value, "note": "12.5"}, {"price": "1.25"}, None, "x"],
                "open": {"price": "9.99"},
            }
        )
        out.append({"id": index, "total": value, "lines": None, "currency": "not-an-object"})
    # The string "null" beside a decimal sent as a JSON number, at both levels: the text
    # "null" in one value must not stand for the number left unquoted in another.
    out.append({"id": 98, "total": "null", "tax": 12.5})
    out.append({"id": 99, "total": 7, "tax": "null", "currency": {"rate": "null", "fee": 7}})
    return out


def as_json(record: dict[str, t.Any]) -> t.Any:
    """The record as the tap's writer puts it in a RECORD message, read back exactly."""
    return json.loads(encoder.encode(record), parse_float=Decimal)


def raw(record: dict[str, t.Any]) -> dict[str, t.Any]:
    [decoded] = rawjson.decode(msgspec.json.encode([record]), raw=True)
    assert all(value.__class__ is rawjson.Raw for value in decoded.values())
    return t.cast("dict[str, t.Any]", decoded)


@pytest.mark.parametrize("strings", [False, True], ids=["number", "string"])
@pytest.mark.parametrize("record", records(), ids=lambda r: repr(r["total"])[:20])
def test_raw_records_convert_as_decoded_ones(record: dict[str, t.Any], *, strings: bool) -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["tax"] = {"type": ["number", "null"]}
    schema["properties"]["currency"]["properties"]["fee"] = {"type": ["number", "null"]}
    if strings:
        decimals_as_strings(schema)
    plan = DecimalPlan.compile(schema, as_text=strings)
    assert plan is not None
    decoded = rawjson.decode(msgspec.json.encode([record]), raw=False)[0]
    undecoded = raw(record)
    bad_decoded: set[str] = set()
    bad_raw: set[str] = set()
    plan.apply(decoded, bad_decoded)
    plan.apply(undecoded, bad_raw)
    assert as_json(undecoded) == as_json(decoded)
    assert bad_raw == bad_decoded
    assert undecoded.keys() == decoded.keys(), "a missing decimal is not added"


def test_raw_decimals_keep_their_digits() -> None:
    plan = DecimalPlan.compile(SCHEMA)
    assert plan is not None
    record = raw({"total": "0.0000001", "currency": {"rate": "-0.00"}, "lines": [{"price": "1e5"}]})
    plan.apply(record, set())
    assert encoder.encode(record) == (
        b'{"total":0.0000001,"currency":{"rate":-0.00},"lines":[{"price":1e5}]}'
    )


def test_strings_pass_through_untouched() -> None:
    schema = copy.deepcopy(SCHEMA)
    decimals_as_strings(schema)
    plan = DecimalPlan.compile(schema, as_text=True)
    assert plan is not None
    record = raw({"total": "567.070", "name": "x"})
    before = record["total"]
    plan.apply(record, set())
    assert record["total"] is before, "a valid decimal string is not even decoded"


def test_pages_of_another_shape_are_decoded_for_the_caller() -> None:
    assert rawjson.decode(b'{"errors": {"id": ["bad"]}}', raw=True) == {"errors": {"id": ["bad"]}}
    assert rawjson.decode(b"[1, 2.5]", raw=True) == [1, Decimal("2.5")]
    with pytest.raises(msgspec.DecodeError):
        rawjson.decode(b'[{"id": 1}', raw=True)


def test_prune_opens_raw_objects() -> None:
    record = raw({"id": 1, "supplier": {"id": 2, "secret": "s"}, "drop": 3})
    prune(record, {"supplier": {"secret": None}, "drop": None})
    assert as_json(record) == {"id": 1, "supplier": {"id": 2}}


def test_materialize_leaves_nothing_raw_or_shared() -> None:
    row = {"a": rawjson.Raw(b'{"b": [1.5]}'), "c": [{"d": rawjson.Raw(b'"x"')}]}
    copied = rawjson.materialize(row)
    assert copied == {"a": {"b": [Decimal("1.5")]}, "c": [{"d": "x"}]}
    copied["c"][0]["d"] = "changed"
    assert row["c"][0]["d"] == rawjson.Raw(b'"x"')


#: Bytes around chunk boundaries (``|``) for ``check_utf8``: ASCII, then ``cut``, ...
UTF8_CASES = {
    "2-byte": (["é"], True),
    "3-byte": (["€"], True),
    "4-byte": (["😀"], True),
    "lead-then-ascii": ([b"\xc3", b"a"], False),
    "cut-at-end": ([b"\xe2\x82"], False),
    "lone-continuation": ([b"\xa9"], False),
    # A chunk of ASCII between a lead byte and a continuation byte: read whole, invalid.
    "split-by-an-ascii-chunk": ([b"\xc3", b"a" * 4096, b"\xa9"], False),
}


@pytest.mark.parametrize(("parts", "valid"), UTF8_CASES.values(), ids=UTF8_CASES.keys())
def test_utf8_is_checked_across_the_chunks_it_is_read_in(
    parts: list[str | bytes], valid: bool
) -> None:
    """Only chunks holding bytes other than ASCII are decoded; a character (or a broken
    one) may straddle two, or more."""
    middle = b"".join(p.encode() if isinstance(p, str) else p for p in parts)
    body = b"a" * (rawjson.UTF8_CHUNK - 1) + middle
    try:
        whole = body.decode() is not None
    except UnicodeDecodeError:
        whole = False
    assert whole == valid, "the case is not what it says"
    if valid:
        rawjson.check_utf8(body + b"b" * rawjson.UTF8_CHUNK)
    else:
        with pytest.raises(msgspec.DecodeError, match="UTF-8"):
            rawjson.check_utf8(body)

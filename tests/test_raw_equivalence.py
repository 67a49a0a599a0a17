"""Raw JSON and full decoding emit the same records, through the whole tap."""

from __future__ import annotations

import re
import typing as t
from decimal import Decimal

import jsonschema
import pytest

from coupa_sandbox import Sandbox
from tap_coupa.decimals import SINGER_DECIMAL, DecimalPlan
from tap_coupa.streams import load_schema, registry, stream_types
from tests.helpers import CLIENT_ID, CLIENT_SECRET, Output, TapRunner, tap_config
from tests.scripted import Reply, ScriptedServer

pytestmark = pytest.mark.sandbox


#: The log line of a stream whose records went out as the bytes sent (``passthrough``).
PASSED = re.compile(r"Stream '([^']+)': (\d+) records passed through unshaped")


@pytest.mark.parametrize(("discovered", "synced"), [("number", "string"), ("string", "number")])
def test_records_match_their_schema_whatever_decimal_format_the_catalog_was_discovered_with(
    sandbox: Sandbox, tap: TapRunner, discovered: str, synced: str
) -> None:
    streams = ["invoices", "invoice_lines", "purchase_orders", "expense_reports"]
    tap.files(tap_config(sandbox, decimal_format=discovered), streams, None)  # the catalog
    out = tap.run(tap_config(sandbox, decimal_format=synced), streams)
    catalog = next(iter(tap.tmp_path.glob("catalog*.json"))).read_text()
    spelled = f'"format": "{SINGER_DECIMAL}"' in catalog
    assert spelled == (discovered == "string"), "the catalog was discovered the other way"
    for name in streams:
        validator = jsonschema.Draft7Validator(out.schemas[name]["schema"])
        assert out.records[name], name
        for record in out.records[name]:
            error = next(validator.iter_errors(record), None)
            assert error is None, f"{name}: {error.message if error else ''}"
    total = out.schemas["invoices"]["schema"]["properties"]["gross-total"]
    assert (total.get("format") == SINGER_DECIMAL) == (synced == "string"), total


@pytest.mark.parametrize("decimal_format", ["number", "string"])
def test_every_stream_emits_the_same_records_fully_decoded(
    sandbox: Sandbox, tap: TapRunner, decimal_format: str
) -> None:
    """Raw JSON (the default) against full decoding, which identity stream maps force.

    With its child streams selected, a collection's records are shaped one level deep;
    selected alone, they pass through as sent wherever their decimals stay text.
    """
    streams = sorted(registry())
    collections = sorted(name for name, spec in registry().items() if not spec["parent"])
    plain = tap_config(sandbox, decimal_format=decimal_format)
    mapped = tap_config(
        sandbox, decimal_format=decimal_format, stream_maps={name: {} for name in streams}
    )
    fast = tap.run(plain, streams)
    decoded = tap.run(mapped, streams)
    alone = tap.run(plain, collections)  # last: TapRunner keeps one catalog file
    assert fast.records.keys() == decoded.records.keys() == set(streams), "the sandbox fills all"
    assert sum(len(rows) for rows in fast.records.values()) > 5000
    for name in streams:
        assert fast.records[name] == decoded.records[name], name
    for name in collections:
        assert alone.records[name] == decoded.records[name], name
    passed = {name: int(count) for name, count in PASSED.findall(alone.stderr)}
    types = stream_types()
    alike = {name for name in collections if getattr(types[name], "key_object", None) is None}
    assert len(alike) > 35, "all but those whose ids are lifted from inside"
    shaped = {name: len(alone.records[name]) - passed.get(name, 0) for name in alike}
    # As numbers, a stream's first record with an undeclared nested key (the sandbox's
    # custom-fields) teaches the reader that key, and is shaped.
    assert set(shaped.values()) <= ({0} if decimal_format == "string" else {0, 1}), shaped
    if decimal_format == "number":
        assert 1 in shaped.values(), "nested unknown keys are met"
    assert not PASSED.findall(decoded.stderr), "stream maps need every value decoded"


def sync_invoices(
    tap: TapRunner, invoices: list[dict[str, t.Any]] | bytes, **settings: t.Any
) -> Output:
    """Sync ``invoices``, served as one page by a scripted server (as ``json.dumps``
    writes them, or the bytes given)."""
    page = Reply(raw=invoices) if isinstance(invoices, bytes) else Reply(body=invoices)
    with ScriptedServer() as server:
        server.script("/oauth2/token", Reply(body={"access_token": "t", "expires_in": 86399}))
        no_results = {"errors": {"warning": ["No results match your search criteria."]}}
        server.script("/api/invoices", page, Reply(404, no_results))
        # One request at a time: the replies are scripted in order (no probe beside them).
        config = {
            "base_url": server.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "max_concurrency": 1,
            **settings,
        }
        return tap.run(config, ["invoices"])


def test_a_bad_decimal_is_nulled_and_reported_once_and_its_neighbours_kept(
    tap: TapRunner,
) -> None:
    """Through the whole tap: records with every decimal valid take the batched path,
    a record with one bad value the per-value one."""
    plan = DecimalPlan.compile(load_schema("invoices"))
    assert plan is not None
    every = {name: f"{index}.25" for index, name in enumerate(plan.numbers)}
    updated = "2025-03-10T08:00:00-07:00"
    invoices = [
        {"id": 1, "updated-at": updated, **every, "amount-due": "N/A"},
        {"id": 2, "updated-at": updated, **every, "gross-total": "N/A"},
        {"id": 3, "updated-at": updated, **every, "tax-rate": "-0.00"},
    ]
    out = sync_invoices(tap, invoices)
    expected = {name: Decimal(value) for name, value in every.items()}
    got = {r["id"]: {name: r[name] for name in plan.numbers} for r in out.records["invoices"]}
    assert got == {
        1: {**expected, "amount-due": None},
        2: {**expected, "gross-total": None},
        3: {**expected, "tax-rate": Decimal("-0.00")},
    }
    warnings = [line for line in out.stderr.splitlines() if "not a decimal" in line]
    assert len(warnings) == 2, warnings
    assert "amount-due='N/A'" in warnings[0]
    assert "gross-total='N/A'" in warnings[1]


def test_a_record_needing_nothing_goes_out_as_the_bytes_sent(tap: TapRunner) -> None:
    """With decimals as strings, an invoice goes out as Coupa sent it, spaces and all
    (shaping would encode it again, compactly); one with a bad decimal is shaped."""
    updated = "2025-03-10T08:00:00-07:00"
    invoices = [
        {"id": 1, "updated-at": updated, "gross-total": "10.50"},
        {"id": 2, "updated-at": updated, "gross-total": "N/A"},
    ]
    out = sync_invoices(tap, invoices, decimal_format="string")
    first, second = (line for line in out.stdout.splitlines() if '"type":"RECORD"' in line)
    sent = '{"id": 1, "updated-at": "2025-03-10T08:00:00-07:00", "gross-total": "10.50"}'
    assert f'"record":{sent},' in first
    assert '"record":{"id":2,' in second
    assert out.records["invoices"][1]["gross-total"] is None
    assert PASSED.findall(out.stderr) == [("invoices", "1")]


def test_a_number_beyond_a_float_in_a_first_page_record_goes_out_as_sent(tap: TapRunner) -> None:
    """JSON numbers have no range: a custom field holding 1e400 is a value like any other.

    The reader learning the first page's key order decoded its records with floats, so
    such a number failed the whole page (``Number out of range``) where shaping emits it.
    """
    updated = "2025-03-10T08:00:00-07:00"
    page = (
        b'[{"id": 1, "updated-at": "%s", "gross-total": "10.50", "custom-fields": {"x": 1e400}}]'
        % updated.encode()
    )
    for settings in ({}, {"stream_maps": {"invoices": {}}}):
        out = sync_invoices(tap, page, decimal_format="string", **settings)
        [record] = out.records["invoices"]
        assert record["custom-fields"] == {"x": Decimal("1e400")}, settings
        assert record["gross-total"] == "10.50"

"""request_fields: Coupa ``fields`` from the catalog; trimmed responses; the sandbox's side."""

from __future__ import annotations

import json
import logging
import typing as t
import urllib.parse
import urllib.request

import httpx
import pytest

from coupa_sandbox import NEWER_RELEASE_FIELD, Sandbox
from coupa_sandbox.__main__ import build_parser, config_from_args
from coupa_sandbox.query import DEFAULT_FILTER, DEFAULT_FILTER_STREAMS
from tap_coupa.collection import CollectionStream
from tap_coupa.projection import render
from tap_coupa.query import query_key
from tap_coupa.resources import MAX_URL_LENGTH, SCAN_PARAMS_LENGTH
from tap_coupa.streams import load_schema
from tap_coupa.tap import TapCoupa
from tests.helpers import CLIENT_ID, CLIENT_SECRET, TapRunner, tap_config
from tests.scripted import Reply, ScriptedServer

KEYS = {"id", "updated-at"}
TRIMMED = "API response filter"


def half(stream: str, keep: t.Collection[str] = ()) -> list[str]:
    """Half of a stream's top-level properties to deselect: the nested ones first (the
    widest in a projection), then every other scalar; never id, the bookmark or ``keep``.

    (Every other property alphabetically leaves invoices a 10,529-character URL.)
    """
    properties = load_schema(stream)["properties"]
    candidates = sorted(set(properties) - KEYS - {"extra-fields", *keep})
    nested = [n for n in candidates if properties[n].get("properties") or _items(properties[n])]
    scalars = [n for n in candidates if n not in nested]
    return [*nested, *scalars[::2], *scalars[1::2]][: len(properties) // 2]


def _items(prop: dict[str, t.Any]) -> bool:
    return bool((prop.get("items") or {}).get("properties"))


def names(projection: list[t.Any]) -> set[str]:
    """The top-level names of a rendered projection."""
    return {item if isinstance(item, str) else next(iter(item)) for item in projection}


def entry(projection: list[t.Any], name: str) -> t.Any:
    return next(item[name] for item in projection if isinstance(item, dict) and name in item)


def selected(stream: str, dropped: t.Collection[str], skip: t.Collection[str] = ()) -> set[str]:
    kept = set(load_schema(stream)["properties"]) - set(dropped) - {"extra-fields", *skip}
    return {query_key(name) for name in kept}


@pytest.mark.sandbox
@pytest.mark.parametrize("on", [True, False], ids=["request_fields", "default"])
def test_the_projection_sent_is_the_catalog_selection(tap: TapRunner, on: bool) -> None:
    """Half of the invoices' properties and half of the lines' are deselected; the
    invoices' own ``invoice-lines`` too, so the array carries what the child needs."""
    parent_dropped = [*half("invoices", keep={"custom-fields", "currency"}), "invoice-lines"]
    child_dropped = half("invoice_lines", keep={"account"})
    with ScriptedServer() as server:
        server.script("/oauth2/token", Reply(body={"access_token": "t", "expires_in": 86399}))
        server.script("/api/invoices", Reply(body=[]))
        config = {
            "base_url": server.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "request_fields": on,
        }
        tap.run(
            config,
            ["invoices", "invoice_lines"],
            deselect={"invoices": parent_dropped, "invoice_lines": child_dropped},
        )
    requests = server.requests_to("/api/invoices")
    [sent] = {dict(request.query).get("fields") for request in requests}
    if not on:
        assert sent is None
        return
    assert sent is not None
    projection = json.loads(sent)
    assert names(projection) == selected("invoices", parent_dropped) | {"invoice_lines"}
    assert entry(projection, "custom_fields") == {}
    lines = entry(projection, "invoice_lines")
    assert names(lines) == selected("invoice_lines", child_dropped, skip=["invoice-id"])
    assert "code" in entry(lines, "account")
    assert "code" in entry(projection, "currency")


@pytest.mark.sandbox
def test_deselected_fields_are_not_transferred_and_newer_ones_arrive(
    fresh_sandbox: Sandbox, tap: TapRunner
) -> None:
    """``extra_fields`` asks for a field R39 lacks by name (it implies request_fields)."""
    dropped = half("invoices")
    options = {"invoices": {"extra_fields": [query_key(NEWER_RELEASE_FIELD)]}}
    fresh_sandbox.reset_stats()
    whole = tap.run(tap_config(fresh_sandbox), ["invoices"], deselect={"invoices": dropped})
    whole_bytes = fresh_sandbox.stats()["body_bytes"]
    fresh_sandbox.reset_stats()
    out = tap.run(
        tap_config(fresh_sandbox, stream_options=options),
        ["invoices"],
        deselect={"invoices": dropped},
    )
    assert fresh_sandbox.stats()["body_bytes"] < whole_bytes / 1.5, out.stderr[-3000:]
    assert (
        out.ids("invoices")
        == whole.ids("invoices")
        == {r["id"] for r in fresh_sandbox.records("invoices")}
    )
    newer = [r.pop("extra-fields", {}).get(NEWER_RELEASE_FIELD) for r in out.records["invoices"]]
    assert all(newer), "the newer field arrives under extra-fields"
    assert out.records["invoices"] == whole.records["invoices"]


@pytest.mark.sandbox
def test_child_rows_get_what_the_child_selects(sandbox: Sandbox, tap: TapRunner) -> None:
    """The lines' custom fields are not in the invoices' schema for ``invoice-lines``:
    the invoices' projection asks for them because the child stream selects them."""
    dropped = {
        "invoices": half("invoices", keep={"invoice-lines"}),
        "invoice_lines": half("invoice_lines", keep={"custom-fields"}),
    }
    streams = ["invoices", "invoice_lines"]
    whole = tap.run(tap_config(sandbox), streams, deselect=dropped)
    projected = tap.run(tap_config(sandbox, request_fields=True), streams, deselect=dropped)
    assert "requesting every field" not in projected.stderr
    assert len(whole.records["invoice_lines"]) == sandbox.counts()["invoice_lines"] > 0
    assert any(r.get("custom-fields") for r in whole.records["invoice_lines"])
    assert projected.records["invoice_lines"] == whole.records["invoice_lines"]


@pytest.mark.unit
def test_every_request_url_stays_under_the_limit(caplog: pytest.LogCaptureFixture) -> None:
    """Everything selected: narrow streams are projected, the widest fall back, warned once."""
    base = "https://acme.coupahost.com"
    tap = TapCoupa(
        config={"base_url": base, "client_id": "a", "client_secret": "b", "request_fields": True},
        validate_config=False,
    )
    projected, whole = [], []
    with caplog.at_level(logging.WARNING, logger="tap-coupa"):
        for stream in tap.streams.values():
            if not isinstance(stream, CollectionStream):
                continue
            for _ in range(2):  # the prefetch and the scan ask for the same parameters
                params = stream._scan(None, None).params
            url = httpx.URL(f"{base}/api/{stream.path}", params=params)
            assert len(str(url)) + SCAN_PARAMS_LENGTH <= MAX_URL_LENGTH, stream.name
            (projected if "fields" in dict(params) else whole).append(stream.name)
    assert "currencies" in projected
    assert "invoices" in whole
    warned = [r.getMessage() for r in caplog.records if "requesting every field" in r.getMessage()]
    assert sorted(m.split("'")[1] for m in warned) == sorted(whole)


def trimmed_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if TRIMMED in line]


@pytest.mark.sandbox
@pytest.mark.parametrize("decimal_format", ["number", "string"])
def test_trimmed_responses_are_reported_once(
    fresh_sandbox: Sandbox, tap: TapRunner, decimal_format: str
) -> None:
    """Records passed through as sent (decimals as strings) are sampled by their keys too."""
    streams = ["invoices", "suppliers"]
    config = tap_config(fresh_sandbox, decimal_format=decimal_format)
    quiet = tap.run(config, streams)
    assert trimmed_warnings(quiet.stderr) == []
    fresh_sandbox.set_default_response_filter(True)
    out = tap.run(config, streams)
    [warning] = trimmed_warnings(out.stderr)
    assert "'invoices'" in warning
    assert "request_fields" in warning
    assert out.ids("invoices") == quiet.ids("invoices")


@pytest.mark.sandbox
def test_request_fields_overrides_a_default_response_filter(
    fresh_sandbox: Sandbox, tap: TapRunner
) -> None:
    dropped = {"invoices": half("invoices")}
    unfiltered = tap.run(tap_config(fresh_sandbox), ["invoices"], deselect=dropped)
    fresh_sandbox.set_default_response_filter(True)
    config = tap_config(fresh_sandbox, request_fields=True)
    out = tap.run(config, ["invoices"], deselect=dropped)
    assert trimmed_warnings(out.stderr) == []
    assert out.records["invoices"] == unfiltered.records["invoices"]


def get(sb: Sandbox, token: str, stream: str, **params: str) -> t.Any:
    query = urllib.parse.urlencode({"limit": "5", **params})
    request = urllib.request.Request(
        f"{sb.url}{sb.path(stream)}?{query}",
        headers={"Accept": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def unlimited() -> t.Iterator[Sandbox]:
    with Sandbox(seed=7, rate_limit=None) as sb:
        yield sb


@pytest.mark.sandbox
def test_the_sandbox_serves_fields_on_every_endpoint(unlimited: Sandbox) -> None:
    """Top-level names, a nested association's fields, and every custom field."""
    token = unlimited.issue_token()
    for stream in unlimited.streams():
        full = {r["id"]: r for r in unlimited.records(stream)}
        sample = next(iter(full.values()))
        association = next((k for k, v in sample.items() if isinstance(v, dict) and "id" in v), "")
        fields = [
            "id",
            {"custom_fields": {}},
            *([{query_key(association): ["id"]}] * bool(association)),
        ]
        for record in get(unlimited, token, stream, fields=json.dumps(fields)):
            expected = {"id", "custom-fields", association} & full[record["id"]].keys()
            assert record.keys() == expected, stream
            assert record.get("custom-fields") == full[record["id"]].get("custom-fields")
            if isinstance(record.get(association), dict):
                assert record[association].keys() == {"id"}, stream


@pytest.mark.sandbox
def test_the_sandbox_default_response_filter(unlimited: Sandbox) -> None:
    token = unlimited.issue_token()
    admin = f"{unlimited.url}/_sandbox/response-filter"

    def switch(on: bool) -> t.Any:
        body = json.dumps({"default": on}).encode()
        with urllib.request.urlopen(urllib.request.Request(admin, data=body), timeout=60) as r:
            return json.load(r)

    try:
        assert switch(True) == {"default": True}
        for stream in unlimited.streams():
            records = get(unlimited, token, stream)
            if stream in DEFAULT_FILTER_STREAMS:
                assert all(r.keys() <= DEFAULT_FILTER.keys() for r in records), stream
                asked = get(unlimited, token, stream, fields='["id","created_at"]')
                assert all(r.keys() == {"id", "created-at"} for r in asked), stream
            else:
                assert len(records[0]) > len(DEFAULT_FILTER), stream
    finally:
        assert switch(False) == {"default": False}
    assert len(get(unlimited, token, "invoices")[0]) > len(DEFAULT_FILTER)


@pytest.mark.unit
def test_the_sandbox_cli_switches_the_default_response_filter() -> None:
    parser = build_parser()
    assert config_from_args(
        parser.parse_args(["--default-response-filter"])
    ).default_response_filter
    assert not config_from_args(parser.parse_args([])).default_response_filter


@pytest.mark.unit
def test_ancestor_ids_the_tap_adds_are_not_asked_of_coupa() -> None:
    """An allocation row gets ``invoice-id`` from the tap (its grandparent's id), not from
    Coupa: R39's allocations have no such field, so the projection must not name it."""
    tap = TapCoupa(
        config={"base_url": "https://acme.coupahost.com", "client_id": "a", "client_secret": "b"},
        validate_config=False,
    )
    checked = 0
    for stream in tap.streams.values():
        for child in stream.child_streams:
            for grandchild in child.child_streams:
                added = {grandchild.parent_key, *grandchild.ancestor_keys} - {None}
                rows = entry(render(child.projection()), query_key(grandchild.array_field))
                assert not names(rows) & {query_key(k) for k in added}, grandchild.name
                checked += 1
    assert checked >= 5


@pytest.mark.unit
def test_extra_fields_left_out_with_a_projection_too_long_are_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Invoices with every property selected fall back to no projection: the newer
    fields asked for in ``extra_fields`` are then not asked for, and the warning said
    only 'requesting every field instead'."""
    tap = TapCoupa(
        config={
            "base_url": "https://acme.coupahost.com",
            "client_id": "a",
            "client_secret": "b",
            "stream_options": {"invoices": {"extra_fields": ["carbon_footprint_kg"]}},
        },
        validate_config=False,
    )
    stream = tap.streams["invoices"]
    assert isinstance(stream, CollectionStream)
    with caplog.at_level(logging.WARNING, logger="tap-coupa"):
        params = stream._scan(None, None).params
    assert "fields" not in dict(params)
    [warning] = [r.getMessage() for r in caplog.records if "every field" in r.getMessage()]
    assert "extra_fields" in warning
    assert "carbon_footprint_kg" in warning

"""Per-stream fields, filters and return_object; unknown fields kept, not dropped."""

from __future__ import annotations

import json
import typing as t
from collections import Counter

import pytest
from jsonschema import Draft7Validator

from coupa_sandbox import NEWER_RELEASE_FIELD, Sandbox
from tap_coupa.instants import parse_instant
from tests.helpers import TapRunner, run_tap, tap_config
from tests.scripted import Reply, ScriptedServer

pytestmark = pytest.mark.sandbox


def test_filters_and_fields_projection(sandbox: Sandbox, tap: TapRunner) -> None:
    records = sandbox.records("invoices")
    status, expected_count = Counter(r["status"] for r in records if r.get("status")).most_common(
        1
    )[0]
    options = {
        "invoices": {
            "filters": {"status": status},
            "fields": ["invoice_number", {"supplier": ["id", "name"]}],
        }
    }
    out = tap.run(tap_config(sandbox, stream_options=options), ["invoices"])
    got = out.records["invoices"]
    assert len(got) == expected_count
    assert {r["id"] for r in got} == {r["id"] for r in records if r.get("status") == status}
    for record in got:
        present = {k for k, v in record.items() if v is not None}
        # id and updated-at are added to the projection: the scan and bookmark need them.
        assert present <= {"id", "updated-at", "invoice-number", "supplier"}, present
        assert "updated-at" in present
        if record.get("supplier"):
            assert set(record["supplier"]) <= {"id", "name"}


@pytest.mark.parametrize(
    "fields",
    ['["invoice_number", {"supplier": ["id", "name"]}]', {"supplier": ["id", "name"]}],
    ids=["json-text", "one-object"],
)
def test_fields_as_text_or_object_still_get_id_and_bookmark(
    sandbox: Sandbox, tap: TapRunner, fields: object
) -> None:
    """A projection written as JSON text (an env var, a UI) or a single object works too."""
    out = tap.run(
        tap_config(sandbox, stream_options={"invoices": {"fields": fields}}), ["invoices"]
    )
    assert out.ids("invoices") == {r["id"] for r in sandbox.records("invoices")}
    assert all(r.get("updated-at") for r in out.records["invoices"])
    assert any(r.get("supplier") for r in out.records["invoices"])
    assert all(
        set(r["supplier"]) <= {"id", "name"} for r in out.records["invoices"] if r.get("supplier")
    )
    assert out.state["bookmarks"]["invoices"]["replication_key_value"]


def test_return_object_limited(sandbox: Sandbox, tap: TapRunner) -> None:
    options = {"suppliers": {"return_object": "limited"}}
    out = tap.run(tap_config(sandbox, stream_options=options), ["suppliers"])
    assert out.ids("suppliers") == {r["id"] for r in sandbox.records("suppliers")}
    assert all(r.get("name") is None for r in out.records["suppliers"])


def test_unknown_fields_are_kept_and_reported_once(sandbox: Sandbox, tap: TapRunner) -> None:
    options = {"invoices": {"fields": ["invoice_number", NEWER_RELEASE_FIELD.replace("-", "_")]}}
    out = tap.run(tap_config(sandbox, stream_options=options), ["invoices"])
    with_field = [
        r for r in out.records["invoices"] if NEWER_RELEASE_FIELD in (r.get("extra-fields") or {})
    ]
    assert with_field, "a field the schema does not know arrives under extra-fields"
    assert "extra-fields" in out.schemas["invoices"]["schema"]["properties"]
    reports = [line for line in out.stderr.splitlines() if "kept under 'extra-fields'" in line]
    assert len(reports) == 1
    assert NEWER_RELEASE_FIELD in reports[0]


def test_custom_fields_arrive_whole(sandbox: Sandbox, tap: TapRunner) -> None:
    out = tap.run(tap_config(sandbox), ["suppliers"])
    expected = {r["id"]: r.get("custom-fields") for r in sandbox.records("suppliers")}
    assert {r["id"]: r.get("custom-fields") for r in out.records["suppliers"]} == expected
    assert any(expected.values())


def discover(tap: TapRunner, config: dict) -> dict:
    path = tap.tmp_path / "discover.json"
    path.write_text(json.dumps(config))
    done = run_tap(["--config", str(path), "--discover"], check=True)
    return {e["tap_stream_id"]: e["schema"] for e in json.loads(done.stdout)["streams"]}


def test_discovery_is_offline_by_default(tap: TapRunner) -> None:
    schemas = discover(
        tap, {"base_url": "https://127.0.0.1:9", "client_id": "a", "client_secret": "b"}
    )
    assert len(schemas) >= 75
    assert "properties" not in schemas["suppliers"]["properties"]["custom-fields"]


def test_discover_custom_fields_from_the_live_instance(sandbox: Sandbox, tap: TapRunner) -> None:
    schemas = discover(tap, tap_config(sandbox, discover_custom_fields=True))
    expected = {k for r in sandbox.records("suppliers") for k in (r.get("custom-fields") or {})}
    assert expected
    found = schemas["suppliers"]["properties"]["custom-fields"]["properties"]
    assert set(found) == expected
    assert all("null" in prop["type"] for prop in found.values())


def test_a_custom_field_empty_on_the_discovered_page_is_not_typed_as_text(
    tap: TapRunner,
) -> None:
    """A custom field null in every record of the page ``--discover`` reads was declared
    ``["string", "null"]``: once a record gave it a value of another kind (a lookup
    value, an object in Coupa's JSON), the record broke its schema, and an SDK target,
    which validates every record, failed the load (``{...} is not of type 'string',
    'null'``). Nothing was seen of its type, so nothing is declared for it."""
    lookup = {"id": 12, "name": "EMEA", "external-ref-num": "R-12"}
    sampled = [{"id": n, "custom-fields": {"region": None, "code": f"C{n}"}} for n in (1, 2)]
    synced = {"id": 3, "updated-at": "2024-05-01T10:00:00-07:00"}
    synced["custom-fields"] = {"region": lookup, "code": "C3"}
    no_results = {"errors": {"warning": ["No results match your search criteria."]}}
    with ScriptedServer() as server:
        server.script("/oauth2/token", Reply(body={"access_token": "t", "expires_in": 86399}))
        # --discover reads the first page, the sync the next two replies, one at a time.
        replies = [Reply(body=sampled), Reply(body=[synced]), Reply(404, no_results)]
        server.script("/api/lookups", *replies)
        config = {
            "base_url": server.url,
            "client_id": "c",
            "client_secret": "s",
            "discover_custom_fields": True,
            "max_concurrency": 1,
        }
        out = tap.run(config, ["lookups"])
    [record] = out.records["lookups"]
    assert record["custom-fields"] == synced["custom-fields"]
    schema = out.schemas["lookups"]["schema"]
    assert schema["properties"]["custom-fields"]["properties"]["code"]["type"] == [
        "string",
        "null",
    ]
    assert [e.message for e in Draft7Validator(schema).iter_errors(record)] == []


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ({"fields": ["invoice_number"]}, ("stream_options.invoices.fields", "invoice_lines")),
        ({"return_object": "limited"}, ("stream_options.invoices.return_object", "invoice-lines")),
    ],
    ids=["fields", "return-object"],
)
def test_options_that_drop_a_selected_child_streams_rows_are_refused(
    sandbox: Sandbox, tap: TapRunner, option: dict[str, t.Any], expected: tuple[str, ...]
) -> None:
    """The lines' rows come from the invoices' ``invoice-lines``: a ``fields`` without it
    (or a ``return_object``) emitted no line, silently, and the bookmark the scan left
    covered the lines too, so a later sync would not read them again."""
    before = requests(sandbox)
    out = tap.run(
        tap_config(sandbox, stream_options={"invoices": option}),
        ["currencies", "invoices", "invoice_lines"],  # currencies would sync first
        check=False,
    )
    assert out.returncode == 1, out.stderr[-2000:]
    assert requests(sandbox) == before, "refused before any API request"
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if "| ERROR" in line]
    assert any(all(word in line for word in expected) for line in errors), errors
    assert not out.records.get("invoice_lines")
    assert not out.state.get("bookmarks", {}).get("invoices")
    named = {"fields": ["invoice_number", {"invoice_lines": ["id", "line_num"]}]}
    lines = tap.run(
        tap_config(sandbox, stream_options={"invoices": named}), ["invoices", "invoice_lines"]
    ).records["invoice_lines"]
    assert len(lines) == sandbox.counts()["invoice_lines"] > 0


def test_a_filter_on_the_bookmark_key_is_refused(sandbox: Sandbox, tap: TapRunner) -> None:
    """``updated_at[gt_or_eq]`` is the tap's bookmark filter, sent after the user's:
    Coupa keeps the last of repeated keys, so the user's filter was dropped without a
    word (every invoice since start_date was read). ``updated_at[gt]`` combines."""
    stamps = sorted(r["updated-at"] for r in sandbox.records("invoices"))
    middle = stamps[len(stamps) // 2]
    since = {"start_date": "2000-01-01T00:00:00Z"}
    before = requests(sandbox)
    refused = tap.run(
        tap_config(
            sandbox,
            **since,
            stream_options={"invoices": {"filters": {"updated_at[gt_or_eq]": middle}}},
        ),
        ["currencies", "invoices"],
        check=False,
    )
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert requests(sandbox) == before, "refused before any API request"
    errors = [line for line in refused.stderr.splitlines() if "| ERROR" in line]
    assert any("updated_at[gt_or_eq]" in line and "updated_at[gt]" in line for line in errors)
    assert not refused.records.get("invoices")
    out = tap.run(
        tap_config(
            sandbox, **since, stream_options={"invoices": {"filters": {"updated_at[gt]": middle}}}
        ),
        ["invoices"],
    )
    assert out.records["invoices"]
    after = parse_instant(middle)
    assert all(parse_instant(r["updated-at"]) > after for r in out.records["invoices"])


def requests(sandbox: Sandbox) -> int:
    """The API requests the sandbox has answered (not the token's: see ``ahead``)."""
    by_class = sandbox.state.stats.snapshot()["by_class"]
    return sum(n for kind, n in by_class.items() if kind != "token")

"""The bundled Coupa sandbox: Coupa's API semantics, faults, mutation, admin API."""

from __future__ import annotations

import itertools
import json
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from coupa_sandbox import NEWER_RELEASE_FIELD, Sandbox, SandboxConfig
from coupa_sandbox.__main__ import build_parser, config_from_args
from coupa_sandbox.schema import Node

pytestmark = pytest.mark.sandbox

LA = ZoneInfo("America/Los_Angeles")
JSON = {"Accept": "application/json"}
RECORDS = {"invoices": 60, "suppliers": 60, "users": 40, "currencies": 10}


def instant(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(seed=3, rate_limit=None, records=RECORDS)) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def client(sb: Sandbox) -> Iterator[httpx.Client]:
    token = sb.issue_token()
    headers = {**JSON, "Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=sb.url, headers=headers, timeout=10) as c:
        yield c


def fetch_all(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Page through a query the way a tap does; Coupa ends with a 404 'no results'."""
    out: list[dict[str, Any]] = []
    while True:
        response = client.get(path, params={**params, "offset": len(out)})
        if response.status_code == 404:
            assert "No results" in response.json()["errors"]["warning"][0]
            return out
        assert response.status_code == 200, response.text
        out.extend(response.json())


def token_form(**overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
    }
    form.update(overrides)
    return form


# -- OAuth ------------------------------------------------------------------------------


def test_token_flow_grants_requested_scopes(sb: Sandbox) -> None:
    response = httpx.post(
        f"{sb.url}/oauth2/token", data=token_form(scope="core.invoice.read core.supplier.read")
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86399
    assert body["scope"] == "core.invoice.read core.supplier.read"
    assert "refresh_token" not in body
    api = httpx.get(
        f"{sb.url}/api/invoices",
        headers={**JSON, "Authorization": f"Bearer {body['access_token']}"},
    )
    assert api.status_code == 200
    assert len(api.json()) == 50
    denied = httpx.get(
        f"{sb.url}/api/users",
        headers={**JSON, "Authorization": f"Bearer {body['access_token']}"},
    )
    assert denied.status_code == 403
    assert denied.json() == {"errors": {"error": ["Missing scope core.user.read"]}}


def test_token_without_scope_gets_every_read_scope(sb: Sandbox) -> None:
    body = httpx.post(f"{sb.url}/oauth2/token", data=token_form()).json()
    assert set(body["scope"].split()) == sb.state.registry.scopes


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        (token_form(client_secret="wrong"), 401, "invalid_client"),
        (token_form(client_id="someone-else"), 401, "invalid_client"),
        (token_form(scope="core.invoice.write"), 400, "invalid_scope"),
        (token_form(grant_type="password"), 400, "unsupported_grant_type"),
    ],
)
def test_token_errors(sb: Sandbox, form: dict[str, str], status: int, error: str) -> None:
    response = httpx.post(f"{sb.url}/oauth2/token", data=form)
    assert response.status_code == status
    assert response.json() == {"error": error}


def test_allowed_scopes_limit_what_a_client_may_request() -> None:
    config = SandboxConfig(rate_limit=None, allowed_scopes=frozenset({"core.invoice.read"}))
    with Sandbox(config) as sandbox:
        refused = httpx.post(f"{sandbox.url}/oauth2/token", data=token_form(scope="core.user.read"))
        assert refused.json() == {"error": "invalid_scope"}
        granted = httpx.post(f"{sandbox.url}/oauth2/token", data=token_form()).json()
        assert granted["scope"] == "core.invoice.read"


def test_unknown_and_expired_tokens_are_unauthorized(sb: Sandbox) -> None:
    bogus = httpx.get(f"{sb.url}/api/invoices", headers={**JSON, "Authorization": "Bearer nope"})
    assert bogus.status_code == 401
    assert bogus.json() == {"errors": {"error": ["Unauthorized"]}}
    with Sandbox(SandboxConfig(rate_limit=None, token_ttl=1)) as short:
        body = httpx.post(f"{short.url}/oauth2/token", data=token_form()).json()
        assert body["expires_in"] == 1
        headers = {**JSON, "Authorization": f"Bearer {body['access_token']}"}
        assert httpx.get(f"{short.url}/api/currencies", headers=headers).status_code == 200
        time.sleep(1.1)
        assert httpx.get(f"{short.url}/api/currencies", headers=headers).status_code == 401


def test_legacy_api_key_has_every_scope(sb: Sandbox) -> None:
    ok = httpx.get(f"{sb.url}/api/users", headers={**JSON, "X-COUPA-API-KEY": "sandbox-api-key"})
    assert ok.status_code == 200
    wrong = httpx.get(f"{sb.url}/api/users", headers={**JSON, "X-COUPA-API-KEY": "guess"})
    assert wrong.status_code == 401


def test_unknown_path_is_404(client: httpx.Client) -> None:
    assert client.get("/api/no_such_resource").status_code == 404
    assert client.get("/api").status_code == 404


# -- formats ----------------------------------------------------------------------------


def test_json_only_with_accept_header_otherwise_xml(sb: Sandbox, client: httpx.Client) -> None:
    as_json = client.get("/api/invoices", params={"limit": 5})
    assert as_json.headers["content-type"] == "application/json; charset=utf-8"
    assert "date" in as_json.headers
    as_xml = client.get("/api/invoices", params={"limit": 5}, headers={"Accept": "*/*"})
    assert as_xml.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(as_xml.content)
    assert root.tag == "invoices"
    assert root.get("type") == "array"
    assert [int(e.findtext("id") or 0) for e in root] == [r["id"] for r in as_json.json()]
    first = root[0]
    assert first.find("id").get("type") == "integer"  # type: ignore[union-attr]
    assert first.find("updated-at").get("type") == "datetime"  # type: ignore[union-attr]
    lines = first.find("invoice-lines")
    assert lines is not None
    assert lines.get("type") == "array"
    assert all(child.tag == "invoice-line" for child in lines)
    ignored = client.get(
        "/api/invoices", params={"limit": 1, "format": "json"}, headers={"Accept": "*/*"}
    )
    assert ignored.headers["content-type"].startswith("application/xml")


def test_single_record_by_id(sb: Sandbox, client: httpx.Client) -> None:
    record = sb.records("suppliers")[4]
    response = client.get(f"/api/suppliers/{record['id']}")
    assert response.json() == record
    assert client.get("/api/suppliers/999999999").status_code == 404


# -- paging and ordering ----------------------------------------------------------------


def test_limit_is_capped_at_50_and_offset_skips(sb: Sandbox, client: httpx.Client) -> None:
    ids = [r["id"] for r in sb.records("invoices")]
    assert [r["id"] for r in client.get("/api/invoices", params={"limit": 500}).json()] == ids[:50]
    page = client.get("/api/invoices", params={"limit": 7, "offset": 3}).json()
    assert [r["id"] for r in page] == ids[3:10]
    assert [r["id"] for r in fetch_all(client, "/api/invoices")] == ids
    assert ids == sorted(ids)
    assert any(b - a > 1 for a, b in itertools.pairwise(ids)), "ids have gaps"


@pytest.mark.parametrize("order_by", ["updated_at", "updated-at"])
def test_order_by_with_ties_broken_by_id(client: httpx.Client, order_by: str) -> None:
    asc = fetch_all(client, "/api/invoices", order_by=order_by)
    keys = [(instant(r["updated-at"]), r["id"]) for r in asc]
    assert keys == sorted(keys)
    desc = fetch_all(client, "/api/invoices", order_by=order_by, dir="desc")
    assert [(instant(r["updated-at"]), r["id"]) for r in desc] == sorted(keys, reverse=True)
    pivot = asc[len(asc) // 2]["updated-at"]  # bookmarks: a range on the order key
    after = fetch_all(client, "/api/invoices", order_by=order_by, **{"updated_at[gt]": pivot})
    assert [(instant(r["updated-at"]), r["id"]) for r in after] == [
        k for k in keys if k[0] > instant(pivot)
    ]
    down = fetch_all(
        client, "/api/invoices", order_by=order_by, dir="desc", **{"updated_at[lt_or_eq]": pivot}
    )
    assert [(instant(r["updated-at"]), r["id"]) for r in down] == sorted(
        (k for k in keys if k[0] <= instant(pivot)), reverse=True
    )


def test_order_by_a_non_indexed_field(sb: Sandbox, client: httpx.Client) -> None:
    got = [r["id"] for r in fetch_all(client, "/api/suppliers", order_by="name")]
    expected = sorted(
        sb.records("suppliers"), key=lambda r: ((r["name"] or "").casefold(), r["id"])
    )
    assert got == [r["id"] for r in expected]
    bad = client.get("/api/suppliers", params={"order_by": "nope"})
    assert bad.status_code == 400
    assert "order_by" in bad.json()["errors"]


# -- filters ----------------------------------------------------------------------------


def _expected(records: list[dict[str, Any]], keep: Any) -> list[int]:
    return [r["id"] for r in records if keep(r)]


def test_every_filter_operator(sb: Sandbox, client: httpx.Client) -> None:
    records = sb.records("invoices")
    mid = records[len(records) // 2]
    total = Decimal(mid["gross-total"])
    status = mid["status"]
    number = mid["invoice-number"]
    some_ids = [records[1]["id"], records[5]["id"], records[9]["id"]]
    props = sb.state.registry["invoices"].schema.props
    sparse = next(  # a text property some invoices leave empty
        p for p, node in props.items()
        if node.kind == "string" and {r[p] is None for r in records} == {True, False}
    )  # fmt: skip
    cases: list[tuple[dict[str, str], Any]] = [
        ({"status": status}, lambda r: r["status"] == status),
        ({"id[gt]": str(mid["id"])}, lambda r: r["id"] > mid["id"]),
        ({"id[lt]": str(mid["id"])}, lambda r: r["id"] < mid["id"]),
        ({"id[gt_or_eq]": str(mid["id"])}, lambda r: r["id"] >= mid["id"]),
        ({"id[lt_or_eq]": str(mid["id"])}, lambda r: r["id"] <= mid["id"]),
        ({"status[not_eq]": status}, lambda r: r["status"] is not None and r["status"] != status),
        (
            {"gross_total[gt]": str(total)},
            lambda r: r["gross-total"] is not None and Decimal(r["gross-total"]) > total,
        ),
        (
            {"invoice_number[contains]": number[-2:]},
            lambda r: number[-2:] in (r["invoice-number"] or ""),
        ),
        (
            {"invoice_number[starts_with]": "inv-10"},
            lambda r: (r["invoice-number"] or "").startswith("INV-10"),
        ),
        (
            {"invoice_number[ends_with]": number[-1]},
            lambda r: (r["invoice-number"] or "").endswith(number[-1]),
        ),
        ({"id[in]": ",".join(map(str, some_ids))}, lambda r: r["id"] in some_ids),
        ({"id[not_in]": ",".join(map(str, some_ids))}, lambda r: r["id"] not in some_ids),
        ({f"{sparse.replace('-', '_')}[blank]": "true"}, lambda r: r[sparse] in (None, "")),
        ({f"{sparse.replace('-', '_')}[blank]": "false"}, lambda r: r[sparse] not in (None, "")),
        ({"exported": "false"}, lambda r: r["exported"] is False),
    ]
    for params, keep in cases:
        got = [r["id"] for r in fetch_all(client, "/api/invoices", **params)]
        expected = _expected(records, keep)
        assert expected, f"{params} should match something for the test to mean anything"
        assert got == expected, params


def test_datetime_filters_compare_instants_across_offsets(
    sb: Sandbox, client: httpx.Client
) -> None:
    records = sb.records("invoices")
    offsets = Counter(r["updated-at"][-6:] for r in records)
    assert offsets["-07:00"], "data spans both DST offsets"
    assert offsets["-08:00"], "data spans both DST offsets"
    pivot = records[len(records) // 3]["updated-at"]
    moment = datetime.fromisoformat(pivot)
    expected = _expected(records, lambda r: instant(r["updated-at"]) >= moment.timestamp())
    for spelled in (
        pivot,
        moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        moment.astimezone(timezone(timedelta(hours=2))).isoformat(),  # "+02:00", sent as %2B
    ):
        got = fetch_all(client, "/api/invoices", **{"updated_at[gt_or_eq]": spelled})
        assert [r["id"] for r in got] == expected, spelled
    # A literal "+" decodes to a space: the offset is lost and the wall time is read in
    # the instance zone, as Rails does - a tap must percent-encode it.
    plus = moment.astimezone(timezone(timedelta(hours=2))).isoformat()
    raw = client.get(f"/api/invoices?updated_at[gt_or_eq]={plus}&limit=50")
    wall = datetime.fromisoformat(plus[:19]).replace(tzinfo=LA).timestamp()
    assert [r["id"] for r in raw.json()] == _expected(
        records, lambda r: instant(r["updated-at"]) >= wall
    )[:50]
    assert wall != moment.timestamp()


def test_records_share_updated_at_seconds_in_bursts(sb: Sandbox) -> None:
    counts = Counter(r["updated-at"] for r in Sandbox(SandboxConfig(seed=3)).records("invoices"))
    assert counts.most_common(1)[0][1] >= 20
    # The DST fall-back hour happens twice: same wall time, two instants.
    walls = {value[:19] for value, n in counts.items() if n > 1}
    doubled = [w for w in walls if f"{w}-07:00" in counts and f"{w}-08:00" in counts]
    assert doubled, "bursts in both occurrences of the repeated fall-back hour"


def test_nested_filters(sb: Sandbox, client: httpx.Client) -> None:
    records = sb.records("invoices")
    supplier = next(r["supplier"] for r in records if r["supplier"])
    same = _expected(records, lambda r: (r["supplier"] or {}).get("id") == supplier["id"])
    assert [
        r["id"] for r in fetch_all(client, "/api/invoices", **{"supplier[id]": supplier["id"]})
    ] == same
    assert [r["id"] for r in fetch_all(client, "/api/invoices", supplier_id=supplier["id"])] == same
    by_name = _expected(records, lambda r: (r["supplier"] or {}).get("name") == supplier["name"])
    assert [
        r["id"] for r in fetch_all(client, "/api/invoices", **{"supplier[name]": supplier["name"]})
    ] == by_name
    fragment = supplier["name"][1:4]
    contains = _expected(
        records,
        lambda r: fragment.casefold() in ((r["supplier"] or {}).get("name") or "").casefold(),
    )
    got = fetch_all(client, "/api/invoices", **{"supplier[name][contains]": fragment})
    assert [r["id"] for r in got] == contains
    line = records[2]["invoice-lines"][0]
    through_lines = fetch_all(client, "/api/invoices", **{"invoice_lines[id]": line["id"]})
    assert [r["id"] for r in through_lines] == [records[2]["id"]]


def test_custom_fields_are_queryable_by_name(sb: Sandbox, client: httpx.Client) -> None:
    records = sb.records("invoices")
    key, value = next((k, v) for r in records for k, v in r["custom-fields"].items() if v)
    got = fetch_all(client, "/api/invoices", **{key.replace("-", "_"): value})
    assert [r["id"] for r in got] == _expected(
        records, lambda r: r["custom-fields"].get(key) == value
    )


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"no_such_field": "1"}, "filter"),
        ({"supplier[no_such_field]": "1"}, "filter"),
        ({"updated_at[contains]": "2025"}, "filter"),
        ({"updated_at[gt]": "not a date"}, "filter"),
        ({"fields": "[not json"}, "fields"),
    ],
)
def test_bad_queries_are_400(client: httpx.Client, params: dict[str, str], key: str) -> None:
    response = client.get("/api/invoices", params=params)
    assert response.status_code == 400
    assert key in response.json()["errors"]


# -- response shaping -------------------------------------------------------------------


def test_fields_projection(sb: Sandbox, client: httpx.Client) -> None:
    fields = ["id", "updated_at", {"supplier": ["id", "name"]}, {"custom_fields": {}}]
    page = client.get("/api/invoices", params={"fields": json.dumps(fields), "limit": 10}).json()
    full = {r["id"]: r for r in sb.records("invoices")}
    for record in page:
        assert set(record) == {"id", "updated-at", "supplier", "custom-fields"}
        source = full[record["id"]]
        assert record["custom-fields"] == source["custom-fields"]
        if source["supplier"]:
            assert record["supplier"] == {k: source["supplier"][k] for k in ("id", "name")}
    assert all(NEWER_RELEASE_FIELD not in r for r in full.values())
    newer = client.get("/api/invoices", params={"fields": json.dumps(["id", NEWER_RELEASE_FIELD])})
    assert all(Decimal(r[NEWER_RELEASE_FIELD]) >= 0 for r in newer.json())
    lines = client.get("/api/invoices", params={"fields": '["id",{"invoice_lines":["id"]}]'}).json()
    assert all(set(line) == {"id"} for r in lines for line in r["invoice-lines"])


def test_return_object_limited_and_shallow(sb: Sandbox, client: httpx.Client) -> None:
    limited = client.get("/api/invoices", params={"return_object": "limited"}).json()
    assert all(set(r) == {"id", "created-at", "updated-at"} for r in limited)
    no_times = client.get("/api/currencies", params={"return_object": "limited"}).json()
    assert all(set(r) == {"id"} for r in no_times), "currencies have no timestamps"
    shallow = client.get("/api/invoices", params={"return_object": "shallow"}).json()
    assert all("invoice-lines" not in r for r in shallow)
    suppliers = [r["supplier"] for r in shallow if r["supplier"]]
    assert suppliers
    assert all(set(s) == {"id"} for s in suppliers)
    assert all("status" in r for r in shallow)


# -- data -------------------------------------------------------------------------------


def _walk(value: Any, node: Node, found: Counter[str]) -> None:
    if value is None:
        return
    if node.kind == "number":
        assert isinstance(value, str), value
        Decimal(value)
        found["number"] += 1
    elif node.kind == "datetime":
        parsed = datetime.fromisoformat(value)
        assert parsed.utcoffset() == parsed.astimezone(LA).utcoffset(), value
        found["datetime"] += 1
    elif node.kind == "integer":
        assert isinstance(value, int)
        assert not isinstance(value, bool)
    elif node.kind == "boolean":
        assert isinstance(value, bool)
    elif node.kind == "object":
        assert isinstance(value, dict)
        for key, child in value.items():
            assert key in node.props, key
            _walk(child, node.props[key], found)
    elif node.kind == "array" and node.items is not None:
        for item in value:
            _walk(item, node.items, found)


def test_every_top_level_stream_is_served_with_schema_conform_values(sb: Sandbox) -> None:
    headers = {**JSON, "X-COUPA-API-KEY": "sandbox-api-key"}
    found: Counter[str] = Counter()
    with httpx.Client(base_url=sb.url, headers=headers) as c:
        for stream in sb.state.registry.top_level:
            response = c.get(f"/api/{stream.path}", params={"limit": 10})
            assert response.status_code == 200, stream.name
            for record in response.json():
                assert set(record) == set(stream.schema.props), stream.name
                _walk(record, stream.schema, found)
                if record.get("created-at") and record.get("updated-at"):
                    assert instant(record["created-at"]) <= instant(record["updated-at"])
    assert found["number"] > 100
    assert found["datetime"] > 100
    names = [s.name for s in sb.state.registry.top_level]
    child = [s.name for s in sb.state.registry.children]
    assert "invoice_lines" in child
    assert "invoice_lines" not in names


def test_decimals_include_four_places_and_large_values() -> None:
    totals = [r["gross-total"] for r in Sandbox(SandboxConfig(seed=3)).records("invoices")]
    decimals = [t for t in totals if t]
    assert any(len(t.split(".")[1]) == 4 for t in decimals)
    assert any(Decimal(t) > 10_000_000 for t in decimals)


def test_lines_have_unique_ids_and_nested_arrays(sb: Sandbox) -> None:
    records = sb.records("invoices")
    lines = [line for r in records for line in r["invoice-lines"]]
    assert all(1 <= len(r["invoice-lines"]) <= 5 for r in records)
    assert len({line["id"] for line in lines}) == len(lines)
    assert "invoice-id" not in lines[0]  # as in R39: the tap adds its parent key itself
    allocations = [a for line in lines for a in line["account-allocations"]]
    assert allocations
    assert len({a["id"] for a in allocations}) == len(allocations)
    assert any(line["account"] for line in lines)


def test_associations_match_the_referenced_records(sb: Sandbox) -> None:
    suppliers = {s["id"]: s for s in sb.records("suppliers")}
    linked = [r["supplier"] for r in sb.records("invoices") if r["supplier"]]
    assert linked
    assert all(s["id"] in suppliers for s in linked)
    assert all(s["name"] == suppliers[s["id"]]["name"] for s in linked)


def test_custom_fields_use_instance_keys(sb: Sandbox) -> None:
    record = sb.records("invoices")[0]
    assert record["custom-fields"]
    assert not set(record["custom-fields"]) & set(sb.state.registry["invoices"].schema.props)


def test_generation_is_deterministic_and_seeded() -> None:
    first = Sandbox(SandboxConfig(seed=21, records={"invoices": 20})).records("invoices")
    again = Sandbox(SandboxConfig(seed=21, records={"invoices": 20})).records("invoices")
    other = Sandbox(SandboxConfig(seed=22, records={"invoices": 20})).records("invoices")
    assert first == again
    assert first != other


def test_large_streams_clone_prototypes_with_fresh_keys() -> None:
    # No time bound: it was flaky on a loaded machine, and cloning 1,200 invoices
    # measured barely faster than generating them all in full (1.4 s vs 1.8 s).
    sandbox = Sandbox(SandboxConfig(seed=1, records={"invoices": 1200}))
    counts = sandbox.counts()
    assert counts["invoices"] == 1200
    records = sandbox.records("invoices")
    ids = [r["id"] for r in records]
    assert ids == sorted(set(ids))
    assert len({r["invoice-number"] for r in records}) == 1200
    line_ids = [line["id"] for r in records for line in r["invoice-lines"]]
    assert len(line_ids) == len(set(line_ids)) == counts["invoice_lines"]


def test_record_counts_and_scale() -> None:
    config = SandboxConfig(scale=2, records={"invoices": 7})
    assert config.record_count("invoices") == 7
    assert config.record_count("suppliers") == 300
    assert config.record_count("tasks") == 80


def test_records_star_sizes_every_stream_not_named() -> None:
    args = build_parser().parse_args(["--records", "*=7", "invoices=3", "--scale", "2"])
    config = config_from_args(args)
    with Sandbox(config) as sandbox:
        counts = sandbox.counts()
        top = {s.name for s in sandbox.state.registry.top_level}
    assert counts["invoices"] == 3
    assert {name: counts[name] for name in top - {"invoices"}} == dict.fromkeys(
        top - {"invoices"}, 7
    )
    assert "custom_object_vehicles" in top  # custom objects too


# -- rate limit -------------------------------------------------------------------------


def test_rate_limit_answers_429_without_retry_after() -> None:
    with Sandbox(SandboxConfig(rate_limit=0.1, burst=3)) as sandbox:
        headers = {**JSON, "X-COUPA-API-KEY": "sandbox-api-key"}
        responses = [httpx.get(f"{sandbox.url}/api/currencies", headers=headers) for _ in range(8)]
        limited = [r for r in responses if r.status_code == 429]
        assert limited
        assert responses[0].status_code == 200
        assert all("retry-after" not in r.headers for r in limited)
        assert limited[0].json() == {"errors": {"error": ["Rate limit exceeded"]}}
        assert sandbox.stats()["throttled"] == len(limited)
        admin = httpx.get(f"{sandbox.url}/_sandbox/stats")
        assert admin.status_code == 200, "admin endpoints are not rate limited"
        sandbox.set_rate_limit(2, burst=1, retry_after=True)
        httpx.get(f"{sandbox.url}/api/currencies", headers=headers)
        with_header = httpx.get(f"{sandbox.url}/api/currencies", headers=headers)
        assert with_header.status_code == 429
        assert int(with_header.headers["retry-after"]) >= 1


def test_latency_profile_delays_responses_by_latency_and_bandwidth() -> None:
    config = SandboxConfig(rate_limit=None, latency_ms=150)
    with Sandbox(config) as sandbox, httpx.Client(base_url=sandbox.url) as c:
        headers = {**JSON, "X-COUPA-API-KEY": "sandbox-api-key"}
        started = time.perf_counter()
        c.get("/api/currencies", headers=headers, params={"limit": 1})
        assert time.perf_counter() - started >= 0.15
        size = len(c.get("/api/invoices", headers=headers).content)
        sandbox.set_latency(0, bandwidth=size / 0.3)  # the page takes 0.3 s to "transfer"
        started = time.perf_counter()
        c.get("/api/invoices", headers=headers)
        assert time.perf_counter() - started >= 0.3
        # A slowed call would take the whole latency; an unslowed one, on however loaded
        # a machine, takes far less.
        sandbox.set_latency(3000)
        started = time.perf_counter()
        c.get("/_sandbox/stats")
        assert time.perf_counter() - started < 3, "admin calls are not slowed down"
    assert SandboxConfig(profile="realistic").effective_latency_ms() == 300


# -- faults -----------------------------------------------------------------------------


@pytest.fixture
def fresh() -> Iterator[tuple[Sandbox, httpx.Client]]:
    with Sandbox(SandboxConfig(seed=5, rate_limit=None, records={"invoices": 20})) as sandbox:
        headers = {**JSON, "X-COUPA-API-KEY": "sandbox-api-key"}
        with httpx.Client(base_url=sandbox.url, headers=headers, timeout=5) as c:
            yield sandbox, c


def test_page_size_cap_silently_serves_fewer_records_than_limit(
    fresh: tuple[Sandbox, httpx.Client],
) -> None:
    sandbox, c = fresh
    ids = [r["id"] for r in sandbox.records("invoices")]
    capped = httpx.post(f"{sandbox.url}/_sandbox/page-size", json={"page_size": 6})
    assert capped.json() == {"page_size": 6}
    page = c.get("/api/invoices", params={"limit": 50, "offset": 2, "order_by": "id"})
    assert page.status_code == 200
    assert [r["id"] for r in page.json()] == ids[2:8], "no error: just fewer records"
    bad = httpx.post(f"{sandbox.url}/_sandbox/page-size", json={"page_size": 0})
    assert bad.status_code == 400
    assert "page_size" in bad.json()["errors"]["error"][0]
    sandbox.set_page_size(50)
    assert len(c.get("/api/invoices", params={"limit": 50}).json()) == 20


def test_fault_5xx_json_and_html(fresh: tuple[Sandbox, httpx.Client]) -> None:
    sandbox, c = fresh
    sandbox.set_faults({"5xx": {"every": 2, "statuses": [503], "html": 0.0}})
    statuses = [c.get("/api/currencies").status_code for _ in range(4)]
    assert statuses == [200, 503, 200, 503]
    sandbox.set_faults({"5xx": {"every": 1, "statuses": [502], "html": 1.0}})
    page = c.get("/api/currencies")
    assert page.status_code == 502
    assert page.headers["content-type"].startswith("text/html")
    sandbox.set_faults({"5xx": {"every": 1, "statuses": [500], "html": 0.0}})
    assert c.get("/api/currencies").json() == {"errors": {"error": ["Internal error"]}}
    assert sandbox.stats()["faults_injected"]["5xx"] == 4


def test_fault_connection_reset(fresh: tuple[Sandbox, httpx.Client]) -> None:
    sandbox, c = fresh
    sandbox.set_faults({"reset": {"every": 1, "limit": 1}})
    with pytest.raises(httpx.TransportError):
        c.get("/api/currencies")
    assert c.get("/api/currencies").status_code == 200, "limit=1: only one reset"


def test_fault_truncated_body(fresh: tuple[Sandbox, httpx.Client]) -> None:
    sandbox, c = fresh
    sandbox.set_faults({"truncate": {"every": 1}})
    with pytest.raises(httpx.RemoteProtocolError):
        c.get("/api/invoices")


def test_fault_slow_response_outlasts_client_timeout(fresh: tuple[Sandbox, httpx.Client]) -> None:
    sandbox, c = fresh
    sandbox.set_faults({"slow": {"every": 1, "seconds": 1.5}})
    with pytest.raises(httpx.ReadTimeout):
        c.get("/api/currencies", timeout=0.4)


def test_fault_maintenance_page(fresh: tuple[Sandbox, httpx.Client]) -> None:
    sandbox, c = fresh
    sandbox.set_faults({"maintenance": {"every": 1}})
    page = c.get("/api/invoices")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "maintenance" in page.text.lower()


@pytest.mark.parametrize("retry_after", [None, 3])
def test_fault_429_storm(fresh: tuple[Sandbox, httpx.Client], retry_after: int | None) -> None:
    sandbox, c = fresh
    sandbox.set_faults({"storm_429": {"every": 2, "length": 3, "retry_after": retry_after}})
    responses = [c.get("/api/currencies") for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 429, 429, 429, 200]
    assert [r.headers.get("retry-after") for r in responses[1:4]] == [
        None if retry_after is None else str(retry_after)
    ] * 3


def test_fault_short_token_lifetime(fresh: tuple[Sandbox, httpx.Client]) -> None:
    sandbox, _ = fresh
    sandbox.set_faults({"token_lifetime": 1})
    body = httpx.post(sandbox.token_url, data=token_form()).json()
    assert body["expires_in"] == 1
    headers = {**JSON, "Authorization": f"Bearer {body['access_token']}"}
    assert httpx.get(f"{sandbox.url}/api/currencies", headers=headers).status_code == 200
    time.sleep(1.1)
    assert httpx.get(f"{sandbox.url}/api/currencies", headers=headers).status_code == 401


def test_faults_are_seeded_and_cleared(fresh: tuple[Sandbox, httpx.Client]) -> None:
    sandbox, c = fresh
    patterns = []
    for _ in range(2):
        sandbox.set_faults({"seed": 9, "5xx": {"probability": 0.5, "statuses": [500]}})
        patterns.append([c.get("/api/currencies").status_code for _ in range(12)])
    assert patterns[0] == patterns[1]
    assert 500 in patterns[0]
    assert 200 in patterns[0]
    cleared = httpx.post(f"{sandbox.url}/_sandbox/faults", json={})
    assert cleared.json()["config"] == {"seed": 0}
    assert all(c.get("/api/currencies").status_code == 200 for _ in range(5))
    bad = httpx.post(f"{sandbox.url}/_sandbox/faults", json={"typo": 1})
    assert bad.status_code == 400


# -- mutation ---------------------------------------------------------------------------


def test_mutation_updates_inserts_and_deletes(fresh: tuple[Sandbox, httpx.Client]) -> None:
    sandbox, c = fresh
    before = {r["id"]: r for r in sandbox.records("invoices")}
    started = time.time()
    result = sandbox.mutate("invoices", update=3, insert=2, delete=1)
    after = {r["id"]: r for r in fetch_all(c, "/api/invoices")}
    assert len(result["updated"]) == 3
    assert len(result["deleted"]) == 1
    assert min(result["inserted"]) > max(before)
    assert set(after) == (set(before) - set(result["deleted"])) | set(result["inserted"])
    for record_id in result["updated"] + result["inserted"]:
        if record_id in result["deleted"]:
            continue
        stamp = after[record_id]["updated-at"]
        parsed = datetime.fromisoformat(stamp)
        assert parsed.utcoffset() == parsed.astimezone(LA).utcoffset()
        assert instant(stamp) >= int(started)
        assert parsed.microsecond == 0
    changed = [i for i in result["updated"] if i in after]
    assert all(after[i] != before[i] for i in changed)
    since = datetime.fromtimestamp(int(started), LA).isoformat()
    newest = fetch_all(c, "/api/invoices", **{"updated_at[gt_or_eq]": since})
    assert {r["id"] for r in newest} == set(changed + result["inserted"])


def test_inserted_revisions_carry_their_own_revision_record() -> None:
    # A revision's own id and creation time are in its key object: an insert (a clone
    # of a prototype) must not keep the prototype's.
    config = SandboxConfig(rate_limit=None, records={"purchase_order_revisions": 4})
    with Sandbox(config) as sandbox:
        before = [r["revision-record"]["id"] for r in sandbox.records("purchase_order_revisions")]
        started = int(time.time())
        inserted = sandbox.mutate("purchase_order_revisions", insert=3)["inserted"]
        headers = {**JSON, "X-COUPA-API-KEY": "sandbox-api-key"}
        with httpx.Client(base_url=sandbox.url, headers=headers, timeout=5) as c:
            query = {"id[gt]": str(max(before))}
            served = fetch_all(c, "/api/purchase_order_revisions", **query)
    keys = [r["revision-record"] for r in served]
    assert [key["id"] for key in keys] == inserted
    assert all(instant(key["created-at"]) >= started for key in keys)


def test_background_mutation_every_k_requests(fresh: tuple[Sandbox, httpx.Client]) -> None:
    sandbox, c = fresh
    reply = httpx.post(
        f"{sandbox.url}/_sandbox/background",
        json={"stream": "invoices", "every_requests": 2, "update": 1, "insert": 1},
    )
    assert reply.status_code == 200
    count = sandbox.counts()["invoices"]
    for _ in range(6):
        c.get("/api/currencies")
    assert sandbox.counts()["invoices"] == count + 3
    assert sandbox.stats()["mutations"] == {"updated": 3, "inserted": 3, "deleted": 0}
    sandbox.background(None)
    for _ in range(4):
        c.get("/api/currencies")
    assert sandbox.counts()["invoices"] == count + 3


def test_request_log_keeps_each_api_query(fresh: tuple[Sandbox, httpx.Client]) -> None:
    sandbox, c = fresh
    sandbox.reset_stats()
    c.get("/api/invoices", params={"id[gt]": "3", "id[lt]": "9", "limit": "5"})
    c.get("/api/suppliers")
    httpx.get(f"{sandbox.url}/_sandbox/stats")
    assert sandbox.requests("invoices") == [[("id[gt]", "3"), ("id[lt]", "9"), ("limit", "5")]]
    assert sandbox.requests() == [*sandbox.requests("invoices"), []]
    logged = httpx.get(f"{sandbox.url}/_sandbox/requests").json()
    assert [{k: e[k] for k in ("stream", "params")} for e in logged] == [
        {"stream": "invoices", "params": [["id[gt]", "3"], ["id[lt]", "9"], ["limit", "5"]]},
        {"stream": "suppliers", "params": []},
    ]
    sandbox.reset_stats()
    assert sandbox.requests() == []


def test_request_log_and_stats_time_api_requests_and_count_what_they_served(
    fresh: tuple[Sandbox, httpx.Client],
) -> None:
    sandbox, c = fresh
    sandbox.reset_stats()
    assert {k: sandbox.stats()[k] for k in ("api_first", "api_last")} == dict.fromkeys(
        ("api_first", "api_last")
    )
    started = time.monotonic()
    c.get("/api/invoices", params={"limit": "7"})
    c.get("/api/invoices", params={"offset": "20"})  # past the end: Coupa's 404
    c.get("/api/invoices/999999")  # not found: no page served
    httpx.post(f"{sandbox.url}/oauth2/token", data=token_form())  # not an API request
    ended = time.monotonic()
    logged = httpx.get(f"{sandbox.url}/_sandbox/requests").json()
    assert [e["records"] for e in logged] == [7, 0, None]
    stamps = [e["at"] for e in logged]
    assert started <= stamps[0] <= stamps[1] <= stamps[2] <= ended
    stats = sandbox.stats()
    assert started <= stats["api_first"] <= stamps[0]
    assert stamps[1] <= stats["api_last"] <= stamps[2]  # arrival, before the query is logged
    sandbox.reset_stats()
    assert sandbox.stats()["api_first"] is None


def test_matching_counts_every_page_of_a_query(fresh: tuple[Sandbox, httpx.Client]) -> None:
    sandbox, c = fresh
    records = sandbox.records("invoices")
    since = sorted(r["updated-at"] for r in records)[12]
    query = {"updated_at[gt_or_eq]": since, "limit": "3", "offset": "5"}
    expected = len(fetch_all(c, "/api/invoices", **{**query, "offset": 0}))
    assert 1 < expected < len(records)
    url = f"{sandbox.url}/_sandbox/matching"
    assert httpx.get(f"{url}/invoices", params=query).json() == {"records": expected}
    assert httpx.get(f"{url}/invoices").json() == {"records": len(records)}
    assert httpx.get(f"{url}/invoice_lines").status_code == 404  # a child stream
    assert httpx.get(f"{url}/invoices", params={"nope": "1"}).status_code == 400


# -- admin API --------------------------------------------------------------------------


def test_admin_records_counts_stats_and_reset(fresh: tuple[Sandbox, httpx.Client]) -> None:
    # Admin calls rebuild data; on a loaded machine they can take longer than httpx's 5 s.
    with httpx.Client(timeout=60) as admin:
        sandbox, c = fresh
        records = admin.get(f"{sandbox.url}/_sandbox/records/invoices").json()
        assert records == fetch_all(c, "/api/invoices")
        counts = admin.get(f"{sandbox.url}/_sandbox/counts").json()
        assert counts["invoices"] == len(records) == 20
        assert counts["invoice_lines"] == sum(len(r["invoice-lines"]) for r in records)
        allocations = sum(
            len(line["account-allocations"]) for r in records for line in r["invoice-lines"]
        )
        assert counts["invoice_line_account_allocations"] == allocations
        assert admin.get(f"{sandbox.url}/_sandbox/records/invoice_lines").status_code == 404
        c.get("/api/invoices", params={"bogus": "1"})
        admin.post(sandbox.token_url, data=token_form())
        stats = admin.get(f"{sandbox.url}/_sandbox/stats").json()
        assert stats["by_status"]["400"] == 1
        assert stats["tokens_issued"] == 1
        assert stats["api_requests"] >= 2
        assert stats["token_requests"] == 1
        mutated = admin.post(
            f"{sandbox.url}/_sandbox/mutate", json={"stream": "invoices", "delete": 5}
        )
        assert len(mutated.json()["deleted"]) == 5
        assert admin.get(f"{sandbox.url}/_sandbox/counts").json()["invoices"] == 15
        assert admin.post(f"{sandbox.url}/_sandbox/reset").status_code == 200
        assert admin.get(f"{sandbox.url}/_sandbox/records/invoices").json() == records
        assert (
            admin.post(f"{sandbox.url}/_sandbox/mutate", json={"stream": "nope"}).status_code == 400
        )

    # -- CLI --------------------------------------------------------------------------------


def test_cli_arguments_build_the_config() -> None:
    args = build_parser().parse_args(
        [
            "--port", "0", "--seed", "9", "--scale", "0.5", "--records", "invoices=6000",
            "--profile", "realistic", "--no-rate-limit", "--fault-5xx", "0.1",
            "--fault-reset", "every=7", "--slow-seconds", "12", "--fault-slow", "p=0.01",
            "--token-lifetime", "30", "--page-size", "25",
        ]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.records == {"invoices": 6000}
    assert config.seed == 9
    assert config.scale == 0.5
    assert config.rate_limit is None
    assert config.page_size == 25
    assert config.effective_latency_ms() == 300
    assert config.effective_bandwidth() == 2 * 1024 * 1024
    assert config.faults == {
        "5xx": {"probability": 0.1},
        "reset": {"every": 7},
        "slow": {"probability": 0.01, "seconds": 12.0},
        "token_lifetime": 30.0,
    }

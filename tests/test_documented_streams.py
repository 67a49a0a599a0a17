"""Streams R39 lacks, declared from Compass, against the sandbox's own declaration.

Easy form responses, purchase order revisions (whose own id is in ``revision-record``)
and the instance's custom objects (the ``custom_objects`` setting): every record,
exact values, custom fields typed on ``--discover``, and one clear error for a custom
object the instance does not have.
"""

from __future__ import annotations

import json
import subprocess
import typing as t
from pathlib import Path

import pendulum
import pytest
from jsonschema import Draft7Validator

from coupa_sandbox import Sandbox
from tests.helpers import TapRunner, run_tap, same, tap_config
from tests.scripted import Reply, ScriptedServer

pytestmark = pytest.mark.sandbox

Row = dict[str, t.Any]
#: The sandbox's default custom objects: id -> name.
VEHICLES = {"name": "vehicles", "object_id": "101"}


def instant(value: str) -> pendulum.DateTime:
    parsed = pendulum.parse(value)
    assert isinstance(parsed, pendulum.DateTime)
    return parsed


def config(sandbox: Sandbox, **overrides: t.Any) -> dict[str, t.Any]:
    return tap_config(sandbox, custom_objects=[VEHICLES], **overrides)


@pytest.fixture(scope="module")
def synced(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Row]]:
    tap = TapRunner(tmp_path_factory.mktemp("documented"))
    streams = ["easy_form_responses", "purchase_order_revisions", "custom_object_vehicles"]
    return tap.run(config(sandbox, page_size=7), streams).records


def assert_exact(emitted: list[Row], served: dict[int, Row], stream: str) -> None:
    # What the tap's declaration lacks is kept, under extra-fields.
    got = {row["id"]: {**(row.get("extra-fields") or {}), **row} for row in emitted}
    assert served, f"the sandbox serves no {stream}: the test would prove nothing"
    assert got.keys() == served.keys(), stream
    assert len(emitted) == len(served), f"{stream}: no duplicates"
    for row_id, record in served.items():
        differ = [k for k in record if not same(got[row_id].get(k), record[k])]
        assert not differ, f"{stream} {row_id}: {differ}"


@pytest.mark.parametrize("stream", ["easy_form_responses", "custom_object_vehicles"])
def test_documented_stream_is_complete_with_exact_values(
    sandbox: Sandbox, synced: dict[str, list[Row]], stream: str
) -> None:
    served = {r["id"]: r for r in sandbox.records(stream)}
    assert_exact(synced[stream], served, stream)


def test_purchase_order_revisions_are_keyed_by_their_revision_record(
    sandbox: Sandbox, synced: dict[str, list[Row]]
) -> None:
    served = {r["revision-record"]["id"]: r for r in sandbox.records("purchase_order_revisions")}
    emitted = synced["purchase_order_revisions"]
    by_id = {row["id"]: row for row in emitted}
    assert by_id.keys() == served.keys()
    for revision_id, record in served.items():
        row = by_id[revision_id]
        assert row["purchase-order-id"] == record["id"], "the order's id is kept"
        assert row["created-at"] == record["revision-record"]["created-at"]
        rest = {k: v for k, v in record.items() if k != "id"}
        assert_exact([{**row, "id": revision_id}], {revision_id: {**rest, "id": revision_id}}, "")


def discover(tmp_path: Path, settings: dict[str, t.Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(settings))
    return run_tap(["--config", str(path), "--discover"])


def test_custom_object_fields_are_typed_on_discover(sandbox: Sandbox, tmp_path: Path) -> None:
    done = discover(tmp_path, config(sandbox))
    assert done.returncode == 0, done.stderr[-2000:]
    entry = next(
        s
        for s in json.loads(done.stdout)["streams"]
        if s["tap_stream_id"] == "custom_object_vehicles"
    )
    assert entry["key_properties"] == ["id"]
    assert entry["replication_key"] == "updated-at"
    typed = entry["schema"]["properties"]["custom-fields"].get("properties", {})
    served = {key for r in sandbox.records("custom_object_vehicles") for key in r["custom-fields"]}
    assert served
    assert set(typed) == served


def test_a_wrong_custom_object_is_one_clear_error(sandbox: Sandbox, tmp_path: Path) -> None:
    wrong = tap_config(sandbox, custom_objects=[{"name": "vehicles", "object_id": "999"}])
    done = discover(tmp_path, wrong)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, done.stderr[-2000:]
    assert "custom_objects: '999' is not a custom object" in errors[0]
    assert "Traceback" not in done.stderr
    # A sync from a catalog made when the id was right fails the same way.
    catalog = TapRunner(tmp_path).files(config(sandbox), ["custom_object_vehicles"], None)[3]
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    command = ["--config", str(tmp_path / "wrong.json"), "--catalog", catalog]
    synced = run_tap(command)
    assert synced.returncode == 1
    assert "custom_objects: '999' is not a custom object" in synced.stderr
    assert "Traceback" not in synced.stderr


def test_purchase_order_revisions_resume_from_their_created_at(
    sandbox: Sandbox, tap: TapRunner
) -> None:
    first = tap.run(config(sandbox), ["purchase_order_revisions"])
    state = first.state["bookmarks"]["purchase_order_revisions"]
    assert state["replication_key"] == "created-at"
    since = instant(state["replication_key_value"])
    again = tap.run(config(sandbox), ["purchase_order_revisions"], first.state)
    expected = {
        r["revision-record"]["id"]
        for r in sandbox.records("purchase_order_revisions")
        if instant(r["revision-record"]["created-at"]) >= since
    }
    assert expected, "the bookmark's second is re-read: the test needs a revision there"
    assert again.ids("purchase_order_revisions") == expected


GOOD = {"client_id": "c", "client_secret": "s"}
#: Widget answers as Compass's "Easy Form Widget Responses API" page shows them: text
#: or an id, a child form's responses, a region (an object since May 2023), a list.
ANSWERS: list[t.Any] = [
    "San Francisco",
    {"child-easy-form-responses": [{"id": 7, "easy-form-widget-responses": []}]},
    {"country": "Antarctica", "state": "NA", "state_iso_code": None},
    ["7"],
]


def test_widget_answers_of_every_documented_shape_fit_the_schema(tmp_path: Path) -> None:
    """A widget's ``answer`` was declared a string: a record with a child form's or a
    region's answer (objects, per Compass) broke its stream's schema, and an SDK target,
    which validates every record, failed the load (``{...} is not of type 'string',
    'null'``)."""
    response = {
        "id": 1,
        "updated-at": "2024-05-01T10:00:00-07:00",
        "easy-form-widget-responses": [
            {"id": n, "field-name": f"widget_{n}", "answer": answer}
            for n, answer in enumerate(ANSWERS, 1)
        ],
    }
    no_results = {"errors": {"warning": ["No results match your search criteria."]}}
    with ScriptedServer() as server:
        server.script("/oauth2/token", Reply(body={"access_token": "t", "expires_in": 86399}))
        server.script("/api/easy_form_responses", Reply(body=[response]), Reply(404, no_results))
        # One request at a time, so the page is the first reply and the end the next.
        settings = {**GOOD, "base_url": server.url, "max_concurrency": 1}
        out = TapRunner(tmp_path).run(settings, ["easy_form_responses"])
    [record] = out.records["easy_form_responses"]
    answers = [w["answer"] for w in record["easy-form-widget-responses"]]
    assert answers == ANSWERS
    validator = Draft7Validator(out.schemas["easy_form_responses"]["schema"])
    assert [e.message for e in validator.iter_errors(record)] == []

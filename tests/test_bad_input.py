"""Bad input: one clear error line naming the problem and the fix, exit 1, no traceback,
and no STATE that would skip data."""

from __future__ import annotations

import json
import os
import subprocess
import typing as t
from pathlib import Path

import pytest

from coupa_sandbox import Sandbox, SandboxConfig
from tests import helpers
from tests.helpers import CLIENT_ID, CLIENT_SECRET, TapRunner, catalog_for, parse_output
from tests.scripted import Reply, ScriptedServer

pytestmark = pytest.mark.sandbox

GOOD = {"base_url": "https://acme.example", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


def run_tap(
    tmp_path: Path, config: dict[str, t.Any], *extra: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return helpers.run_tap(["--config", str(path), *extra], timeout=300)


def assert_one_clear_error(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if "| ERROR" in line]
    assert errors, done.stderr[-2000:]
    matching = [line for line in errors if all(word in line for word in expected)]
    assert matching, f"no error line names {expected}: {errors}"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"base_url": "acme.coupahost.com"}, ("base_url", "scheme")),
        ({"base_url": "https://"}, ("base_url", "host")),
        ({"base_url": "http://acme.example"}, ("base_url", "https")),
        ({"token_url": "http://acme.example/oauth2/token"}, ("token_url", "https", "allow_http")),
        ({"token_url": "acme.example/oauth2/token"}, ("token_url", "scheme")),
        ({"start_date": "last tuesday"}, ("start_date", "ISO-8601")),
        ({"page_size": 0}, ("page_size",)),
        ({"page_size": 500}, ("page_size",)),
        (
            {"stream_options": {"invoicez": {"filters": {"status": "paid"}}}},
            ("stream_options", "invoicez"),
        ),
        ({"client_secret": None}, ("client_secret",)),
        (
            {"stream_options": {"invoices": {"fields": "invoice_number,total"}}},
            ("stream_options.invoices.fields", "not JSON", "projection"),
        ),
        ({"detect_deletes": ["invoice_lines"]}, ("detect_deletes", "invoice_lines", "child")),
        (
            {"detect_deletes": ["purchase_order_revisions"]},
            ("detect_deletes", "purchase_order_revisions"),
        ),
        ({"bookmark_safety_margin": "5 minutes"}, ("bookmark_safety_margin", "ISO-8601")),
    ],
    ids=[
        "no-scheme",
        "no-host",
        "plain-http",
        "plain-http-token-url",
        "token-url-no-scheme",
        "start-date",
        "page-size-0",
        "page-size-500",
        "unknown-stream",
        "no-secret",
        "fields-not-json",
        "deletes-of-a-child",
        "deletes-of-revisions",
        "margin-not-a-duration",
    ],
)
def test_bad_config(tmp_path: Path, override: dict[str, t.Any], expected: tuple[str, ...]) -> None:
    config = {k: v for k, v in {**GOOD, **override}.items() if v is not None}
    assert_one_clear_error(run_tap(tmp_path, config), *expected)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("{not json", ("--state", "JSON")),
        ('{"bookmarks": {"issues": {"since": "2024-01-01"}}}', ("another tap",)),
        ('{"bookmarks": []}', ("bookmarks",)),
        (
            '{"bookmarks": {"invoices": {"replication_key": "updated-at", "replication_key_value": "soon"}}}',
            ("invoices", "soon"),
        ),
        ('{"bookmarks": {"invoices": {"progress": {"after_id": "x"}}}}', ("invoices", "progress")),
        ('{"bookmarks": {"invoices": {"streams": "invoices"}}}', ("invoices", "streams")),
        (
            '{"bookmarks": {"invoices": {"deletes": {"known": [1, 2]}}}}',
            ("invoices", "deletes", "known ids"),
        ),
        (
            '{"bookmarks": {"invoices": {"served_per_page": "50"}}}',
            ("invoices", "served_per_page", "positive integer"),
        ),
        (
            '{"singer_state": {"bookmarks": {"invoices": {"served_per_page": 50}}}}',
            ("--state", "Meltano", "singer_state"),
        ),
        (
            '{"type": "STATE", "value": {"bookmarks": {}}}',
            ("--state", "STATE message", "value"),
        ),
    ],
    ids=[
        "not-json",
        "foreign",
        "bookmarks-not-object",
        "bad-bookmark",
        "bad-progress",
        "bad-streams",
        "bad-deletes",
        "bad-served-per-page",
        "meltano-wrapped",
        "state-message",
    ],
)
def test_bad_state(tmp_path: Path, state: str, expected: tuple[str, ...]) -> None:
    (tmp_path / "state.json").write_text(state)
    done = run_tap(tmp_path, GOOD, "--state", str(tmp_path / "state.json"))
    assert_one_clear_error(done, *expected)
    assert '"type":"STATE"' not in done.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "does not exist"),
        ("{not json", "cannot be read as JSON"),
        ("[1]", "not a JSON object"),
    ],
    ids=["missing", "not-json", "not-object"],
)
def test_bad_config_file(tmp_path: Path, text: str | None, expected: str) -> None:
    path = tmp_path / "config.json"
    if text is not None:
        path.write_text(text)
    done = helpers.run_tap(["--config", str(path), "--discover"], timeout=300)
    assert_one_clear_error(done, "--config", str(path), expected)


@pytest.mark.parametrize("mode", [(), ("--discover",)], ids=["sync", "discover"])
def test_a_number_setting_from_the_environment_that_is_not_a_number(mode: tuple[str, ...]) -> None:
    env = {
        **os.environ,
        "TAP_COUPA_BASE_URL": GOOD["base_url"],
        "TAP_COUPA_REQUEST_TIMEOUT": "30 s",
    }
    done = helpers.run_tap(["--config", "ENV", *mode], env=env, timeout=300)
    assert_one_clear_error(done, "request_timeout", "'30 s' is not a number")


@pytest.mark.parametrize("mode", [(), ("--discover",)], ids=["sync", "discover"])
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"invoices": "approved"}, ("stream_options", "invoices")),
        ('{"invoices": {}}', ("stream_options", "object")),
        (
            {"invoices": {"filter": {"status": "approved"}}},
            ("stream_options.invoices", "'filter'", "filters"),
        ),
    ],
    ids=["option-not-an-object", "options-as-text", "misspelt-option"],
)
def test_bad_stream_options(
    tmp_path: Path, mode: tuple[str, ...], options: object, expected: tuple[str, ...]
) -> None:
    """A discovery checked nothing here (a traceback), and a sync took a misspelt option
    (``filter``) and ignored it: every invoice was read, with no word said."""
    done = run_tap(tmp_path, {**GOOD, "stream_options": options}, *mode)
    assert_one_clear_error(done, *expected)


def test_discovery_without_base_url(tmp_path: Path) -> None:
    """A discovery checks no settings in the SDK: the tap names the missing one."""
    assert_one_clear_error(run_tap(tmp_path, {}, "--discover"), "base_url is not set", "e.g.")


def test_bad_catalog(tmp_path: Path) -> None:
    """A catalog the SDK can read but the tap refuses: the token asked for ahead (from the
    files, see ``tap_coupa.ahead``) goes to a scripted server, not to acme.example."""
    with ScriptedServer() as server:
        server.script("/oauth2/token", Reply(body={"access_token": "t", "expires_in": 86399}))
        config = {**GOOD, "base_url": server.url}
        discovered = run_tap(tmp_path, config, "--discover")
        catalog = json.loads(discovered.stdout)
        (tmp_path / "catalog.json").write_text("[1, 2")
        assert_one_clear_error(
            run_tap(tmp_path, config, "--catalog", str(tmp_path / "catalog.json")), "--catalog"
        )
        catalog["streams"][0]["schema"]["properties"]["no-such-field"] = {"type": "string"}
        (tmp_path / "catalog.json").write_text(json.dumps(catalog))
        done = run_tap(tmp_path, config, "--catalog", str(tmp_path / "catalog.json"))
        assert_one_clear_error(done, "no-such-field", "--discover")
        catalog["streams"].append(
            {**catalog["streams"][0], "tap_stream_id": "ghosts", "stream": "ghosts"}
        )
        (tmp_path / "catalog.json").write_text(json.dumps(catalog))
        assert_one_clear_error(
            run_tap(tmp_path, config, "--catalog", str(tmp_path / "catalog.json")), "ghosts"
        )
        assert [seen.path for seen in server.seen if seen.path != "/oauth2/token"] == []


def selected_catalog(tmp_path: Path, config: dict[str, t.Any], stream: str) -> Path:
    config_path = tmp_path / "discover.json"
    config_path.write_text(json.dumps(config))
    return catalog_for(tmp_path, config_path, [stream])


def test_wrong_credentials(sandbox: Sandbox, tmp_path: Path) -> None:
    config = {**GOOD, "base_url": sandbox.url, "client_secret": "wrong"}
    done = run_tap(tmp_path, config, "--catalog", str(selected_catalog(tmp_path, config, "users")))
    assert_one_clear_error(done, "invalid_client", "client_secret")
    assert "wrong" not in done.stderr


@pytest.mark.parametrize(
    ("catalog", "expected"),
    [
        ({}, '"streams" list'),
        ({"streams": {"invoices": {}}}, '"streams" list'),
        ({"streams": ["invoices"]}, "streams[0]"),
        ({"streams": [{"stream": "invoices"}]}, "without a tap_stream_id"),
        ({"streams": [{"tap_stream_id": "users", "schema": []}]}, "'users' a schema"),
        ({"streams": [{"tap_stream_id": "users", "metadata": {}}]}, "'users' metadata"),
        (
            {"streams": [{"tap_stream_id": "users", "metadata": [{"breadcrumb": "x"}]}]},
            "'users' metadata",
        ),
    ],
    ids=[
        "no-streams",
        "streams-object",
        "stream-string",
        "no-id",
        "schema-list",
        "metadata-object",
        "crumb",
    ],
)
def test_malformed_catalog(tmp_path: Path, catalog: dict[str, t.Any], expected: str) -> None:
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    done = run_tap(tmp_path, GOOD, "--catalog", str(tmp_path / "catalog.json"))
    assert_one_clear_error(done, "--catalog", expected, "--discover")


@pytest.mark.parametrize(
    ("selected", "stream", "change", "expected"),
    [
        ("users", "users", lambda e: e.pop("schema"), "'users' stream has no schema"),
        ("users", "users", lambda e: e["schema"].pop("properties"), "schema without properties"),
        (
            "users",
            "users",
            lambda e: e.update(replication_key="nope-at"),
            "'users' stream has the replication key 'nope-at'",
        ),
        (
            "users",
            "users",
            lambda e: e["schema"]["properties"].pop("updated-at"),
            "replication key 'updated-at', which its schema does not declare",
        ),
        # A parent feeding a selected child is synced under its own schema too.
        ("invoice_lines", "invoices", lambda e: e.pop("schema"), "'invoices' stream has no schema"),
    ],
    ids=["no-schema", "no-properties", "unknown-key", "undeclared-key", "parent-no-schema"],
)
def test_a_catalog_entry_a_sync_would_fail_on_is_refused_before_any_request(
    tmp_path: Path,
    selected: str,
    stream: str,
    change: t.Callable[[dict[str, t.Any]], object],
    expected: str,
) -> None:
    """The SDK would fail with a traceback as the stream starts, after others synced."""
    with ScriptedServer() as server:
        config = {**GOOD, "base_url": server.url}
        path = selected_catalog(tmp_path, config, selected)
        catalog = json.loads(path.read_text())
        change(next(e for e in catalog["streams"] if e["tap_stream_id"] == stream))
        path.write_text(json.dumps(catalog))
        done = run_tap(tmp_path, config, "--catalog", str(path))
        # A token may have been asked for ahead (``tap_coupa.ahead``), never data.
        assert [seen.path for seen in server.seen if seen.path != "/oauth2/token"] == []
    assert_one_clear_error(done, expected, "--discover")


def test_refused_credentials_are_asked_once(tmp_path: Path) -> None:
    """Many streams about to read, one refused token request: the error is final."""
    with Sandbox(SandboxConfig(seed=1)) as sb:
        config = {**GOOD, "base_url": sb.url, "client_secret": "wrong"}
        config_path = tmp_path / "discover.json"
        config_path.write_text(json.dumps(config))
        streams = ["users", "suppliers", "invoices", "accounts", "contracts", "items"]
        catalog = catalog_for(tmp_path, config_path, streams)
        before = sb.state.stats.snapshot()["by_class"].get("token", 0)
        done = run_tap(tmp_path, config, "--catalog", str(catalog))
        asked = sb.state.stats.snapshot()["by_class"].get("token", 0) - before
    assert_one_clear_error(done, "invalid_client", "client_secret")
    assert asked == 1, f"{asked} token requests for one refused client"


def test_missing_scope(tmp_path: Path) -> None:
    with Sandbox(SandboxConfig(seed=1, allowed_scopes=frozenset({"core.user.read"}))) as sb:
        config = {**GOOD, "base_url": sb.url}
        catalog = selected_catalog(tmp_path, config, "invoices")
        asked = run_tap(tmp_path, config, "--catalog", str(catalog))
        assert_one_clear_error(asked, "invalid_scope", "core.invoice.read")
        # A token with other scopes than the stream needs: the 403 names the scope.
        forced = run_tap(
            tmp_path, {**config, "scopes": "core.user.read"}, "--catalog", str(catalog)
        )
        assert_one_clear_error(forced, "403", "core.invoice.read")


def test_xml_instead_of_json_fails_clearly_and_keeps_state(tmp_path: Path) -> None:
    """A server that ignores Accept (not Coupa's API) is retried, then reported."""
    with Sandbox(SandboxConfig(seed=1)) as sb:
        sb.set_faults({"maintenance": {"probability": 1.0}})
        config = {**GOOD, "base_url": sb.url, "max_retries": 1}
        state = {
            "bookmarks": {
                "users": {
                    "replication_key": "updated-at",
                    "replication_key_value": "2024-01-01T00:00:00+00:00",
                }
            }
        }
        (tmp_path / "state.json").write_text(json.dumps(state))
        done = run_tap(
            tmp_path,
            config,
            "--catalog",
            str(selected_catalog(tmp_path, config, "users")),
            "--state",
            str(tmp_path / "state.json"),
        )
    assert_one_clear_error(done, "users", "JSON")
    emitted = parse_output(done.stdout).states
    for state_message in emitted:
        bookmark = state_message["bookmarks"].get("users", {})
        assert bookmark.get("replication_key_value") in (None, "2024-01-01T00:00:00+00:00")


def test_a_malformed_record_is_one_clear_error_and_state_stays_behind(
    tap: helpers.TapRunner,
) -> None:
    """A null among a page's records stops the sync with one line naming stream and page."""
    updated = "2024-01-01T00:00:00-08:00"
    first = [{"id": i, "updated-at": updated} for i in range(1, 6)]
    with ScriptedServer() as server:
        server.script("/api/invoices", Reply(body=first), Reply(body=[first[-1], None, {"id": 6}]))
        config = {"base_url": server.url, "api_key": "k", "page_size": 5, "max_concurrency": 1}
        out = tap.run(config, ["invoices"], check=False)
    done = subprocess.CompletedProcess([], out.returncode, out.stdout, out.stderr)
    assert_one_clear_error(done, "'invoices'", "/api/invoices at offset=4", "null", "base_url")
    assert out.ids("invoices") == {1, 2, 3, 4, 5}
    for state in out.states:
        bookmark = state["bookmarks"].get("invoices", {})
        assert "replication_key_value" not in bookmark, "the bookmark did not advance"
        assert bookmark.get("progress", {}).get("after_id", 0) <= 5


def test_a_bad_stream_map_fails_the_run_before_any_stream_syncs(
    sandbox: Sandbox, tap: TapRunner
) -> None:
    """Checked when its stream's turn came, it failed after the streams before it."""
    config = helpers.tap_config(sandbox, stream_maps={"suppliers": {"__else__": None}})
    out = tap.run(config, ["currencies", "suppliers"], check=False)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, errors
    assert "stream_maps" in errors[0]
    assert not out.records, "a stream synced before the map was refused"


def test_discovering_custom_fields_with_refused_credentials(tmp_path: Path) -> None:
    """discover_custom_fields asks Coupa: refused credentials were a warning per stream
    (85 of them) and a catalog without the custom fields asked for, exit 0."""
    with ScriptedServer() as server:
        server.script("/oauth2/token", Reply(401, {"error": "invalid_client"}))
        config = {**GOOD, "base_url": server.url, "discover_custom_fields": True}
        done = run_tap(tmp_path, config, "--discover")
        assert len(server.requests_to("/oauth2/token")) == 1
    assert_one_clear_error(done, "refused", "client_secret")
    assert "No custom fields discovered" not in done.stderr

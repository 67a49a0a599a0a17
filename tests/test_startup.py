"""Start-up: what the tap does before its first request, and at exit, to be quick.

The token is minted while the catalog is read (``mint_ahead``), the rate limiter's burst
starts only once it is there, and the garbage collector waits until records flow.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import io
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import typing as t
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from singer_sdk.helpers._util import load_json
from singer_sdk.singerlib import Catalog

from coupa_sandbox import Sandbox, SandboxConfig
from tap_coupa import ahead, transport
from tap_coupa import resources as resources_module
from tap_coupa import tap as tap_module
from tap_coupa.auth import CoupaOAuthAuthenticator
from tap_coupa.catalog import LazyEntry, selected_streams
from tap_coupa.errors import CoupaAuthError
from tap_coupa.resources import SyncResources
from tap_coupa.settings import Settings
from tap_coupa.streams import registry
from tests.forkserver import TAP
from tests.helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    TapRunner,
    catalog_for,
    sandbox_custom_objects,
    tap_config,
)
from tests.scripted import Reply, ScriptedServer


class FakeGC:
    """Records what the tap asks of the garbage collector, without touching the real one."""

    def __init__(self) -> None:
        self.enabled = True
        self.frozen = 0

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def freeze(self) -> None:
        self.frozen += 1


def tap_config_for(base_url: str) -> dict[str, t.Any]:
    return {"base_url": base_url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


def settings(base_url: str = "http://127.0.0.1:9") -> Settings:
    specs = registry()
    collections = [name for name, spec in specs.items() if not spec["parent"]]
    return Settings.parse(tap_config_for(base_url), specs, collections)


@pytest.mark.unit
def test_the_collector_is_paused_for_start_up_and_runs_once_records_flow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeGC()
    at_exit: list[t.Callable[[], None]] = []
    seen: list[bool] = []
    monkeypatch.setattr(tap_module, "gc", fake)
    monkeypatch.setattr(resources_module, "gc", fake)
    monkeypatch.setattr(atexit, "register", at_exit.append)
    monkeypatch.setattr(tap_module.TapCoupa, "__init__", lambda _, **__: seen.append(fake.enabled))
    monkeypatch.setattr(tap_module.TapCoupa, "sync_all", lambda _: seen.append(fake.enabled))
    # No settings or catalog behind the stubbed __init__, and no connection to close.
    monkeypatch.setattr(tap_module.TapCoupa, "resources", SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(tap_module.TapCoupa, "input_catalog", None)

    tap_module.TapCoupa.invoke()
    assert seen == [False, False], "start-up ran with the collector on"

    shared = SyncResources(settings(), scopes=list, sync_order=list)
    shared.freeze_heap()
    shared.freeze_heap()
    assert fake.enabled, "the collector stayed off once the first stream wrote"
    assert fake.frozen == 1

    assert at_exit == [fake.freeze], "the heap is not frozen at exit"


#: Counts the collections that run from the command's first line on, in a fresh process
#: (the test suite's forked taps have their modules imported already).
COUNT_COLLECTIONS = """
import atexit, gc, sys
runs = []
atexit.register(lambda: print("collections:", len(runs), file=sys.stderr))
gc.callbacks.append(lambda phase, info: phase == "start" and runs.append(info))
sys.argv = ["tap-coupa", "--about", "--format", "json"]
from tap_coupa.__main__ import main
runs.clear()
main()
"""


@pytest.mark.unit
def test_no_collection_runs_while_the_command_imports_the_sdk() -> None:
    done = subprocess.run(
        [sys.executable, "-c", COUNT_COLLECTIONS], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout)["name"] == "tap-coupa", "the command ran"
    assert "collections: 0" in done.stderr, done.stderr[-300:]


@pytest.mark.unit
def test_every_connection_verifies_with_the_ca_bundle_loaded_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loaded once, on its own thread: the token's client and each worker's share it."""
    created: list[tuple[str, ssl.SSLContext]] = []

    def create_ssl_context() -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        created.append((threading.current_thread().name, context))
        return context

    monkeypatch.setattr(httpx, "create_ssl_context", create_ssl_context)
    transport.load_ahead()
    clients = [SyncResources(settings(), scopes=list, sync_order=list).connect() for _ in "ab"]
    clients.append(transport.client(timeout=1, user_agent=None))
    assert [name for name, _ in created] == ["tap-coupa-tls"], "loaded once, ahead"
    for client in clients:
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert pool._ssl_context is created[0][1], "a client verifies with another context"
        client.close()


@pytest.fixture
def no_token_minted_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tap built here with an input catalog mints no token on a thread of its own.

    That thread would outlive the test, asking a server the test has closed (or
    127.0.0.1:9) again and again, or another test's server that took the port over.
    """
    monkeypatch.setattr(SyncResources, "mint_ahead", lambda self, scopes: None)


#: Top-level collections, each a page or two in the sandbox below.
MANY = [
    "invoices", "purchase_orders", "suppliers", "requisitions", "expense_reports", "users",
    "accounts", "addresses", "contracts", "currencies", "departments", "exchange_rates",
    "items", "lookup_values", "payment_terms", "lookups", "legal_entities",
    "commodities", "comments", "announcements", "projects", "approvals", "budget_lines",
    "business_entities",
]  # fmt: skip


@pytest.mark.sandbox
def test_the_first_requests_go_out_as_one_burst_however_long_the_token_takes(
    tap: TapRunner,
) -> None:
    """A token that takes 1 s: no request may take a turn of the limiter meanwhile.

    Turns taken while the token is minted would all go out when it comes: the burst
    plus one per 40 ms of the mint, beyond what Coupa's bucket holds.
    """
    config = SandboxConfig(seed=4, latency_ms=1000, rate_limit=None, records={"*": 60})
    with Sandbox(config) as sb:
        settings = tap_config(sb, max_requests_per_second=25, rate_limit_burst=4)
        done = tap.run(settings, MANY)
        arrivals = sorted(entry["at"] for entry in sb.state.requests.entries())
        tokens = sb.state.stats.snapshot()["by_class"]["token"]
    assert done.stderr.count("Obtained a Coupa access token") == 1
    assert tokens == 1, "one token, minted once and used by every request"
    assert len(arrivals) >= len(MANY), "every stream asked for its pages"
    # However late the token: never more than the burst plus 25/s since the first request
    # (and one more, for arrival jitter).
    for count, at in enumerate(arrivals, start=1):
        allowed = 4 + 25 * (at - arrivals[0]) + 1
        assert count <= allowed, f"{count} requests within {at - arrivals[0]:.3f} s of the first"


@pytest.mark.sandbox
def test_a_token_minted_ahead_is_used_only_for_the_scopes_the_sync_needs() -> None:
    config = SandboxConfig(seed=4, rate_limit=None, records={"*": 5})
    with Sandbox(config) as sb:
        shared = SyncResources(
            settings(sb.url), scopes=lambda: ["core.invoice.read"], sync_order=list
        )
        shared.mint_ahead(["core.invoice.read"])
        assert shared.authenticator.headers()
        assert sb.state.stats.snapshot()["by_class"]["token"] == 1, "the token minted ahead"

        other = SyncResources(
            settings(sb.url), scopes=lambda: ["core.invoice.read"], sync_order=list
        )
        other.mint_ahead(["core.common.read"])
        authenticator = other.authenticator
        assert isinstance(authenticator, CoupaOAuthAuthenticator)
        assert authenticator.headers()
        assert authenticator.oauth_scopes == "core.invoice.read", "a token for what is needed"
        ahead = other._minted_ahead
        assert ahead is not None
        assert ahead is not authenticator, "the token minted ahead was not used"
        ahead.headers()  # its minting is over
        assert sb.state.stats.snapshot()["by_class"]["token"] == 3, "and minted anew"


#: Selections whose scopes differ: a grandchild reads through its parent and grandparent.
SELECTIONS = [
    ["invoices", "users"],
    ["invoice_line_tax_lines"],
    ["supplier_addresses", "users", "custom_object_vehicles"],
]


@pytest.mark.sandbox
@pytest.mark.parametrize("selected", SELECTIONS)
@pytest.mark.usefixtures("no_token_minted_ahead")
def test_the_scopes_read_from_the_catalog_are_those_the_streams_need(
    sandbox: Sandbox, tmp_path: Path, selected: list[str]
) -> None:
    config = tap_config(sandbox, custom_objects=sandbox_custom_objects(sandbox))
    (tmp_path / "config.json").write_text(json.dumps(config))
    catalog = json.loads(catalog_for(tmp_path, tmp_path / "config.json", selected).read_text())
    tap = tap_module.TapCoupa(config=config, catalog=catalog)
    assert tap.input_catalog is not None
    assert tap._catalog_scopes(tap.input_catalog) == tap._scopes()


#: The command's first steps (``__main__``), then a wait for the token's answer; prints
#: the SDK modules imported by then.
ASK_AHEAD = """
import sys
from tap_coupa import ahead
ahead.start(sys.argv[1:])
ahead.take("", {})  # waits for the answer (and drops it: asked for something else)
print(sorted(name for name in sys.modules if name.startswith("singer_sdk")))
"""
TOKEN = Reply(body={"access_token": "t0k3n", "token_type": "bearer", "expires_in": 86399})
VEHICLES = [{"name": "vehicles", "object_id": "12"}]


def discovered_catalog(tmp_path: Path, config: dict[str, t.Any], selected: list[str]) -> Path:
    """``catalog.json``, discovered with ``config``, with ``selected`` selected."""
    (tmp_path / "discover.json").write_text(json.dumps(config))
    return catalog_for(tmp_path, tmp_path / "discover.json", selected)


def edited_catalog(
    tmp_path: Path,
    config: dict[str, t.Any],
    selected: list[str],
    edit: t.Callable[[dict[str, t.Any], dict[str, t.Any]], None],
) -> dict[str, t.Any]:
    """``discovered_catalog``, changed by ``edit(catalog, entries by id)`` and written back."""
    path = discovered_catalog(tmp_path, config, selected)
    catalog = json.loads(path.read_text())
    edit(catalog, {entry["tap_stream_id"]: entry for entry in catalog["streams"]})
    path.write_text(json.dumps(catalog))
    return catalog


def ask_ahead(
    tmp_path: Path, config: dict[str, t.Any], *args: str, env: dict[str, str] | None = None
) -> str:
    """Run ``ASK_AHEAD`` with ``args`` (``{config}``/``{catalog}``: those files)."""
    files = {"config": tmp_path / "config.json", "catalog": tmp_path / "catalog.json"}
    files["config"].write_text(json.dumps(config))
    command = [sys.executable, "-c", ASK_AHEAD, *(a.format_map(files) for a in args)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return done.stdout


@pytest.mark.sandbox
@pytest.mark.parametrize("selected", SELECTIONS)
@pytest.mark.usefixtures("no_token_minted_ahead")
def test_the_token_is_asked_for_before_the_sdk_is_imported_with_the_scopes_needed(
    tmp_path: Path, selected: list[str]
) -> None:
    """The command asks for the token from the files alone, while it imports the SDK."""
    with ScriptedServer() as server:
        server.script("/oauth2/token", TOKEN)
        server.script("/api/custom_objects/12/object_instances", Reply(body=[]))
        config = {**tap_config_for(server.url), "custom_objects": VEHICLES}
        discovered_catalog(tmp_path, config, selected)
        discovery = len(server.seen)  # it asks whether the custom object exists
        imported = ask_ahead(tmp_path, config, "--config", "{config}", "--catalog", "{catalog}")
        forms = [seen.form for seen in server.seen[discovery:]]
    catalog = Catalog.from_dict(json.loads((tmp_path / "catalog.json").read_text()))
    needed = tap_module.TapCoupa(config=config, catalog=catalog)._scopes()
    assert imported.strip() == "[]", "the token's request waited for the SDK's import"
    assert [form.get("scope") for form in forms] == [" ".join(needed)], "one, for these scopes"
    same = forms[0] == ahead.token_form(CLIENT_ID, CLIENT_SECRET, " ".join(needed))
    assert same, "the form is not the one the authenticator would send"


@pytest.mark.sandbox
@pytest.mark.usefixtures("no_token_minted_ahead")
def test_an_entry_without_stream_level_metadata_is_selected_as_the_sdk_selects_it(
    tmp_path: Path,
) -> None:
    """The SDK selects it; the streams a run reads, and the token's scopes, agree."""
    with ScriptedServer() as server:
        server.script("/oauth2/token", TOKEN)
        config = tap_config_for(server.url)

        def without_users_own(_: dict[str, t.Any], entries: dict[str, t.Any]) -> None:
            users = entries["users"]
            users["metadata"] = [m for m in users["metadata"] if m["breadcrumb"]]

        catalog = edited_catalog(tmp_path, config, ["invoices"], without_users_own)
        ask_ahead(tmp_path, config, "--config", "{config}", "--catalog", "{catalog}")
        asked = [seen.form.get("scope") for seen in server.seen]
        tap = tap_module.TapCoupa(config=config, catalog=Catalog.from_dict(catalog))
    assert "users" in selected_streams(tap.catalog), "not read as the SDK reads it"
    assert tap.streams["users"].selected
    assert asked == [" ".join(tap._scopes())] == ["core.invoice.read core.user.read"]


@pytest.mark.sandbox
def test_the_token_asked_for_ahead_never_goes_through_a_proxy_to_loopback(
    tmp_path: Path,
) -> None:
    """Plain http on loopback never leaves the machine; a proxy (elsewhere) would."""
    with ScriptedServer() as server, ScriptedServer() as proxy:
        server.script("/oauth2/token", TOKEN)
        config = tap_config_for(server.url)
        discovered_catalog(tmp_path, config, ["invoices"])
        # Any other proxy variable (http_proxy wins over HTTP_PROXY, no_proxy may name
        # 127.0.0.1) would decide instead, and the test pass with the proxy never asked.
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["HTTP_PROXY"] = proxy.url
        ask_ahead(tmp_path, config, "--config", "{config}", "--catalog", "{catalog}", env=env)
        assert [(seen.method, seen.path) for seen in proxy.seen] == []
        assert [seen.path for seen in server.seen] == ["/oauth2/token"]


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("config", "args"),
    [
        ({}, ["--config", "{config}", "--discover"]),
        ({}, ["--config", "{config}"]),
        ({}, ["--config", "ENV", "--config", "{config}", "--catalog", "{catalog}"]),
        ({}, ["--config", "{config}", "--catalog", "{catalog}", "--test"]),
        ({}, ["--config", "{config}", "--catalog", "{catalog}", "--what"]),
        (
            {"client_secret": None, "api_key": "k"},
            ["--config", "{config}", "--catalog", "{catalog}"],
        ),
        ({"token_url": "ftp://x/oauth2/token"}, ["--config", "{config}", "--catalog", "{catalog}"]),
    ],
    ids=["discover", "no-catalog", "env", "test", "unknown-option", "api-key", "bad-token-url"],
)
def test_no_token_is_asked_for_ahead_outside_a_plain_sync(
    tmp_path: Path, config: dict[str, t.Any], args: list[str]
) -> None:
    """Whatever the command may turn out to be, the token is asked for as before (or not)."""
    with ScriptedServer() as server:
        server.script("/oauth2/token", TOKEN)
        settings = {k: v for k, v in {**tap_config_for(server.url), **config}.items() if v}
        discovered_catalog(tmp_path, settings, ["invoices"])
        assert ask_ahead(tmp_path, settings, *args).strip() == "[]"
        assert server.seen == []


#: A stream's own metadata, as catalogs may give it (None: no entry for the stream).
ROOTS: dict[str, dict[str, t.Any] | None] = {
    "invoices": {"selected": True},
    "users": {"selected": False},
    "currencies": {"inclusion": "automatic", "selected": False},
    "accounts": {"inclusion": "unsupported", "selected": True},
    "suppliers": {"selected-by-default": True},
    "items": {"selected-by-default": False},
    "contracts": {},
    "addresses": None,
}


@pytest.mark.unit
@pytest.mark.usefixtures("no_token_minted_ahead")
def test_a_stream_is_selected_as_the_sdk_says_without_resolving_its_properties(
    tmp_path: Path,
) -> None:
    """The SDK resolves every property's selection to answer; that can wait."""
    config = tap_config_for("http://127.0.0.1:9")  # asked nothing: no token minted ahead
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    catalog = json.loads(catalog_for(tmp_path, config_path, []).read_text())
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] in ROOTS:
            root = ROOTS[entry["tap_stream_id"]]
            others = [m for m in entry["metadata"] if m["breadcrumb"]]
            entry["metadata"] = others + (
                [{"breadcrumb": [], "metadata": root}] * (root is not None)
            )
    tap = tap_module.TapCoupa(config=config, catalog=Catalog.from_dict(catalog), setup_mapper=False)
    streams = [tap.streams[name] for name in ROOTS]
    selected = {stream.name: stream.selected for stream in streams}
    assert all(stream._mask is None for stream in streams), "a mask was resolved"
    assert selected == {stream.name: stream.mask.get((), True) for stream in streams}
    assert [name for name, chosen in selected.items() if chosen] == [
        "invoices", "currencies", "suppliers", "addresses"
    ]  # fmt: skip


@pytest.mark.sandbox
def test_a_sync_takes_the_token_asked_for_ahead(sandbox: Sandbox, tmp_path: Path) -> None:
    """``python -m tap_coupa`` itself (not a forked run: its SDK is imported already)."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(tap_config(sandbox)))
    catalog = catalog_for(tmp_path, config_path, ["currencies", "invoices"])
    before = sandbox.state.stats.snapshot()["by_class"].get("token", 0)
    done = subprocess.run(
        [*TAP, "--config", str(config_path), "--catalog", str(catalog)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sandbox.state.stats.snapshot()["by_class"]["token"] == before + 1
    assert "Obtained a Coupa access token (expires in 86399s; asked for while" in done.stderr
    assert done.stdout.count('"type":"RECORD"') == sum(
        sandbox.counts()[name] for name in ("currencies", "invoices")
    )


@pytest.mark.sandbox
@pytest.mark.usefixtures("no_token_minted_ahead")
def test_the_catalog_is_read_as_the_sdk_reads_it_with_schemas_converted_when_read(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tap_config(sandbox)
    (tmp_path / "config.json").write_text(json.dumps(config))
    selected = ["invoices", "users", "invoice_lines"]
    catalog = json.loads(catalog_for(tmp_path, tmp_path / "config.json", selected).read_text())
    tap = tap_module.TapCoupa(config=config, catalog=catalog)

    entries = list(tap.input_catalog.values()) if tap.input_catalog else []
    assert all(isinstance(entry, LazyEntry) for entry in entries)
    assert len(tap.streams) == len(entries)
    assert not [e.tap_stream_id for e in entries if e._schema is not None], (
        "schemas converted before any stream read them"
    )
    invoices = tap.streams["invoices"]
    sdk = Catalog.from_dict(catalog)
    assert invoices.effective_schema == sdk["invoices"].schema.to_dict()
    assert [e.tap_stream_id for e in entries if e._schema is not None] == ["invoices"]

    for entry in entries:
        theirs = sdk[entry.tap_stream_id]
        for field in dataclasses.fields(theirs):
            assert getattr(entry, field.name) == getattr(theirs, field.name), field.name
    assert tap.input_catalog is not None
    assert tap.input_catalog.to_dict() == sdk.to_dict()


@pytest.mark.unit
def test_state_and_catalog_files_are_read_as_the_sdk_reads_them() -> None:
    """Once, in C, yet as the SDK's ``load_json``: numbers with a fraction as ``Decimal``."""
    text = (
        '{"streams": [], "bookmarks": {"invoices": {"x": 1.10, "n": 3}}, '
        '"t": "2025-03-10T08:00:00-07:00"}'
    )
    value = tap_module._read_json("catalog", io.StringIO(text))
    assert value == load_json(text)
    assert value["bookmarks"]["invoices"]["x"] == Decimal("1.10")
    assert isinstance(value["bookmarks"]["invoices"]["x"], Decimal)


@pytest.mark.sandbox
@pytest.mark.parametrize("kind", ["stdin", "fifo"])
def test_a_catalog_that_can_be_read_once_is_left_to_the_sdk(tmp_path: Path, kind: str) -> None:
    """A pipe (``--catalog /dev/stdin``, ``<(jq ...)``) or a FIFO is read once: by the SDK.

    Read for the token first, it left the SDK nothing, or a FIFO with no writer left.
    """
    with ScriptedServer() as server:
        server.script("/oauth2/token", TOKEN)
        server.script("/api/currencies", Reply(body=[]))
        config = tmp_path / "config.json"
        config.write_text(json.dumps(tap_config_for(server.url)))
        text = catalog_for(tmp_path, config, ["currencies"]).read_text()
        command = [*TAP, "--config", str(config), "--catalog"]
        if kind == "stdin":
            done = subprocess.run(
                [*command, "/dev/stdin"], input=text, capture_output=True, text=True, timeout=60
            )
        else:
            fifo = tmp_path / "catalog.fifo"
            os.mkfifo(fifo)
            with subprocess.Popen(
                [*command, str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            ) as process:
                fifo.write_text(text)  # once a reader opened it
                try:
                    stdout, stderr = process.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    pytest.fail("the sync waited for a FIFO already read")
            done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        assert done.returncode == 0, done.stderr[-500:]
        assert [seen.path for seen in server.seen].count("/oauth2/token") == 1


@pytest.fixture
def asked_ahead() -> t.Iterator[None]:
    """No answer asked for ahead outlives the test (``take`` of another would see it)."""
    yield
    ahead._Answer.answer = ahead._Answer.asked = None


@contextlib.contextmanager
def ask_ahead_here(
    tmp_path: Path, token_url: str, max_retries: int, arrived: t.Callable[[], int]
) -> t.Iterator[CoupaOAuthAuthenticator]:
    """``ahead.start`` as the command calls it, and the authenticator the sync would make.

    Yields once ``arrived()`` (the token requests the endpoint has had) says the one sent
    ahead is there: whatever the authenticator asks then comes after it.
    """
    config = {**tap_config_for(token_url), "scopes": "core.common.read", "request_timeout": 1}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text('{"streams": []}')
    ahead.start(
        ["--config", str(tmp_path / "config.json"), "--catalog", str(tmp_path / "catalog.json")]
    )
    deadline = time.monotonic() + 10
    while arrived() == 0:
        assert time.monotonic() < deadline, "no token was asked for ahead"
        time.sleep(0.01)
    with transport.client(timeout=1, user_agent=None) as client:
        yield CoupaOAuthAuthenticator(
            token_url=f"{token_url}/oauth2/token",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            scopes=["core.common.read"],
            client=client,
            timeout=1,
            max_retries=max_retries,
        )


@pytest.mark.sandbox
@pytest.mark.usefixtures("asked_ahead")
def test_a_transient_answer_to_the_token_asked_ahead_is_the_first_try(tmp_path: Path) -> None:
    """With max_retries 0, a 503 is final, as without the token asked ahead."""
    with ScriptedServer() as server:
        server.script("/oauth2/token", Reply(503, {}), TOKEN)
        with (
            ask_ahead_here(
                tmp_path, server.url, max_retries=0, arrived=lambda: len(server.seen)
            ) as authenticator,
            pytest.raises(CoupaAuthError, match="HTTP 503"),
        ):
            authenticator.headers()
        assert len(server.seen) == 1, "the token was asked for again at once"


@pytest.mark.sandbox
@pytest.mark.usefixtures("asked_ahead")
def test_a_retry_after_answered_to_the_token_asked_ahead_is_kept(tmp_path: Path) -> None:
    with ScriptedServer() as server:
        server.script("/oauth2/token", Reply(429, {}, headers={"Retry-After": "1"}), TOKEN)
        with ask_ahead_here(
            tmp_path, server.url, max_retries=1, arrived=lambda: len(server.seen)
        ) as authenticator:
            started = time.monotonic()
            assert authenticator.headers() == {"Authorization": "Bearer t0k3n"}
            waited = time.monotonic() - started
        assert len(server.seen) == 2
    assert waited >= 0.9, f"asked again {waited:.2f} s after Coupa said to wait 1 s"


@pytest.mark.sandbox
@pytest.mark.usefixtures("asked_ahead")
def test_a_token_asked_ahead_that_timed_out_is_the_first_try(tmp_path: Path) -> None:
    """A token endpoint that never answers costs one request_timeout per try, not one more."""
    connections: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.2)

        def accept() -> None:
            with contextlib.suppress(OSError):
                while True:
                    with contextlib.suppress(TimeoutError):
                        connections.append(listener.accept()[0])

        threading.Thread(target=accept, daemon=True).start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with (
            ask_ahead_here(
                tmp_path, url, max_retries=0, arrived=lambda: len(connections)
            ) as authenticator,
            pytest.raises(CoupaAuthError, match="ReadTimeout"),
        ):
            authenticator.headers()
    for connection in connections:
        connection.close()
    assert len(connections) == 1, "the token was asked for again once the first timed out"


@pytest.mark.sandbox
def test_the_token_asked_ahead_reads_a_catalog_given_twice_over_as_the_tap_does(
    tmp_path: Path,
) -> None:
    """A stream's last entry, and an entry's last stream-level metadata, are the ones read."""
    with ScriptedServer() as server:
        server.script("/oauth2/token", TOKEN)
        config = tap_config_for(server.url)
        deselected = {"breadcrumb": [], "metadata": {"selected": False}}

        def twice_over(catalog: dict[str, t.Any], entries: dict[str, t.Any]) -> None:
            catalog["streams"].append({**entries["invoices"], "metadata": [deselected]})
            entries["users"]["metadata"].append(deselected)

        selected = ["currencies", "invoices", "users"]
        catalog = edited_catalog(tmp_path, config, selected, twice_over)
        ask_ahead(tmp_path, config, "--config", "{config}", "--catalog", "{catalog}")
        forms = [seen.form for seen in server.seen]
        tap = tap_module.TapCoupa(config=config, catalog=catalog)  # mints its token here
        assert tap.input_catalog is not None
        scopes = tap._catalog_scopes(tap.input_catalog)
        tap.resources.authenticator.headers()  # once it is minted
    assert scopes == ["core.common.read"], "only currencies is selected"
    assert [form.get("scope") for form in forms] == [" ".join(scopes)]

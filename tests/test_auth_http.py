"""The OAuth2 authenticator and the retrying transport, against scripted loopback replies."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import typing as t
from collections.abc import Iterator
from urllib.parse import quote_plus

import httpx
import pytest
from httpcore._backends.sync import SyncStream

from tap_coupa import http, retry
from tap_coupa.auth import CoupaAPIKeyAuthenticator, CoupaOAuthAuthenticator
from tap_coupa.errors import CoupaAPIError, CoupaAuthError, CoupaError
from tap_coupa.http import CoupaHTTP, RequestStats
from tap_coupa.ratelimit import RateLimiter
from tap_coupa.resources import SyncResources
from tap_coupa.settings import Settings
from tap_coupa.streams import registry
from tests.scripted import Reply, ScriptedServer

pytestmark = pytest.mark.sandbox

SECRET = "s3cr3t-value-xyz"
#: How long a test waits for what should take a fraction of a second.
WAIT_S = 30
TOKEN = {"access_token": "tok-1", "token_type": "bearer", "expires_in": 86399}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        srv.script("/oauth2/token", Reply(body=TOKEN))
        yield srv


def make_auth(server: ScriptedServer, *, max_retries: int = 0) -> CoupaOAuthAuthenticator:
    return CoupaOAuthAuthenticator(
        token_url=f"{server.url}/oauth2/token",
        client_id="cid",
        client_secret=SECRET,
        scopes=["core.invoice.read", "core.common.read"],
        client=httpx.Client(timeout=5),
        timeout=5,
        max_retries=max_retries,
    )


def make_http(server: ScriptedServer, *, max_retries: int = 3) -> CoupaHTTP:
    auth = make_auth(server)
    return CoupaHTTP(
        api_base=f"{server.url}/api",
        authenticator=auth,
        limiter=RateLimiter(1000, 100),
        connect=lambda: httpx.Client(timeout=5),
        max_retries=max_retries,
    )


def get(http: CoupaHTTP, path: str = "invoices") -> list[dict]:
    return http.get(
        path, [("limit", "50")], stream="invoices", scope="core.invoice.read", stats=RequestStats()
    ).records


def test_token_request_is_coupa_client_credentials(server: ScriptedServer) -> None:
    server.script("/api/invoices", Reply(body=[{"id": 1}]))
    http = make_http(server)
    for _ in range(3):
        assert get(http) == [{"id": 1}]
    tokens = server.requests_to("/oauth2/token")
    assert len(tokens) == 1, "one token is shared by all requests"
    form = dict(tokens[0].form)
    sent = form.pop("client_secret", None) == SECRET  # compared apart: a diff would print it
    assert sent, "the client secret was not sent as configured"
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "cid",
        "scope": "core.invoice.read core.common.read",
    }
    api = server.requests_to("/api/invoices")
    assert all(s.headers["Authorization"] == "Bearer tok-1" for s in api)
    assert all(s.headers["Accept"] == "application/json" for s in api)


def test_expired_token_is_reminted(server: ScriptedServer) -> None:
    server.script(
        "/oauth2/token",
        Reply(body={**TOKEN, "expires_in": 1}),
        Reply(body={**TOKEN, "access_token": "tok-2"}),
    )
    server.script("/api/invoices", Reply(body=[]))
    http = make_http(server)
    get(http)
    time.sleep(1.1)
    get(http)
    assert len(server.requests_to("/oauth2/token")) == 2
    assert server.requests_to("/api/invoices")[-1].headers["Authorization"] == "Bearer tok-2"


@pytest.mark.parametrize("expires_in", ["soon", "NaN", [86399], -5, "86399.5"])
def test_an_odd_expires_in_is_no_traceback_and_the_token_lasts_until_rejected(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture, expires_in: object
) -> None:
    """A look-alike's odd ``expires_in`` is no traceback: the token is used until rejected."""
    server.script(
        "/oauth2/token",
        Reply(body={**TOKEN, "expires_in": expires_in}),
        Reply(body={**TOKEN, "access_token": "tok-2"}),
    )
    server.script(
        "/api/invoices", Reply(body=[]), Reply(body=[]), Reply(status=401), Reply(body=[])
    )
    http = make_http(server)
    get(http)
    get(http)
    minted = len(server.requests_to("/oauth2/token"))
    assert minted == 1, "kept while Coupa accepts it"
    get(http)
    minted = len(server.requests_to("/oauth2/token"))
    assert minted == 2, "renewed on the 401"
    assert server.requests_to("/api/invoices")[-1].headers["Authorization"] == "Bearer tok-2"
    warned = [r.getMessage() for r in caplog.records if "expires_in" in r.getMessage()]
    assert len(warned) == (0 if expires_in == "86399.5" else 1), warned


def test_401_remints_once_and_retries(server: ScriptedServer) -> None:
    server.script(
        "/oauth2/token", Reply(body=TOKEN), Reply(body={**TOKEN, "access_token": "tok-2"})
    )
    server.script(
        "/api/invoices",
        Reply(401, {"errors": {"error": ["Unauthorized"]}}),
        Reply(body=[{"id": 7}]),
    )
    http = make_http(server)
    assert get(http) == [{"id": 7}]
    assert [s.headers["Authorization"] for s in server.requests_to("/api/invoices")] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]


def api_error(server: ScriptedServer) -> str:
    """The one-line error a failing request raises."""
    with pytest.raises(CoupaAPIError) as err:
        get(make_http(server))
    return str(err.value)


def test_second_401_fails_with_hint_and_no_secret(server: ScriptedServer) -> None:
    server.script("/api/invoices", Reply(401, {"errors": {"error": ["Unauthorized"]}}))
    message = api_error(server)
    assert "HTTP 401" in message
    assert "credentials" in message
    assert SECRET not in message
    assert "tok-1" not in message


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(401, {"error": "invalid_client"}), "check client_id and client_secret"),
        (Reply(400, {"error": "invalid_scope"}), "scopes"),
    ],
)
def test_bad_credentials_raise_clear_auth_error(
    server: ScriptedServer, reply: Reply, expected: str
) -> None:
    server.script("/oauth2/token", reply)
    http = make_http(server)
    with pytest.raises(CoupaAuthError) as err:
        get(http)
    message = str(err.value)
    assert f"HTTP {reply.status}" in message
    assert expected in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "answer",
    [
        {"token": "tok-live-Zr8q", "expires_in": 3600},  # a token_url that is not Coupa's
        {"data": {"access_token": "tok-live-Zr8q"}},
        ["tok-live-Zr8q"],
    ],
)
def test_a_token_answer_without_access_token_is_named_without_quoting_its_credentials(
    server: ScriptedServer, answer: object
) -> None:
    """A success's body is a credential under a name the tap does not read: quoted in
    the error, a live token would be in the log."""
    server.script("/oauth2/token", Reply(body=answer))
    with pytest.raises(CoupaAuthError, match="without an access_token") as err:
        make_auth(server).headers()
    assert "tok-live-Zr8q" not in str(err.value)
    assert "Check token_url" in str(err.value)


def test_a_token_no_header_can_carry_is_an_auth_error_quoting_none_of_it(
    server: ScriptedServer,
) -> None:
    """httpx refuses a header that is not ASCII with an error naming the character."""
    server.script("/oauth2/token", Reply(body={**TOKEN, "access_token": "tök-live-Zr8q"}))
    with pytest.raises(CoupaAuthError, match="token_url") as err:
        get(make_http(server))
    assert "ö" not in str(err.value)
    assert "\\xf6" not in str(err.value)
    assert server.requests_to("/api/invoices") == [], "nothing was sent with it"


def test_a_token_answered_with_another_success_status_is_not_quoted(
    server: ScriptedServer,
) -> None:
    """Only a 200 is Coupa's token; a 201's body is still a credential."""
    server.script("/oauth2/token", Reply(201, {"access_token": "tok-live-Zr8q"}))
    with pytest.raises(CoupaAuthError, match="HTTP 201") as err:
        make_auth(server).headers()
    assert "tok-live-Zr8q" not in str(err.value)
    assert "access_token" in str(err.value), "what it answered is named"


@pytest.mark.usefixtures("no_backoff_wait")
@pytest.mark.parametrize(
    "failure",
    [Reply(503, {"errors": {}}), Reply(429, {"errors": {}}, headers={"Retry-After": "0"})],
    ids=["503", "429"],
)
def test_a_token_request_coupa_may_answer_later_is_retried(
    server: ScriptedServer, failure: Reply
) -> None:
    server.script("/oauth2/token", failure, failure, Reply(body=TOKEN))
    assert make_auth(server, max_retries=2).headers() == {"Authorization": "Bearer tok-1"}
    asked = len(server.requests_to("/oauth2/token"))
    assert asked == 3, "two failures, then the token"


@pytest.mark.usefixtures("no_backoff_wait")
def test_a_token_request_that_keeps_failing_is_one_clear_error_and_not_asked_again(
    server: ScriptedServer,
) -> None:
    server.script("/oauth2/token", Reply(503, {"errors": {}}))
    auth = make_auth(server, max_retries=2)
    for _ in range(2):
        with pytest.raises(CoupaAuthError, match="HTTP 503") as err:
            auth.headers()
        assert SECRET not in str(err.value)
    asked = len(server.requests_to("/oauth2/token"))
    assert asked == 3, "3 tries, then the error is kept"


def test_refused_credentials_are_not_retried(server: ScriptedServer) -> None:
    server.script("/oauth2/token", Reply(401, {"error": "invalid_client"}))
    with pytest.raises(CoupaAuthError, match="invalid_client"):
        make_auth(server, max_retries=5).headers()
    asked = len(server.requests_to("/oauth2/token"))
    assert asked == 1, "a refusal is final"


def test_unreachable_token_endpoint_is_an_auth_error() -> None:
    client = httpx.Client(timeout=2)
    auth = CoupaOAuthAuthenticator(
        token_url="http://127.0.0.1:9/oauth2/token",
        client_id="cid",
        client_secret=SECRET,
        scopes=[],
        client=client,
        timeout=2,
    )
    with pytest.raises(CoupaAuthError, match="Could not reach") as err:
        auth.headers()
    assert SECRET not in str(err.value)


@pytest.fixture
def no_backoff_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "MAX_WAIT_S", 0.0)


@pytest.mark.parametrize(
    "failure",
    [
        Reply(429, {"errors": {"error": ["Rate limit exceeded"]}}),
        Reply(429, {"errors": {}}, headers={"Retry-After": "1"}),
        Reply(503, {"errors": {}}),
        Reply(200, raw=b'[{"id": 1}, {"id"'),
        Reply(200, raw=b"<html>Maintenance</html>", headers={"Content-Type": "text/html"}),
        Reply(200, body=[{"id": 1}, {"id": 2}], truncate=True),
    ],
    ids=["429", "429-retry-after", "503", "bad-json", "html-200", "truncated"],
)
def test_transient_failures_are_retried(server: ScriptedServer, failure: Reply) -> None:
    server.script("/api/invoices", failure, Reply(body=[{"id": 1}, {"id": 2}]))
    http = make_http(server)
    started = time.monotonic()
    assert get(http) == [{"id": 1}, {"id": 2}]
    assert len(server.requests_to("/api/invoices")) == 2
    assert http.stats.retries == 1
    if "Retry-After" in failure.headers:
        assert time.monotonic() - started >= 0.9, "Retry-After is honoured"
    if failure.status == 429:
        assert http.stats.throttled == 1
        assert http.limiter.rate < http.limiter.max_rate, "a 429 slows the limiter down"


def test_other_4xx_fails_fast_naming_stream_status_and_path(server: ScriptedServer) -> None:
    server.script("/api/invoices", Reply(400, {"errors": {"filter": ["Unknown field nope"]}}))
    message = api_error(server)
    assert "'invoices'" in message
    assert "HTTP 400" in message
    assert "/api/invoices" in message
    assert "Unknown field nope" in message
    assert len(server.requests_to("/api/invoices")) == 1


@pytest.mark.parametrize(
    ("body", "kind"),
    [(b"null", "null"), (b'{"id": 1}', "an object"), (b'"[]"', "a string")],
    ids=["null", "object", "string"],
)
def test_a_body_that_is_not_an_array_is_named_as_json_names_it(
    server: ScriptedServer, body: bytes, kind: str
) -> None:
    server.script("/api/invoices", Reply(raw=body))
    assert f"/api/invoices returned {kind}, not a JSON array" in api_error(server)


def test_a_thread_releasing_its_client_closes_it_and_connects_again(
    server: ScriptedServer,
) -> None:
    server.script("/api/invoices", Reply(body=[{"id": 1}]))
    http = make_http(server)
    assert get(http) == [{"id": 1}]
    first = http.connection
    http.release()
    assert first.is_closed, "its socket closed now, not by the garbage collector"
    assert get(http) == [{"id": 1}]
    assert http.connection is not first


@pytest.mark.parametrize("asking", ["page", "token"])
def test_a_request_out_when_the_sync_ends_fails_at_once_unretried_and_unlogged(
    asking: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing the connections (the sync is over) is not a network failure to retry."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        client = httpx.Client(timeout=30)
        auth = CoupaOAuthAuthenticator(
            token_url=f"{url}/oauth2/token",
            client_id="cid",
            client_secret=SECRET,
            scopes=[],
            client=client,
            timeout=30,
            max_retries=3,
        )
        http = CoupaHTTP(
            api_base=f"{url}/api",
            authenticator=CoupaAPIKeyAuthenticator(api_key="key"),
            limiter=RateLimiter(1000, 100),
            connect=lambda: client,
            max_retries=3,
        )
        failed: list[Exception] = []

        def ask() -> None:
            try:
                get(http) if asking == "page" else auth.headers()
            except CoupaError as exc:
                failed.append(exc)

        thread = threading.Thread(target=ask)
        thread.start()
        connection, _ = silent.accept()
        with connection:
            assert connection.recv(1024), "the request is out"
            client.close()
        # Hanging up wakes a read that was waiting before the close (closing does not).
        thread.join(5)
    assert not thread.is_alive()
    assert [type(exc) for exc in failed] == [CoupaAuthError if asking == "token" else CoupaError]
    assert "sync ended" in str(failed[0])
    assert "Retrying" not in caplog.text


def test_retries_give_up_with_one_clear_error(server: ScriptedServer) -> None:
    server.script(
        "/api/invoices", Reply(502, raw=b"bad gateway", headers={"Content-Type": "text/plain"})
    )
    http = make_http(server, max_retries=2)
    with pytest.raises(CoupaError, match="giving up on /api/invoices after 3 attempts"):
        get(http)
    assert len(server.requests_to("/api/invoices")) == 3


def test_403_names_the_missing_scope(server: ScriptedServer) -> None:
    server.script("/api/invoices", Reply(403, {"errors": {"error": ["Forbidden"]}}))
    http = make_http(server)
    with pytest.raises(CoupaAPIError, match=r"lack the scope core\.invoice\.read"):
        get(http)


def test_redirects_are_not_followed(server: ScriptedServer) -> None:
    server.script(
        "/api/invoices", Reply(302, raw=b"", headers={"Location": "https://elsewhere.example/api"})
    )
    http = make_http(server)
    with pytest.raises(CoupaAPIError, match="redirected"):
        get(http)
    assert len(server.requests_to("/api/invoices")) == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply(302, raw=b"", headers={"Location": "https://sso.example/login?bearer=tok-Zr8q-echo"}),
        Reply(200, raw=b"<html/>", headers={"Content-Type": "text/html; token=tok-Zr8q-echo"}),
    ],
    ids=["Location", "Content-Type"],
)
def test_a_response_header_quoted_in_an_error_never_shows_the_token(
    server: ScriptedServer, reply: Reply
) -> None:
    """Headers are the server's text as much as its body: one may echo the request's."""
    server.script("/oauth2/token", Reply(body={**TOKEN, "access_token": "tok-Zr8q-echo"}))
    server.script("/api/invoices", reply)
    with pytest.raises(CoupaError) as failed:
        get(make_http(server, max_retries=0))
    carried = server.requests_to("/api/invoices")[0].headers["Authorization"]
    same = carried == "Bearer tok-Zr8q-echo"
    assert same, "the request carried another token"
    leaked = "tok-Zr8q-echo" in str(failed.value)
    assert not leaked, "the error shows the token"  # a diff would print it
    assert "***" in str(failed.value), "the header is still quoted"


def test_the_token_is_taken_after_the_rate_limiter_lets_the_request_go(
    server: ScriptedServer,
) -> None:
    """A token taken before a long wait for the limiter could expire in the queue."""
    events: list[str] = []
    http = make_http(server)
    acquire, headers = http.limiter.acquire, http.auth.headers

    def waiting(cancelled: t.Callable[[], bool] | None = None) -> bool:
        events.append("limiter")
        return acquire(cancelled)

    def minting() -> dict[str, str]:
        events.append("token")
        return headers()

    http.limiter.acquire = waiting
    http.auth.headers = minting
    server.script("/api/invoices", Reply(body=[{"id": 1}]))
    assert get(http) == [{"id": 1}]
    assert events == ["limiter", "token"]


def test_bodies_that_echo_the_request_never_show_the_secret_or_the_token() -> None:
    """A proxy may echo the token request's form, a server the Authorization header."""
    secret = "p@ss w+rd/é-9Kq"  # spelled differently when form-encoded
    echoed = f"Bad request: grant_type=client_credentials&client_secret={quote_plus(secret)}"
    with ScriptedServer() as srv:

        def authenticator() -> CoupaOAuthAuthenticator:
            return CoupaOAuthAuthenticator(
                token_url=f"{srv.url}/oauth2/token",
                client_id="cid",
                client_secret=secret,
                scopes=["core.invoice.read"],
                client=httpx.Client(timeout=5),
                timeout=5,
            )

        srv.script("/oauth2/token", Reply(400, raw=echoed.encode()))
        with pytest.raises(CoupaAuthError) as refused:
            authenticator().headers()
        sent = srv.requests_to("/oauth2/token")[0].form["client_secret"] == secret
        assert sent, "the client secret was not sent as configured"
        assert "client_secret=***" in str(refused.value), "the echo is what was logged"
        assert quote_plus(secret) not in str(refused.value)

        token = "tok-Zr8-echoed"
        srv.script("/oauth2/token", Reply(body={**TOKEN, "access_token": token}))
        srv.script("/api/invoices", Reply(500, raw=f"Invalid Bearer {token}".encode()))
        http = CoupaHTTP(
            api_base=f"{srv.url}/api",
            authenticator=authenticator(),
            limiter=RateLimiter(1000, 100),
            connect=lambda: httpx.Client(timeout=5),
            max_retries=0,
        )
        with pytest.raises(CoupaError) as failed:
            get(http)
        assert srv.requests_to("/api/invoices")[0].headers["Authorization"] == f"Bearer {token}"
        assert "Invalid Bearer ***" in str(failed.value)
        assert token not in str(failed.value)


@pytest.mark.usefixtures("no_backoff_wait")
def test_429s_have_retries_of_their_own_and_other_failures_do_not(
    server: ScriptedServer,
) -> None:
    """A 429 says the pace was too fast, not that the request fails."""
    throttled = Reply(429, {"errors": {"error": ["Rate limit exceeded"]}})
    server.script("/api/invoices", *[throttled] * 5, Reply(body=[{"id": 1}]))
    assert get(make_http(server, max_retries=2)) == [{"id": 1}]
    assert len(server.requests_to("/api/invoices")) == 6, "five 429s, more than max_retries"

    server.seen.clear()
    server.script("/api/invoices", *[throttled] * 30)
    with pytest.raises(CoupaError, match="after 11 attempts"):
        get(make_http(server, max_retries=2))  # 1 + 2 + 8 more for 429s

    server.seen.clear()
    server.script("/api/invoices", Reply(503, {"errors": {}}))
    with pytest.raises(CoupaError, match="after 3 attempts"):
        get(make_http(server, max_retries=2))


def test_a_large_page_is_read_in_large_reads(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page of full invoices (~1.3 MB) is not read 64 KiB at a time, as httpcore does."""
    asked: list[int] = []
    read = SyncStream.read

    def recorded(stream: t.Any, max_bytes: int, timeout: float | None = None) -> bytes:
        asked.append(max_bytes)
        return read(stream, max_bytes, timeout)

    monkeypatch.setattr(SyncStream, "read", recorded)
    page = [{"id": n, "note": "x" * 1000} for n in range(1, 1301)]
    server.script("/api/invoices", Reply(body=page))
    assert [record["id"] for record in get(make_http(server))] == list(range(1, 1301))
    assert set(asked) == {http.READ_BYTES}
    assert http.READ_BYTES > 1 << 16


def trickling_server(stop: threading.Event) -> socket.socket:
    """Answers every request 200 with a body it sends a byte at a time, forever: each
    byte comes well within any read timeout, the response never ends."""

    def answer(connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            with contextlib.suppress(OSError):
                connection.sendall(head + b"Content-Length: 1000000\r\n\r\n[")
                while not stop.wait(0.02):
                    connection.sendall(b" ")

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = listener.accept()
                threading.Thread(target=answer, args=(connection,), daemon=True).start()

    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=serve, daemon=True).start()
    return listener


@pytest.mark.parametrize("asking", ["page", "token"])
def test_a_response_trickling_in_is_abandoned_after_request_timeout(asking: str) -> None:
    """httpx's timeouts bound each wait for bytes, not a response: without a deadline of
    its own, a request (or the token every request waits for) would never end."""
    stop = threading.Event()
    with trickling_server(stop) as listener:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        config = {"base_url": url, "client_id": "cid", "client_secret": SECRET}
        settings = Settings.parse(
            {**config, "request_timeout": 0.2, "max_retries": 0}, registry(), ["invoices"]
        )
        resources = SyncResources(settings, scopes=lambda: ["core.invoice.read"], sync_order=list)
        if asking == "page":
            resources.authenticator = CoupaAPIKeyAuthenticator(api_key="key")
        failed: list[Exception] = []

        def ask() -> None:
            try:
                get(resources.http) if asking == "page" else resources.authenticator.headers()
            except CoupaError as exc:
                failed.append(exc)

        thread = threading.Thread(target=ask, daemon=True)
        thread.start()
        thread.join(WAIT_S)
        stop.set()
        resources.close()
    assert not thread.is_alive(), "the request was never abandoned"
    assert [type(exc) for exc in failed] == [CoupaAuthError if asking == "token" else CoupaError]
    assert "ReadTimeout" in str(failed[0])


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_proxy_from_the_environment_never_carries_credentials_for_a_loopback_instance(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """Plain http is allowed on loopback because it never leaves the machine; an
    environment's proxy (a corporate one, elsewhere) would get the secret and token."""
    server.script("/api/invoices", Reply(body=[{"id": 1}]))
    with ScriptedServer() as proxy:  # stands for a proxy on another host
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(variable, proxy.url)
        config = {"base_url": server.url, "client_id": "cid", "client_secret": SECRET}
        settings = Settings.parse(config, registry(), ["invoices"])
        resources = SyncResources(settings, scopes=lambda: ["core.invoice.read"], sync_order=list)
        try:
            with contextlib.suppress(CoupaError):
                get(resources.http)
        finally:
            resources.close()
        assert [(s.method, s.path) for s in proxy.seen] == []
    sent = server.requests_to("/oauth2/token")[0].form["client_secret"] == SECRET
    assert sent, "the token request carried another secret"  # a diff would print both
    assert server.requests_to("/api/invoices")

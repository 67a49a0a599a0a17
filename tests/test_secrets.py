"""No secret (client secret, access token, API key) appears in any output, log or state."""

from __future__ import annotations

import typing as t

import pytest

from coupa_sandbox import Sandbox, SandboxConfig
from coupa_sandbox.auth import TokenStore
from tests.helpers import TapRunner

pytestmark = pytest.mark.sandbox

SECRET = "Zx9-client-secret-7Qp"
API_KEY = "legacy-key-4Rt8-very-secret"


@pytest.fixture
def minted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token the sandbox issues during the test."""
    tokens: list[str] = []
    issue = TokenStore.issue

    def recording(self: TokenStore, *args: t.Any, **kwargs: t.Any) -> tuple[str, int]:
        token, ttl = issue(self, *args, **kwargs)
        tokens.append(token)
        return token, ttl

    monkeypatch.setattr(TokenStore, "issue", recording)
    return tokens


def assert_clean(text: str, secrets: list[str]) -> None:
    """No secret in ``text``; a failure says where, the secret masked (a diff would show it)."""
    for number, secret in enumerate(secrets):
        at = text.find(secret)
        around = text[max(0, at - 80) : at + len(secret) + 80].replace(secret, "***")
        assert at < 0, f"secret #{number} at character {at}: ...{around}..."


def test_no_secret_in_output_logs_or_state(tap: TapRunner, minted: list[str]) -> None:
    config = SandboxConfig(
        seed=2, client_secret=SECRET, api_key=API_KEY, token_ttl=2, latency_ms=20
    )
    with Sandbox(config) as sb:
        sb.set_faults({"5xx": {"probability": 0.2}})
        settings = {
            "base_url": sb.url,
            "client_id": "sandbox-client",
            "client_secret": SECRET,
            "page_size": 5,
            "max_retries": 10,
        }
        ok = tap.run(settings, ["suppliers", "users"], env={"LOGLEVEL": "DEBUG"})
        wrong = tap.run({**settings, "client_secret": SECRET + "x"}, ["users"], check=False)
        legacy = tap.run(
            {"base_url": sb.url, "api_key": API_KEY, "page_size": 20},
            ["users"],
            env={"LOGLEVEL": "DEBUG"},
        )
    assert len(minted) >= 2, "short-lived tokens make the tap re-mint during the sync"
    assert ok.records["suppliers"], "the sync itself worked"
    assert legacy.records["users"]
    assert wrong.returncode != 0
    assert "invalid_client" in wrong.stderr
    secrets = [SECRET, API_KEY, *minted]
    for run in (ok, wrong, legacy):
        assert_clean(run.stdout, secrets)
        assert_clean(run.stderr, secrets)
        assert "Bearer " not in run.stderr
    # The state is what the runs wrote as STATE messages (checked with stdout above).
    assert ok.states, "the sync wrote its state"
    assert ok.state["bookmarks"]["suppliers"].get("replication_key_value")


def test_a_secret_setting_of_the_wrong_type_is_not_quoted_in_its_error(tap: TapRunner) -> None:
    """The settings' schema check quotes the value it rejects, whatever its type."""
    with Sandbox(SandboxConfig(seed=2, client_secret=SECRET)) as sb:
        settings = {"base_url": sb.url, "client_id": "sandbox-client"}
        # A number is a secret too: a digits-only one written unquoted in the JSON.
        for value, spelled in (
            ([SECRET], SECRET),
            ({"value": SECRET}, SECRET),
            (98765432109876, "98765432109876"),
            (9876543210.98765, "9876543210.98765"),
        ):
            run = tap.run({**settings, "client_secret": value}, ["users"], check=False)
            assert run.returncode == 1
            errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
            assert len(errors) == 1, run.stderr[-500:]
            assert "client_secret" in errors[0], "the error names the setting"
            assert_clean(run.stderr, [spelled])


def test_a_key_the_http_library_refuses_is_not_quoted_in_the_retry_warnings(
    tap: TapRunner,
) -> None:
    """h11 quotes a header value it refuses (a key pasted with a trailing space)."""
    with Sandbox(SandboxConfig(seed=2, api_key=API_KEY)) as sb:
        settings = {"base_url": sb.url, "api_key": API_KEY + " ", "max_retries": 1}
        run = tap.run(settings, ["users"], check=False)
    assert run.returncode == 1
    assert "Illegal header value" in run.stderr, run.stderr[-2000:]
    assert "Retrying users page" in run.stderr, "the warnings this test is about"
    assert_clean(run.stderr, [API_KEY])


def test_an_api_key_no_header_can_carry_is_one_error_quoting_none_of_it(tap: TapRunner) -> None:
    """httpx refuses a header that is not ASCII with a traceback naming the character."""
    key = "clé-4Rt8-very-secret"
    with Sandbox(SandboxConfig(seed=2, api_key=key)) as sb:
        tap.files({"base_url": sb.url, "api_key": API_KEY}, ["users"], None)  # the catalog
        run = tap.run({"base_url": sb.url, "api_key": key}, ["users"], check=False)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr, run.stderr[-1500:]
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, run.stderr[-500:]
    assert "api_key" in errors[0], "the error names the setting"
    assert_clean(run.stderr, ["é", "\\xe9", key])

"""Coupa authentication: OAuth2 client credentials, with legacy API keys as a fallback.

One authenticator instance is shared by every stream and worker thread, so a sync
mints one token and renews it only when it is about to expire or Coupa rejects it.
"""

from __future__ import annotations

import threading
import typing as t

import httpx
from singer_sdk.authenticators import APIKeyAuthenticator, OAuthAuthenticator
from singer_sdk.helpers._util import utc_now
from typing_extensions import override

from tap_coupa import ahead, rawjson, retry
from tap_coupa.errors import CoupaAuthError, hide, redact, snippet

#: Renew this many seconds before Coupa's stated expiry, so no request carries a
#: token that expires in flight.
EXPIRY_MARGIN_S = 60


class CoupaAuthenticator(t.Protocol):
    """What the transport needs from an authenticator."""

    def headers(self) -> dict[str, str]:
        """Return the headers that authenticate one request."""

    def invalidate(self, headers: t.Mapping[str, str]) -> bool:
        """Drop the credential behind ``headers`` after a 401; True if a retry may help."""


class _TransientTokenError(Exception):
    """A token request Coupa may answer later: the network failed, or 429 or 5xx."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        #: The server's ``Retry-After``, in seconds (see ``retry.wait``).
        self.retry_after = retry_after


class CoupaOAuthAuthenticator(OAuthAuthenticator):
    """OAuth2 client-credentials flow as Coupa implements it.

    Coupa issues no refresh token: a new token is minted with the client credentials
    whenever the current one nears expiry or is rejected with a 401.
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        scopes: t.Sequence[str],
        client: httpx.Client,
        timeout: float,
        max_retries: int = 0,
    ) -> None:
        """``max_retries``: repeats of a token request Coupa may answer later (see ``_post``)."""
        hide(client_secret)  # an error body may echo the token request's form
        super().__init__(
            auth_endpoint=token_url,
            oauth_scopes=" ".join(scopes),
            client_id=client_id,
            client_secret=client_secret,
        )
        self._client = client
        self._timeout = timeout
        self._lock = threading.Lock()
        self._post = retry.retrying(
            self._post_once,
            _TransientTokenError,
            max_retries=max_retries,
            on_backoff=self._on_backoff,
            on_giveup=self._on_giveup,
        )
        #: Why the last mint failed: final (the sync stops), so it is not asked again.
        self._refused: str | None = None
        #: Whether the last try was the request sent ahead (``ahead.take``).
        self._taken = False

    @property
    @override
    def oauth_request_body(self) -> dict[str, t.Any]:
        """Form fields of Coupa's token request."""
        return ahead.token_form(
            self.client_id or "", self.client_secret or "", self.oauth_scopes or ""
        )

    @override
    def is_token_valid(self) -> bool:
        """Treat a token as expired a margin before Coupa does."""
        if self.access_token is None or self.last_refreshed is None:
            return False
        if not self.expires_in:
            return True
        age = (utc_now() - self.last_refreshed).total_seconds()
        return age < self.expires_in - min(EXPIRY_MARGIN_S, self.expires_in / 10)

    @override
    def update_access_token(self) -> None:
        """Mint a token over httpx; errors name the status, never the secret."""
        requested_at = utc_now()
        self._taken = False
        response = self._post()
        if response.status_code != httpx.codes.OK:
            raise CoupaAuthError(self._failure_message(response))
        try:
            payload = response.json()
            token = payload["access_token"]
        except (ValueError, KeyError, TypeError):
            msg = (
                f"Coupa token endpoint {self.auth_endpoint} answered 200 without an "
                f"access_token ({_shape(response)}). Check token_url."
            )
            raise CoupaAuthError(msg) from None
        if not str(token).isascii():  # httpx's error would quote its characters
            msg = (
                f"Coupa token endpoint {self.auth_endpoint} answered an access_token with "
                "characters other than ASCII, which no HTTP header carries. Check token_url."
            )
            raise CoupaAuthError(msg)
        self.access_token = str(token)
        hide(self.access_token)
        expires_in = payload.get("expires_in")
        self.expires_in = _seconds(expires_in)
        if self.expires_in is None and expires_in is not None:
            self.logger.warning(
                "Coupa's token answer has expires_in %s, not a number of seconds: the "
                "token is renewed when Coupa rejects it.",
                snippet(repr(expires_in), 40),
            )
        self.last_refreshed = requested_at
        self.logger.info(
            "Obtained a Coupa access token (expires in %ss%s).",
            self.expires_in,
            "; asked for while the tap started" if self._taken else "",
        )

    def _post_once(self) -> httpx.Response:
        """The token request; the network failing, 429 and 5xx are worth repeating.

        The first try may be the request the command sent ahead (``ahead.take``).
        """
        try:
            form = self.oauth_request_body
            response = ahead.take(self.auth_endpoint, form)
            self._taken = response is not None
            if response is None:
                response = self._client.post(
                    self.auth_endpoint,
                    data=form,
                    headers={"Accept": "application/json"},
                    timeout=self._timeout,
                )
        except httpx.HTTPError as exc:
            if self._client.is_closed:  # the sync ended (``SyncResources.close``): no retry
                msg = "The sync ended while a Coupa access token was being minted."
                raise CoupaAuthError(msg) from None
            msg = (
                f"Could not reach the Coupa token endpoint {self.auth_endpoint} "
                f"({type(exc).__name__}). Check base_url/token_url and the network."
            )
            raise _TransientTokenError(msg) from None
        if response.status_code in retry.RETRY_STATUSES:
            msg = (
                f"The Coupa token endpoint {self.auth_endpoint} answered HTTP "
                f"{response.status_code} ({snippet(response.text)!r}); rerun later."
            )
            raise _TransientTokenError(msg, retry.retry_after(response.headers.get("Retry-After")))
        return response

    def _on_backoff(self, details: t.Any) -> None:
        self.logger.warning(
            "Retrying the token request in %.1fs (attempt %d): %s",
            details["wait"],
            details["tries"],
            details["exception"],
        )

    def _on_giveup(self, details: t.Any) -> None:
        raise CoupaAuthError(str(details["exception"])) from None

    def _failure_message(self, response: httpx.Response) -> str:
        """Explain a refused token request in one line with the likely fix."""
        # A success's body (201, 203) is a credential, never quoted (``_shape``).
        text = _shape(response) if response.is_success else repr(snippet(response.text))
        try:
            error = str(response.json().get("error", ""))
        except (ValueError, AttributeError):
            error = ""
        hint = {
            "invalid_client": "check client_id and client_secret",
            "invalid_scope": f"check that the client may use the scopes {self.oauth_scopes!r}",
            "unsupported_grant_type": "enable the client credentials grant for this client",
        }.get(error, "check client_id, client_secret, scopes and token_url")
        return (
            f"Coupa refused the access token request: HTTP {response.status_code} "
            f"{repr(redact(error)) if error else text} from {self.auth_endpoint}; {hint}."
        )

    def headers(self) -> dict[str, str]:
        """Bearer header with a fresh token, minting one under a lock if needed.

        A failed mint ends the sync, so every request waiting for a token gets the
        same error instead of asking Coupa again (a dozen threads may be waiting).
        """
        with self._lock:
            if self._refused is not None:
                raise CoupaAuthError(self._refused)
            if not self.is_token_valid():
                try:
                    self.update_access_token()
                except CoupaAuthError as exc:
                    self._refused = str(exc)
                    raise
            return {"Authorization": f"Bearer {self.access_token}"}

    def invalidate(self, headers: t.Mapping[str, str]) -> bool:
        """Forget the token a 401 rejected, unless another thread already replaced it."""
        with self._lock:
            if headers.get("Authorization") == f"Bearer {self.access_token}":
                self.access_token = None
        return True


def _shape(response: httpx.Response) -> str:
    """What a token answer is, not what it says: it may hold a live token by another name."""
    try:
        payload = response.json()
    except ValueError:
        content_type = snippet(response.headers.get("Content-Type", ""), 80)
        return f"{content_type or 'no content type'}, not JSON"
    if isinstance(payload, dict):
        return f"an object with the keys {snippet(', '.join(sorted(map(str, payload))), 120)}"
    return rawjson.kind(payload)


def _seconds(value: object) -> int | None:
    """``expires_in`` in whole seconds; None (renewed on a 401) unless a positive number."""
    try:
        seconds = int(float(t.cast("t.Any", value)))
    except (TypeError, ValueError, OverflowError):  # absent, text, NaN, infinite
        return None
    return seconds if seconds > 0 else None


class CoupaAPIKeyAuthenticator(APIKeyAuthenticator):
    """Legacy ``X-COUPA-API-KEY`` authentication (Coupa retired new API keys in R35)."""

    def __init__(self, *, api_key: str) -> None:
        hide(api_key)  # an error body may echo the request's headers
        super().__init__(key="X-COUPA-API-KEY", value=api_key, location="header")

    def headers(self) -> dict[str, str]:
        """The API key header."""
        return dict(self.auth_headers)

    def invalidate(self, headers: t.Mapping[str, str]) -> bool:
        """An API key cannot be renewed: a 401 is final."""
        return False

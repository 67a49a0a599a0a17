"""OAuth 2.0 client-credentials tokens and legacy API keys, Coupa style.

Coupa issues bearer tokens from ``POST /oauth2/token`` (no refresh tokens); each
resource needs a scope such as ``core.invoice.read``.  Legacy ``X-COUPA-API-KEY``
keys carry every scope.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass


@dataclass
class TokenInfo:
    """One issued token."""

    scopes: frozenset[str]
    expires_at: float


@dataclass
class OAuthResult:
    """Status and JSON body of a token request."""

    status: int
    body: dict[str, object]


class TokenStore:
    """Issues and validates tokens; expiry is enforced on every request."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        known_scopes: Iterable[str],
        allowed_scopes: Iterable[str] | None = None,
        ttl: int = 86399,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.known_scopes = frozenset(known_scopes)
        self.allowed_scopes = (
            self.known_scopes if allowed_scopes is None else frozenset(allowed_scopes)
        )
        self.ttl = ttl
        self._clock = clock
        self._tokens: dict[str, TokenInfo] = {}
        self._lock = threading.Lock()
        self.issued = 0

    def issue(self, scopes: Iterable[str], lifetime: float | None = None) -> tuple[str, int]:
        """Create a token; returns (token, expires_in advertised)."""
        token = secrets.token_urlsafe(32)
        ttl = float(self.ttl if lifetime is None else min(self.ttl, lifetime))
        with self._lock:
            now = self._clock()
            self._tokens = {t: i for t, i in self._tokens.items() if i.expires_at > now}
            self._tokens[token] = TokenInfo(frozenset(scopes), now + ttl)
            self.issued += 1
        return token, int(ttl)

    def scopes_for(self, token: str) -> frozenset[str] | None:
        """Scopes of a live token; None when unknown or expired."""
        with self._lock:
            info = self._tokens.get(token)
            if info is None or info.expires_at <= self._clock():
                return None
            return info.scopes

    def expire_all(self) -> None:
        """Invalidate every token (a test hook: forces the client to re-authenticate)."""
        with self._lock:
            self._tokens.clear()

    def token_request(
        self, form: Mapping[str, str], lifetime: float | None = None, advertise: bool = True
    ) -> OAuthResult:
        """Handle a form-encoded client-credentials request."""
        if form.get("grant_type") != "client_credentials":
            return OAuthResult(400, {"error": "unsupported_grant_type"})
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return OAuthResult(401, {"error": "invalid_client"})
        requested = form.get("scope", "").split()
        if requested:
            bad = [
                s for s in requested if s not in self.known_scopes or s not in self.allowed_scopes
            ]
            if bad:
                return OAuthResult(400, {"error": "invalid_scope"})
            scopes = list(dict.fromkeys(requested))
        else:
            scopes = sorted(self.allowed_scopes)
        token, expires_in = self.issue(scopes, lifetime)
        if not advertise:
            expires_in = self.ttl
        return OAuthResult(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": expires_in,
                "scope": " ".join(scopes),
            },
        )

"""Errors the tap raises, each worded as one line that names the problem and the fix."""

from __future__ import annotations

import json
import numbers
import typing as t
from urllib.parse import quote, quote_plus

from singer_sdk.exceptions import ConfigValidationError, FatalAPIError, RetriableAPIError

SNIPPET_CHARS = 200
HIDDEN = "***"
#: Shorter values are not hidden: Coupa's secrets and tokens are long and random, and
#: hiding, say, a one-letter test secret would garble every message (and the phrases
#: read from a body, such as Coupa's "No results match your search criteria").
MIN_SECRET_CHARS = 8


class _Secrets:
    """The secret values this process holds: settings marked secret, minted tokens."""

    spellings: t.ClassVar[set[str]] = set()


def hide(*secrets: object) -> None:
    """Never show these values in what ``redact`` cleans, in any spelling a body echoes.

    A proxy or a server may echo the request in its error body (the token request's
    form, the Authorization header), and a schema validator quotes the value it
    rejects: as sent, form- or URL-encoded, or escaped in a repr or JSON string.
    Every string inside a value is hidden, whatever its type (a list, an object), and
    a number as it is written: a secret of digits given unquoted in the JSON is one.
    """
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= MIN_SECRET_CHARS:
            _Secrets.spellings.update(
                {
                    secret,
                    quote_plus(secret),
                    quote(secret, safe=""),
                    repr(secret)[1:-1],
                    json.dumps(secret)[1:-1],
                }
            )
        elif isinstance(secret, numbers.Number) and not isinstance(secret, bool):
            hide(str(secret))
        elif isinstance(secret, dict):
            hide(*secret.values())
        elif isinstance(secret, (list, tuple)):
            hide(*secret)


def redact(text: str) -> str:
    """``text`` with every secret ``hide`` was given replaced by ``***``."""
    for spelling in sorted(_Secrets.spellings, key=len, reverse=True):
        if spelling in text:
            text = text.replace(spelling, HIDDEN)
    return text


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """Shorten a response body to one log-friendly line, with no secret in it."""
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= limit else f"{flat[:limit]}…"


class CoupaError(FatalAPIError):
    """A failure the sync cannot recover from; its message is the whole story."""


class CoupaAuthError(CoupaError):
    """Coupa did not accept the credentials or could not be reached to mint a token."""


class CoupaAPIError(CoupaError):
    """Coupa answered a request with a status retrying will not fix."""


class CoupaRetriableError(RetriableAPIError):
    """A transient failure (429, 5xx, network, truncated body) worth another try."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, throttled: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        #: A 429: the rate, not the request, was wrong (see ``http.THROTTLED_RETRIES``).
        self.throttled = throttled
        #: Set by the transport: no retry is left for this request.
        self.exhausted = False


class CoupaConfigError(ConfigValidationError):
    """A setting, state or catalog entry the tap cannot work with."""

    def __init__(self, message: str) -> None:
        super().__init__(message, errors=[message])

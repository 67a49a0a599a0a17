"""Errors the tap raises, each worded as one line that names the problem and the fix."""

from __future__ import annotations

from singer_sdk.exceptions import ConfigValidationError, FatalAPIError, RetriableAPIError

SNIPPET_CHARS = 200


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """Shorten a response body to one log-friendly line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else f"{flat[:limit]}…"


class CoupaError(FatalAPIError):
    """A failure the sync cannot recover from; its message is the whole story."""


class CoupaAuthError(CoupaError):
    """Coupa did not accept the credentials or could not be reached to mint a token."""


class CoupaAPIError(CoupaError):
    """Coupa answered a request with a status retrying will not fix."""


class CoupaRetriableError(RetriableAPIError):
    """A transient failure (429, 5xx, network, truncated body) worth another try."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CoupaConfigError(ConfigValidationError):
    """A setting, state or catalog entry the tap cannot work with."""

    def __init__(self, message: str) -> None:
        super().__init__(message, errors=[message])

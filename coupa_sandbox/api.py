"""The Coupa API surface: ``POST /oauth2/token`` and ``GET /api/<path>``.

Transport-free (bytes in, :class:`Response` out) so that the HTTP layer only deals
with sockets, latency and socket-level faults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from . import xml
from .query import QueryError, apply_default_filter, parse_query, shape
from .schema import StreamDef
from .state import SandboxState

JSON_TYPE = "application/json; charset=utf-8"
XML_TYPE = "application/xml; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
NO_RESULTS = "No results match your search criteria."

_encode = msgspec.json.Encoder().encode

MAINTENANCE_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Coupa - Scheduled Maintenance</title></head>"
    b"<body><h1>We'll be back soon</h1><p>Coupa is undergoing scheduled maintenance. "
    b"Please try again shortly.</p></body></html>\n"
)


def error_page(status: int) -> bytes:
    """An HTML error page as a load balancer in front of Coupa would send."""
    reason = {
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }.get(status, "Error")
    return (
        f"<html><head><title>{status} {reason}</title></head><body><center><h1>{status} "
        f"{reason}</h1></center><hr><center>nginx</center></body></html>\n"
    ).encode()


@dataclass
class Response:
    """A complete HTTP response."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    """Encode ``payload`` as a JSON response."""
    return Response(status, _encode(payload), JSON_TYPE, dict(headers or {}))


def error_response(
    status: int,
    key: str,
    message: str,
    want_json: bool = True,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Coupa's error envelope, ``{"errors": {key: [message]}}`` (or its XML form)."""
    errors = {key: [message]}
    if want_json:
        return json_response(status, {"errors": errors}, headers)
    return Response(status, xml.render_errors(errors), XML_TYPE, dict(headers or {}))


def wants_json(headers: Mapping[str, str]) -> bool:
    """JSON only when the Accept header asks for it; XML is Coupa's default."""
    return "application/json" in headers.get("accept", "").lower()


class CoupaApi:
    """Token endpoint and resource queries over a :class:`SandboxState`."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    # -- OAuth ----------------------------------------------------------------------------

    def token(self, body: bytes, headers: Mapping[str, str]) -> Response:
        """``POST /oauth2/token`` with a form-encoded client-credentials grant."""
        content_type = headers.get("content-type", "").lower()
        form: dict[str, str] = {}
        if "application/x-www-form-urlencoded" in content_type or not content_type:
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        lifetime, advertise = self.state.faults.token_lifetime()
        result = self.state.tokens.token_request(form, lifetime, advertise)
        return json_response(result.status, result.body, {"Cache-Control": "no-store"})

    # -- resources ------------------------------------------------------------------------

    def _authorize(self, headers: Mapping[str, str]) -> frozenset[str] | None:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return self.state.tokens.scopes_for(auth[7:].strip())
        api_key = headers.get("x-coupa-api-key")
        if api_key is not None and api_key == self.state.config.api_key:
            return self.state.registry.scopes
        return None

    def route(self, path: str) -> tuple[StreamDef | None, int | None]:
        """Map ``/api/<path>[/<id>]`` to a top-level stream (and record id)."""
        rest = path[len("/api/") :].strip("/")
        stream = self.state.registry.by_path.get(rest)
        if stream is not None:
            return stream, None
        head, _, last = rest.rpartition("/")
        if last.isdigit():
            stream = self.state.registry.by_path.get(head)
            if stream is not None:
                return stream, int(last)
        return None, None

    def get(self, path: str, query_string: str, headers: Mapping[str, str]) -> Response:
        """``GET /api/<path>``: authenticate, authorise, query, render."""
        as_json = wants_json(headers)
        scopes = self._authorize(headers)
        if scopes is None:
            return error_response(401, "error", "Unauthorized", as_json)
        stream, record_id = self.route(path)
        if stream is None:
            return error_response(404, "error", "Not Found", as_json)
        if stream.scope and stream.scope not in scopes:
            return error_response(403, "error", f"Missing scope {stream.scope}", as_json)
        self.state.stats.stream(stream.name)
        store = self.state.store
        custom_keys = self.state.store.custom_keys(stream.name)
        params = parse_qsl(query_string, keep_blank_values=True)
        logged = self.state.requests.add(stream.name, params)
        try:
            query = parse_query(params, stream, custom_keys, self.state.clock, self.state.page_size)
        except QueryError as exc:
            return error_response(400, exc.key, exc.message, as_json)
        if self.state.default_response_filter:
            apply_default_filter(query, stream)
        if record_id is not None:
            found = store.get(stream.name, record_id)
            if found is None:
                return error_response(404, "error", "Not Found", as_json)
            logged.records = 1
            record = shape(found, query, stream)
            if as_json:
                return Response(200, _encode(record), JSON_TYPE)
            return Response(200, xml.render_record(stream.path, record, stream.schema), XML_TYPE)
        page = store.query(stream.name, query)
        logged.records = len(page)
        if not page and self.state.config.empty_status != 200:
            status = self.state.config.empty_status
            if as_json:
                return error_response(status, "warning", NO_RESULTS, True)
            return Response(status, xml.render_warning(NO_RESULTS), XML_TYPE)
        if as_json:
            shaped = page if query.full_records else [shape(r, query, stream) for r in page]
            return Response(200, _encode(shaped), JSON_TYPE)
        shaped = page if query.full_records else [shape(r, query, stream) for r in page]
        return Response(200, xml.render_records(stream.path, shaped, stream.schema), XML_TYPE)

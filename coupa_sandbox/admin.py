"""Admin API under ``/_sandbox/`` (no auth, no rate limit, no faults, no latency).

Tests and demos use it to compare what a sync extracted with what the instance holds,
and to switch faults and live mutations while a sync runs.

``GET  /_sandbox/stats``               request/status/fault/token counters, body bytes sent,
                                      first/last API request's arrival (monotonic s)
``GET  /_sandbox/counts``              stream -> record count (child streams: nested items)
``GET  /_sandbox/matching/<stream>?q`` ``{"records": n}``: records the API query ``q`` matches
                                      on every page (its filters; offset and limit ignored)
``GET  /_sandbox/streams``             top-level streams with path and scope
``GET  /_sandbox/records/<stream>``    every current record, full JSON, id order
``GET  /_sandbox/requests``            API queries served: ``[{"stream", "params", "at",
                                      "records"}]`` (arrival, monotonic s; records served)
``GET  /_sandbox/faults``              current fault config and injection counts
``POST /_sandbox/faults``              install a fault config (``{}`` clears)
``POST /_sandbox/page-size``           ``{"page_size": n}``: at most n records a page, silently
``POST /_sandbox/mutate``              ``{"stream": s, "update": n, "insert": n, "delete": n}``
                                      (and ``"delete_ids": [...]`` to delete chosen records)
``GET  /_sandbox/background``          current background mutation rules
``POST /_sandbox/background``          ``{"stream": s, "every_requests": k, …}`` (``{}`` stops)
``GET  /_sandbox/response-filter``     whether the default API response filter is on
``POST /_sandbox/response-filter``     ``{"default": true}`` trims invoices, orders, users, …
``POST /_sandbox/reset``               regenerate all data from the seed
``POST /_sandbox/expire-tokens``       invalidate every issued token
``POST /_sandbox/reset-stats``         zero the counters, empty the request log
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from .api import Response, error_response, json_response
from .query import QueryError, parse_query
from .state import SandboxState

PREFIX = "/_sandbox/"


class AdminApi:
    """Routes admin requests to the shared state."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def handle(self, method: str, path: str, body: bytes, query: str = "") -> Response:
        """Dispatch one admin request (``query``: the URL's query string)."""
        route = path[len(PREFIX) :].strip("/")
        try:
            payload: Any = msgspec.json.decode(body) if body.strip() else {}
        except msgspec.DecodeError:
            return error_response(400, "error", "Body is not valid JSON")
        try:
            return self._dispatch(method, route, payload, query)
        except (KeyError, ValueError, TypeError) as exc:
            return error_response(400, "error", str(exc).strip("'\""))
        except QueryError as exc:
            return error_response(400, exc.key, exc.message)

    def _stream(self, route: str, query: str) -> Response:
        """``records/<stream>`` and ``matching/<stream>``: one top-level stream's data."""
        state = self.state
        kind, _, name = route.partition("/")
        if name not in state.registry or not state.registry[name].top_level:
            return error_response(404, "error", f"Unknown top-level stream {name}")
        if kind == "records":
            return Response(200, state.store.records_json(name))
        # The records a scan with these filters reads: the requests it needs, known.
        parsed = parse_query(
            parse_qsl(query, keep_blank_values=True),
            state.registry[name],
            state.store.custom_keys(name),
            state.clock,
        )
        parsed.offset, parsed.limit = 0, sys.maxsize  # one page holding every match
        return json_response(200, {"records": len(state.store.query(name, parsed))})

    def _dispatch(self, method: str, route: str, payload: Any, query: str) -> Response:
        state = self.state
        if method == "GET":
            if route == "stats":
                return json_response(200, state.stats_snapshot())
            if route == "counts":
                return json_response(200, state.store.counts_now())
            if route == "streams":
                return json_response(
                    200,
                    [
                        {
                            "name": s.name,
                            "path": s.path,
                            "scope": s.scope,
                            "replication_key": s.replication_key,
                        }
                        for s in state.registry.top_level
                    ],
                )
            if route.startswith(("records/", "matching/")):
                return self._stream(route, query)
            if route == "faults":
                return json_response(200, state.faults.snapshot())
            if route == "background":
                return json_response(200, state.store.background())
            if route == "requests":
                return json_response(200, state.requests.entries())
            if route == "response-filter":
                return json_response(200, {"default": state.default_response_filter})
        elif method == "POST":
            if route == "background" and isinstance(payload, list):
                state.set_background(payload)
                return json_response(200, state.store.background())
            if not isinstance(payload, dict):
                raise ValueError("body must be a JSON object")
            if route == "faults":
                state.set_faults(payload)
                return json_response(200, state.faults.snapshot())
            if route == "page-size":
                state.set_page_size(int(payload["page_size"]))
                return json_response(200, {"page_size": state.page_size})
            if route == "mutate":
                result = state.store.mutate(
                    str(payload["stream"]),
                    update=int(payload.get("update", 0)),
                    insert=int(payload.get("insert", 0)),
                    delete=int(payload.get("delete", 0)),
                    delete_ids=[int(i) for i in payload.get("delete_ids", [])],
                )
                return json_response(200, result)
            if route == "background":
                state.set_background(payload)
                return json_response(200, state.store.background())
            if route == "response-filter":
                state.default_response_filter = bool(payload["default"])
                return json_response(200, {"default": state.default_response_filter})
            if route == "reset":
                state.store.reset()
                return json_response(200, {"reset": True})
            if route == "expire-tokens":
                state.tokens.expire_all()
                return json_response(200, {"expired": True})
            if route == "reset-stats":
                state.stats.reset()
                state.requests.clear()
                return json_response(200, {"reset": True})
        return error_response(404, "error", f"No admin endpoint {method} {PREFIX}{route}")

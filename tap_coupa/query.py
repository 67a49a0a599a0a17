"""Coupa query parameters: the per-stream ``stream_options`` turned into a query."""

from __future__ import annotations

import json
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


def query_key(field: str) -> str:
    """Coupa query keys use underscores where JSON keys use dashes."""
    return field.replace("-", "_")


def stream_params(options: Mapping[str, t.Any], required: Sequence[str]) -> list[tuple[str, str]]:
    """Query parameters from one stream's options (fields, filters, return_object).

    A ``fields`` list always gets the ``required`` keys (id, replication key): the
    scan orders and resumes by id, and the bookmark needs the replication key.
    """
    params: list[tuple[str, str]] = list((options.get("filters") or {}).items())
    if fields := options.get("fields"):
        if isinstance(fields, list):
            missing = [query_key(k) for k in required if query_key(k) not in fields]
            fields = [*missing, *fields]
        params.append(("fields", fields if isinstance(fields, str) else json.dumps(fields)))
    if return_object := options.get("return_object"):
        params.append(("return_object", return_object))
    return params

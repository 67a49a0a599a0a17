"""Coupa query parameters: the per-stream ``stream_options`` turned into a query."""

from __future__ import annotations

import json
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


def query_key(field: str) -> str:
    """Coupa query keys use underscores where JSON keys use dashes."""
    return field.replace("-", "_")


def parse_fields(value: object) -> list[t.Any]:
    """A ``fields`` projection as a list: given as a list, one object, or their JSON text.

    Raises ValueError naming what is wrong, for the settings check to report.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            msg = f"{value!r} is not JSON"
            raise ValueError(msg) from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, (str, dict)) for item in value):
        msg = f"{value!r} is not a list of field names and {{association: [...]}} objects"
        raise ValueError(msg)
    return value


def stream_params(
    options: Mapping[str, t.Any],
    required: Sequence[str],
    projection: list[t.Any] | None = None,
) -> list[tuple[str, str]]:
    """Query parameters from one stream's options (fields, filters, return_object).

    An explicit ``fields`` wins over the catalog's ``projection``; either gets the
    ``extra_fields`` asked for by name, and the ``required`` keys (id, replication key):
    the scan orders and resumes by id, and the bookmark needs the replication key.
    """
    params: list[tuple[str, str]] = list((options.get("filters") or {}).items())
    fields = parse_fields(options["fields"]) if options.get("fields") else projection
    if fields:
        named = set(_names(fields))
        missing = [query_key(k) for k in required if not {k, query_key(k)} & named]
        extra = [query_key(k) for k in options.get("extra_fields") or () if k not in named]
        # Compact: a projection is most of the URL, each quote and comma 3 bytes encoded.
        params.append(("fields", json.dumps([*missing, *fields, *extra], separators=(",", ":"))))
    if return_object := options.get("return_object"):
        params.append(("return_object", return_object))
    return params


def listing_params(
    options: Mapping[str, t.Any], key: str | None, since: str | None
) -> list[tuple[str, str]]:
    """A listing of ids: the stream's filters, ``since`` on ``key``, only the id field."""
    params: list[tuple[str, str]] = list((options.get("filters") or {}).items())
    if key and since:
        params.append((f"{query_key(key)}[gt_or_eq]", since))
    params.append(("fields", json.dumps(["id"])))
    return params


def _names(fields: list[t.Any]) -> list[str]:
    return [item for item in fields if isinstance(item, str)]

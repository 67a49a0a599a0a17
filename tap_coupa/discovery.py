"""Typing custom fields from live records on ``--discover``.

Custom fields are the instance's own: R39 declares ``custom-fields`` as an open
object. With ``discover_custom_fields`` a discovery reads one page of each collection
and declares the keys it finds, so targets get typed columns instead of one JSON blob.
"""

from __future__ import annotations

import functools
import logging
import typing as t
from decimal import Decimal

from tap_coupa.custom_objects import CustomObjectStream
from tap_coupa.errors import CoupaAuthError, CoupaError

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from tap_coupa.client import CoupaStream
    from tap_coupa.resources import SyncResources

logger = logging.getLogger("tap-coupa")

_JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    Decimal: "number",
    dict: "object",
    list: "array",
}


def infer_properties(samples: Iterable[Mapping[str, t.Any]]) -> dict[str, t.Any]:
    """JSON Schema properties for the keys seen in ``samples`` (nullable, types unioned).

    A key that is null in every sample is left undeclared: its type is unknown (a
    lookup or user custom field arrives as an object), and a guess would make a record
    that gives it a value invalid. It still arrives, inside ``custom-fields``.
    """
    seen: dict[str, set[str]] = {}
    for sample in samples:
        for key, value in sample.items():
            kinds = seen.setdefault(key, set())
            if value is not None:
                kinds.add(
                    _JSON_TYPES.get(type(value), "array" if isinstance(value, list) else "string")
                )
    return {key: {"type": [*sorted(kinds), "null"]} for key, kinds in sorted(seen.items()) if kinds}


def discover_custom_fields(streams: Sequence[CoupaStream], resources: SyncResources) -> None:
    """Declare each top-level stream's custom fields from one page of its records."""
    http = resources.http
    limit = [("limit", str(resources.settings.page_size))]
    futures = {
        stream: resources.scheduler.submit(
            stream.name,
            functools.partial(
                http.get,
                stream.path,
                limit,
                stream=stream.name,
                scope=stream.scope,
                stats=http.stats,
                missing_ok=True,  # a first page: a resource missing here has no custom fields
            ),
        )
        for stream in streams
        if not stream.parent_stream_type and "custom-fields" in stream.schema["properties"]
    }
    for stream, future in futures.items():
        try:
            page = future.result()
        except CoupaAuthError:  # no token: no stream can be read, the discovery fails
            raise
        except CoupaError as exc:
            logger.warning("No custom fields discovered for %r: %s", stream.name, exc)
            continue
        if page.not_found and isinstance(stream, CustomObjectStream):
            stream.check_found(page.not_found)
        records = page.records
        found = infer_properties(
            fields
            for r in records
            if isinstance(r, dict) and isinstance(fields := r.get("custom-fields"), dict)
        )
        if found:
            stream.schema["properties"]["custom-fields"]["properties"] = found
            logger.info("Stream %r: custom fields %s.", stream.name, ", ".join(found))

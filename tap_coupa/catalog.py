"""Checks on an input catalog: it may only name streams and properties this tap has."""

from __future__ import annotations

import typing as t

from tap_coupa.errors import CoupaConfigError
from tap_coupa.streams import property_names, registry

if t.TYPE_CHECKING:
    from collections.abc import Collection

    from singer_sdk.singerlib import Catalog

#: The schema every configured custom object's stream starts from.
CUSTOM_OBJECT_SCHEMA = "custom_object"


def check_catalog(catalog: Catalog, custom_objects: Collection[str] = ()) -> None:
    """Refuse a catalog naming streams or properties this tap does not have.

    The SDK would otherwise ignore them silently, and a user would wait for data
    that never comes. ``custom_objects`` are the configured custom objects' streams.
    """
    specs = {*registry(), *custom_objects}
    unknown = sorted(
        entry.tap_stream_id for entry in catalog.streams if entry.tap_stream_id not in specs
    )
    if unknown:
        msg = (
            f"The catalog names unknown streams {unknown[:5]}; regenerate it with "
            "tap-coupa --discover (or meltano select)."
        )
        raise CoupaConfigError(msg)
    for entry in catalog.streams:
        stream = entry.tap_stream_id
        known = property_names(CUSTOM_OBJECT_SCHEMA if stream in custom_objects else stream)
        named = set((entry.schema.properties or {}) if entry.schema else {})
        named |= {crumb[1] for crumb in entry.metadata if len(crumb) > 1}
        if extra := sorted(named - known):
            msg = (
                f"The catalog's {entry.tap_stream_id!r} stream names unknown properties "
                f"{extra[:5]}; regenerate the catalog with tap-coupa --discover."
            )
            raise CoupaConfigError(msg)

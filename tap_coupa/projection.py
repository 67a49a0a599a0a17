"""Coupa ``fields`` projections built from the catalog's selection (``request_fields``).

A projection names what Coupa should send: deselected properties are then never
transferred, and fields that a newer release only sends when asked for by name are
asked for. It is held as a ``Spec`` (name -> ``None`` for the whole value, or the
nested ``Spec`` of an association) and rendered as Coupa's JSON list, e.g.
``["id", {"supplier": ["id", "name"]}, {"custom_fields": {}}]``.
"""

from __future__ import annotations

import typing as t

from tap_coupa.query import query_key
from tap_coupa.shape import EXTRA_FIELDS

if t.TYPE_CHECKING:
    from collections.abc import Collection, Mapping

Spec = dict[str, "Spec | None"]
Breadcrumb = tuple[str, ...]

CUSTOM_FIELDS = "custom-fields"


def from_schema(
    schema: Mapping[str, t.Any],
    mask: Mapping[Breadcrumb, bool],
    *,
    required: Collection[str] = (),
    skip: Collection[str] = (),
) -> Spec:
    """The selected properties of ``schema`` (``required`` always, ``skip`` never).

    Properties the mask does not mention follow their parent (the SDK's rule).
    ``extra-fields`` is the tap's catch-all, not a Coupa field, so it is never named.
    """
    return _walk(schema.get("properties") or {}, mask, (), set(required), {*skip, EXTRA_FIELDS})


def _walk(
    properties: Mapping[str, t.Any],
    mask: Mapping[Breadcrumb, bool],
    at: Breadcrumb,
    required: set[str],
    skip: set[str],
) -> Spec:
    spec: Spec = {}
    for name, prop in properties.items():
        crumb = (*at, "properties", name)
        if name in skip or not (mask.get(crumb, True) or name in required):
            continue
        if name == CUSTOM_FIELDS:
            spec[name] = {}  # Coupa's notation for every custom field
            continue
        nested = prop.get("properties") or (prop.get("items") or {}).get("properties")
        if not nested:
            spec[name] = None
        elif sub := _walk(nested, mask, crumb, set(), set()):
            spec[name] = sub
    return spec


def merge(a: Spec | None, b: Spec | None) -> Spec | None:
    """Both projections at once: a whole value (``None``, or ``{}``) covers any part."""
    if a is None or b is None:
        return None
    if not a or not b:
        return {}
    merged = dict(a)
    for name, sub in b.items():
        merged[name] = merge(merged[name], sub) if name in merged else sub
    return merged


def render(spec: Spec) -> list[t.Any]:
    """Coupa's JSON form, with query keys (underscores for the JSON keys' dashes)."""
    return [
        query_key(name) if sub is None else {query_key(name): render(sub) if sub else {}}
        for name, sub in spec.items()
    ]

"""Coupa query semantics: filters, ordering, paging and response shaping.

Follows Coupa's documented query syntax: ``field[op]=value`` with dashes written as
underscores, nested paths through associations and line collections
(``order_lines[account][code]=a-c``), ``limit``/``offset`` paging capped at 50,
``order_by``/``dir``, ``fields=<JSON>`` and ``return_object=limited|shallow``.

Newer-release field: every resource also has ``carbon-footprint-kg`` (a decimal
string derived from the id), which - like fields added in a newer Coupa release - is
only returned when a ``fields`` projection asks for it.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from .clock import Clock
from .schema import Node, StreamDef

NEWER_RELEASE_FIELD = "carbon-footprint-kg"

OPS = frozenset(
    {
        "gt",
        "lt",
        "gt_or_eq",
        "lt_or_eq",
        "not_eq",
        "contains",
        "starts_with",
        "ends_with",
        "in",
        "not_in",
        "blank",
    }
)
TEXT_OPS = frozenset({"contains", "starts_with", "ends_with"})
RANGE_OPS = frozenset({"gt", "lt", "gt_or_eq", "lt_or_eq"})
# Parameters that are not filters.  `format` is accepted but ignored: JSON is chosen by
# the Accept header only.
RESERVED = frozenset({"limit", "offset", "order_by", "dir", "fields", "return_object", "format"})

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_TRUE = frozenset({"true", "t", "1", "yes", "y"})
_FALSE = frozenset({"false", "f", "0", "no", "n"})


class QueryError(Exception):
    """A client error, rendered as ``{"errors": {key: [message]}}`` with status 400."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def norm(name: str) -> str:
    """Query names use underscores for the dashes of JSON keys."""
    return name.strip().replace("_", "-")


def newer_release_value(record: Mapping[str, Any]) -> str:
    """Value of the hidden newer-release field (stable per record id)."""
    record_id = int(record.get("id") or 0)
    return f"{(record_id * 7919) % 50000 / 100:.2f}"


Spec = dict[str, "Spec | None"]


@dataclass
class Filter:
    """One ``field[op]=value`` condition with its value already typed."""

    key: str
    path: tuple[str, ...]
    kind: str
    op: str
    test: Callable[[Any], bool]
    typed: Callable[[Any], bool] | None = None  # same test on a pre-typed value
    raw: str = ""
    target: Any = None  # typed comparison value (for range scans on the index)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Any-match semantics through line collections, like a SQL join."""
        return any(self.test(v) for v in values_at(record, self.path))


@dataclass
class Query:
    """A parsed request against one stream."""

    filters: list[Filter] = field(default_factory=list)
    order_path: tuple[str, ...] | None = None
    order_kind: str = "integer"
    descending: bool = False
    limit: int = 50
    offset: int = 0
    fields: Spec | None = None
    return_object: str | None = None

    @property
    def full_records(self) -> bool:
        """True when records go out unchanged (so cached JSON can be used)."""
        return self.fields is None and self.return_object not in ("limited", "shallow")


def values_at(record: Mapping[str, Any], path: Sequence[str]) -> list[Any]:
    """Values found at ``path``, fanning out through arrays; ``[None]`` when absent."""
    if path and path[0] == NEWER_RELEASE_FIELD:
        return [newer_release_value(record)]
    current: list[Any] = [record]
    for key in path:
        nxt: list[Any] = []
        for item in current:
            if isinstance(item, Mapping):
                value = item.get(key)
                if isinstance(value, list):
                    nxt.extend(value)
                else:
                    nxt.append(value)
        current = nxt
    return current or [None]


def _resolve(
    segments: list[str], stream: StreamDef, custom_keys: Iterable[str]
) -> tuple[tuple[str, ...], Node]:
    """Map query segments to a JSON path and the leaf schema node."""
    props = stream.schema.props
    first = norm(segments[0])
    path: list[str]
    if first in props:
        path, node = [first], props[first]
    elif first == NEWER_RELEASE_FIELD:
        path, node = [first], Node("number")
    elif (
        first.endswith("-id")
        and props.get(first[:-3]) is not None
        and props[first[:-3]].kind == "object"
        and "id" in props[first[:-3]].props
    ):  # supplier_id=4 means supplier[id]=4
        path, node = [first[:-3], "id"], Node("integer")
    elif first in set(custom_keys) and "custom-fields" in props:
        path, node = ["custom-fields", first], Node("string")  # flexible fields by name
    else:
        raise LookupError(first)
    for raw in segments[1:]:
        seg = norm(raw)
        if node.kind == "array" and node.items is not None:
            node = node.items
        if node.kind == "object" and seg in node.props:
            node = node.props[seg]
        elif node.kind == "open":
            node = Node("string")
        else:
            raise LookupError(seg)
        path.append(seg)
    if node.kind == "array" and node.items is not None and node.items.is_scalar:
        node = node.items
    if not node.is_scalar:
        raise LookupError(path[-1])
    return tuple(path), node


def _coerce(kind: str, raw: str, clock: Clock) -> Any:
    """Type a query value like the column it is compared with; ValueError if it is not."""
    if kind == "datetime" or kind == "date":
        return clock.parse(raw)
    if kind == "integer":
        return int(raw.strip())
    if kind == "number":
        try:
            return Decimal(raw.strip())
        except InvalidOperation:
            raise ValueError(raw) from None
    if kind == "boolean":
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(raw)
    return raw.casefold()


def _typed(kind: str, value: Any, clock: Clock) -> Any:
    """Type a record value for comparison; None when missing or not comparable."""
    if value is None:
        return None
    try:
        if kind in ("datetime", "date"):
            return clock.parse(str(value))
        if kind == "integer":
            return int(value)
        if kind == "number":
            return Decimal(str(value))
        if kind == "boolean":
            return bool(value)
    except (ValueError, InvalidOperation):
        return None
    return str(value).casefold()


def _make_test(
    kind: str, op: str, raw: str, clock: Clock
) -> tuple[Callable[[Any], bool], Callable[[Any], bool] | None]:
    """(test on a raw JSON value, test on an already typed value or None)."""
    if op == "blank":
        wanted = _coerce("boolean", raw, clock)
        return (lambda v: (v is None or v == "" or v == []) == wanted), None
    if op in TEXT_OPS:
        if kind in ("datetime", "date"):
            raise QueryError("filter", f"Operator {op} is not available for datetime fields")
        needle = raw.casefold()
        if op == "contains":
            return (lambda v: v is not None and needle in str(v).casefold()), None
        if op == "starts_with":
            return (lambda v: v is not None and str(v).casefold().startswith(needle)), None
        return (lambda v: v is not None and str(v).casefold().endswith(needle)), None
    typed: Callable[[Any], bool]
    if op in ("in", "not_in"):
        wanted_set = {_coerce(kind, part.strip(), clock) for part in raw.split(",")}
        if op == "in":
            typed = lambda t: t is not None and t in wanted_set  # noqa: E731
        else:
            typed = lambda t: t is not None and t not in wanted_set  # noqa: E731
    else:
        target = _coerce(kind, raw, clock)
        compare: Callable[[Any, Any], bool] = {
            "eq": lambda a, b: a == b,
            "not_eq": lambda a, b: a != b,
            "gt": lambda a, b: a > b,
            "lt": lambda a, b: a < b,
            "gt_or_eq": lambda a, b: a >= b,
            "lt_or_eq": lambda a, b: a <= b,
        }[op]
        typed = lambda t: t is not None and compare(t, target)  # noqa: E731
    return (lambda v: typed(_typed(kind, v, clock))), typed


def _split_key(key: str) -> list[str]:
    match = _KEY_RE.match(key)
    if not match:
        raise QueryError("filter", f"Unknown field {key}")
    rest = match.group(2)
    return [match.group(1), *re.findall(r"\[([^\[\]]*)\]", rest)]


def parse_fields(raw: Any) -> Spec:
    """Parse a ``fields`` projection: names, or ``{name: [sub-fields]}`` objects."""
    spec: Spec = {}
    if isinstance(raw, str):
        spec[norm(raw)] = None
    elif isinstance(raw, list):
        for item in raw:
            for key, sub in parse_fields(item).items():
                spec[key] = _merge(spec.get(key), sub) if key in spec else sub
    elif isinstance(raw, dict):
        for key, sub_raw in raw.items():
            spec[norm(str(key))] = parse_fields(sub_raw) if sub_raw else None
    else:
        raise QueryError("fields", "fields must be a JSON array of names and objects")
    return spec


def _merge(a: Spec | None, b: Spec | None) -> Spec | None:
    if a is None or b is None:
        return None
    merged = dict(a)
    merged.update(b)
    return merged


def _int_param(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def parse_query(
    params: Iterable[tuple[str, str]],
    stream: StreamDef,
    custom_keys: Iterable[str],
    clock: Clock,
    page_size: int = 50,
) -> Query:
    """Parse decoded query parameters; raises :class:`QueryError` for bad input."""
    query = Query(limit=page_size)
    custom = tuple(custom_keys)
    if stream.key_object is not None:
        # Filters and order apply inside the key object (a revision's revision-record).
        stream = dataclasses.replace(stream, schema=stream.schema.props[stream.key_object])
    last: dict[str, str] = {}
    for key, value in params:
        last[key] = value  # Rails keeps the last of repeated scalar keys
    for key, value in last.items():
        if key in RESERVED:
            continue
        segments = _split_key(key)
        op = "eq"
        if len(segments) > 1 and segments[-1] in OPS:
            op = segments.pop()
        try:
            path, node = _resolve(segments, stream, custom)
        except LookupError:
            raise QueryError("filter", f"Unknown field {key}") from None
        try:
            test, typed = _make_test(node.kind, op, value, clock)
            target = _coerce(node.kind, value, clock) if op in RANGE_OPS else None
        except ValueError:
            raise QueryError("filter", f"Invalid value {value!r} for {key}") from None
        query.filters.append(Filter(key, path, node.kind, op, test, typed, value, target))
    limit = _int_param(last.get("limit"), page_size)
    query.limit = page_size if limit <= 0 else min(limit, page_size)
    query.offset = max(0, _int_param(last.get("offset"), 0))
    order_by = last.get("order_by")
    if order_by:
        try:
            path, node = _resolve([order_by], stream, custom)
        except LookupError:
            raise QueryError("order_by", f"Unknown field {order_by}") from None
        query.order_path, query.order_kind = path, node.kind
    query.descending = last.get("dir", "asc").strip().lower() == "desc"
    if "fields" in last:
        try:
            raw = json.loads(last["fields"])
        except ValueError:
            raise QueryError("fields", "fields is not valid JSON") from None
        query.fields = parse_fields(raw)
    return_object = last.get("return_object")
    if return_object:
        query.return_object = return_object.strip().lower()
    return query


def select(
    records: Sequence[Mapping[str, Any]], query: Query, clock: Clock
) -> list[Mapping[str, Any]]:
    """Filter, order (ties by id) and page."""
    matched = [r for r in records if all(f.matches(r) for f in query.filters)]
    if query.order_path is not None:
        path, kind = query.order_path, query.order_kind

        def key(record: Mapping[str, Any]) -> tuple[int, Any, int]:
            typed = _typed(kind, values_at(record, path)[0], clock)
            # MySQL puts NULLs first when ascending (and last when descending).
            return (
                (0, 0, int(record.get("id") or 0))
                if typed is None
                else (1, typed, int(record.get("id") or 0))
            )

        matched.sort(key=key, reverse=query.descending)
    elif query.descending:
        matched.sort(key=lambda r: int(r.get("id") or 0), reverse=True)
    return matched[query.offset : query.offset + query.limit]


#: Resources an administrator may give a default API response filter (Compass, "API
#: Response Filters"): it then applies to every call without ``fields``.
DEFAULT_FILTER_STREAMS = frozenset(
    {
        "invoices",
        "purchase_orders",
        "purchase_order_lines",
        "users",
        "expense_reports",
        "expense_lines",
        "requisitions",
    }
)
#: What the sandbox's default filter keeps: a few fields, as a trimmed filter would.
DEFAULT_FILTER: Spec = {"id": None, "created-at": None, "updated-at": None, "status": None}


def apply_default_filter(query: Query, stream: StreamDef) -> None:
    """Trim ``query``'s records to the default filter, unless it asks for ``fields``.

    Compass presents ``fields`` as a filter defined per call, the alternative to a
    stored one, so an explicit ``fields`` is served instead of the default filter.
    """
    if query.fields is None and stream.name in DEFAULT_FILTER_STREAMS:
        query.fields = DEFAULT_FILTER


INDEX_FIELDS: dict[tuple[str, ...], int] = {("id",): 0, ("created-at",): 1, ("updated-at",): 2}


def indexed(query: Query) -> bool:
    """True when the query only touches ``id``/``created-at``/``updated-at``."""
    if query.order_path is not None and query.order_path not in INDEX_FIELDS:
        return False
    return all(f.path in INDEX_FIELDS and f.typed is not None for f in query.filters)


def index_order(query: Query) -> tuple[int, bool]:
    """(index position, descending) the page is ordered by: id, created or updated."""
    pos = 0 if query.order_path is None else INDEX_FIELDS[query.order_path]
    return pos, query.descending


def index_signature(query: Query) -> tuple[Any, ...]:
    """What identifies an indexed query's full result, whatever the page."""
    return (index_order(query), tuple((f.path, f.op, f.raw) for f in query.filters))


def match_indexed(ordered: Sequence[tuple[int, float, float]], query: Query) -> list[int]:
    """Ids of every entry matching the query, from entries in the query's order.

    A lower bound on the order key (``updated_at[gt]=…`` with ``order_by=updated_at``,
    ``id[gt]=…``) starts the scan with a binary search instead of from the top.
    """
    pos, descending = index_order(query)
    start = 0
    for f in query.filters:
        if INDEX_FIELDS.get(f.path) != pos or f.target is None:
            continue
        if not descending and f.op in ("gt", "gt_or_eq"):
            find = bisect.bisect_right if f.op == "gt" else bisect.bisect_left
            start = max(start, find(ordered, f.target, key=lambda e: e[pos]))
        elif descending and f.op in ("lt", "lt_or_eq"):
            find = bisect.bisect_right if f.op == "lt" else bisect.bisect_left
            start = max(start, find(ordered, -f.target, key=lambda e: -e[pos]))
    checks = [(INDEX_FIELDS[f.path], f.typed) for f in query.filters if f.typed is not None]
    return [
        entry[0]
        for entry in itertools.islice(ordered, start, None)
        if all(test(entry[p]) for p, test in checks)
    ]


def shape(record: Mapping[str, Any], query: Query, stream: StreamDef) -> dict[str, Any]:
    """Apply ``fields`` or ``return_object`` to one record."""
    if query.fields is not None:
        return _project(record, query.fields, top=True)
    if query.return_object == "limited":
        return {k: record[k] for k in ("id", "created-at", "updated-at") if k in record}
    if query.return_object == "shallow":
        out: dict[str, Any] = {}
        for prop, value in record.items():
            node = stream.schema.props.get(prop)
            if node is not None and node.kind == "array" and node.is_line_array:
                continue
            if node is not None and node.kind == "object":
                out[prop] = {"id": value.get("id")} if isinstance(value, Mapping) else None
            else:
                out[prop] = value
        return out
    return dict(record)


def _project(obj: Mapping[str, Any], spec: Spec, top: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key not in spec:
            continue
        sub = spec[key]
        if sub is None or value is None:
            out[key] = value
        elif isinstance(value, list):
            out[key] = [_project(v, sub, False) if isinstance(v, Mapping) else v for v in value]
        elif isinstance(value, Mapping):
            out[key] = _project(value, sub, False)
        else:
            out[key] = value
    if top and NEWER_RELEASE_FIELD in spec:
        out[NEWER_RELEASE_FIELD] = newer_release_value(obj)
    return out

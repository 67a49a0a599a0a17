"""Deterministic record generation driven by the resource model.

Every stream is generated from its own seeded random stream, and everything shared
between streams (ids, natural keys, association objects, timelines) is a pure
function of ``(seed, target, index)``.  So streams can be generated lazily, in any
order, and an invoice's ``supplier`` matches the supplier record with that id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from random import Random
from typing import Any

from .clock import Clock
from .schema import Node, Registry, StreamDef, document_schema
from .vocab import (
    IDENTITY_PROPS,
    MONEY_WORDS,
    STATUSES,
    ValueCtx,
    custom_field_keys,
    custom_field_value,
    density,
    identity,
    plural,
    scalar_fn,
    stable_hash,
    status_family,
    words,
)

DAY = 86400.0
HISTORY_DAYS = 730

USER_ALIASES = frozenset(
    {
        "created-by",
        "updated-by",
        "requested-by",
        "requester",
        "approver",
        "buyer",
        "owner",
        "user",
        "manager",
        "submitted-by",
        "ship-to-user",
        "delegate",
        "assigned-to",
        "preparer",
        "requested-for",
        "approved-by",
        "reviewer",
        "employee",
        "account-owner",
    }
)
TARGET_ALIASES = {
    "requisition-header": "requisitions",
    "requisition": "requisitions",
    "order-header": "purchase_orders",
    "purchase-order": "purchase_orders",
    "invoice-header": "invoices",
    "invoice": "invoices",
    "expense-report": "expense_reports",
    "account-type": "account_types",
    "chart-of-accounts": "account_types",
    "payment-term": "payment_terms",
    "uom": "uoms",
    "commodity": "commodities",
    "contract": "contracts",
    "supplier": "suppliers",
    "department": "departments",
}
SYNTHETIC_POOL = 20
COMMON_TARGETS = frozenset(
    {
        "users",
        "suppliers",
        "currencies",
        "accounts",
        "departments",
        "addresses",
        "payment_terms",
        "account_types",
        "commodities",
        "uoms",
        "items",
        "contracts",
        "shipping_terms",
        "requisitions",
        "purchase_orders",
        "invoices",
    }
)
DOCUMENTS = frozenset({"invoices", "purchase_orders", "requisitions", "expense_reports"})
"""The documents whose records can take the shape Coupa serves them in (see below)."""
DOCUMENT_SHAPES = ("realistic", "plain")
"""``realistic``: documents as Coupa serves them, 1-4 lines each with tax lines and
account allocations, decimals and associations at every level (about 25 KB and 100
nested objects per invoice), so benchmarks measure real payloads. ``plain``: the
sparser generic shape every other resource has (about 19 KB and 50 per invoice)."""
DOCUMENT_LINES_SKEW = 1.6
"""Line counts 1-4 of realistic documents, weighted about 40/25/20/15 %."""
DOCUMENT_REFERENCES = frozenset(
    {"tax-code", "tax-rate", "order-line-tax-detail", "requisition-line-tax-detail"}
)
"""Associations besides :data:`COMMON_TARGETS` a realistic document's lines always name."""
TAX_ARRAYS = frozenset({"tax-lines", "expense-line-taxes"})


def resolve_target(prop: str, registry: Registry) -> str:
    """Which resource an association property refers to (``created-by`` -> ``users``)."""
    top = {s.name for s in registry.top_level}
    w = words(prop)
    if prop in USER_ALIASES or (w and w[-1] == "by"):
        return "users"
    if prop in TARGET_ALIASES:
        return TARGET_ALIASES[prop]
    if w and w[-1] == "address":
        return "addresses"
    if "currency" in w:
        return "currencies"
    direct = plural(prop).replace("-", "_")
    if direct in top:
        return direct
    if w:
        tail = plural(w[-1])
        if tail in top:
            return tail
        if w[-1] in TARGET_ALIASES:
            return TARGET_ALIASES[w[-1]]
    return direct


@dataclasses.dataclass
class RecordCtx(ValueCtx):
    """Value context plus the ids a record or line needs."""

    record_id: int = 0
    item_id: int = 0
    slot: int = 0  # position used to derive unique item ids

    def copy(self) -> RecordCtx:
        """Shallow copy (much cheaper than ``copy.copy`` or ``dataclasses.replace``)."""
        clone = object.__new__(RecordCtx)
        clone.__dict__.update(self.__dict__)
        return clone


FieldFn = Callable[[Random, RecordCtx], Any]


class World:
    """Cross-stream facts: id sequences, timelines, natural keys, association objects."""

    def __init__(
        self,
        registry: Registry,
        counts: Mapping[str, int],
        seed: int,
        clock: Clock,
        anchor: float,
        document_shape: str = "realistic",
    ) -> None:
        if document_shape not in DOCUMENT_SHAPES:
            raise ValueError(f"unknown document shape {document_shape!r}: {DOCUMENT_SHAPES}")
        self.registry = registry
        self.document_shape = document_shape
        self.counts = dict(counts)
        self.seed = seed
        self.clock = clock
        self.anchor = anchor
        self._ids: dict[str, list[int]] = {}
        self._timelines: dict[str, list[tuple[float, float]]] = {}
        self._identity: dict[tuple[str, int], dict[str, Any]] = {}
        self._assoc: dict[tuple[str, int, int, int], dict[str, Any]] = {}
        self._assoc_plans: dict[tuple[str, int, int], list[tuple[str, str, Any]]] = {}
        self._custom_keys: dict[str, tuple[str, ...]] = {}

    def pool_size(self, target: str) -> int:
        """How many entities of ``target`` associations may point at."""
        if target in self.counts:
            return max(1, self.counts[target])
        return 10 if target == "currencies" else SYNTHETIC_POOL

    def ids(self, target: str) -> list[int]:
        """Ascending ids with gaps for the initial records of ``target``."""
        cached = self._ids.get(target)
        if cached is None:
            rng = Random(f"{self.seed}:ids:{target}")
            current = rng.randint(1, 40)
            cached = []
            for _ in range(self.pool_size(target)):
                cached.append(current)
                current += 1 + (rng.randint(1, 6) if rng.random() < 0.35 else 0)
            self._ids[target] = cached
        return cached

    def identity(self, target: str, k: int) -> dict[str, Any]:
        """Natural keys of entity ``k`` (name, number, login …)."""
        key = (target, k)
        found = self._identity.get(key)
        if found is None:
            found = identity(target, k, self.seed)
            if len(self._identity) < 50_000:
                self._identity[key] = found
        return found

    def custom_keys(self, owner: str) -> tuple[str, ...]:
        """Instance-specific custom-field keys of a resource."""
        keys = self._custom_keys.get(owner)
        if keys is None:
            keys = self._custom_keys[owner] = custom_field_keys(owner, self.seed)
        return keys

    def timeline(self, target: str) -> list[tuple[float, float]]:
        """(created, updated) instants of the initial records, with mass-update bursts."""
        cached = self._timelines.get(target)
        if cached is None:
            cached = self._timelines[target] = self._make_timeline(target)
        return cached

    def _make_timeline(self, target: str) -> list[tuple[float, float]]:
        n = self.pool_size(target)
        rng = Random(f"{self.seed}:timeline:{target}")
        end = self.anchor - 3600
        start = self.anchor - HISTORY_DAYS * DAY
        created = sorted(float(int(start + rng.random() * (end - start))) for _ in range(n))
        updated = []
        for c in created:
            if rng.random() < 0.25:
                updated.append(c)
            else:
                updated.append(float(int(min(c + rng.expovariate(1 / (20 * DAY)), end))))
        for burst in self._bursts(rng, n):
            eligible = [i for i, c in enumerate(created) if c <= burst]
            if not eligible:
                continue
            size = min(rng.randint(20, 60), max(3, n // 4), len(eligible))
            for i in rng.sample(eligible, size):
                updated[i] = burst
        return list(zip(created, updated, strict=True))

    def _bursts(self, rng: Random, n: int) -> list[float]:
        """Mass-update instants: one in PST, one in PDT, and the DST fall-back hour."""
        last = datetime.fromtimestamp(self.anchor - 2 * DAY, self.clock.zone)
        first = datetime.fromtimestamp(self.anchor - (HISTORY_DAYS - 30) * DAY, self.clock.zone)

        def latest(month: int, day: int) -> date:
            year = last.year if (last.month, last.day) >= (month, day) else last.year - 1
            return date(year, month, day)

        winter = latest(1, 10 + rng.randint(0, 15))
        summer = latest(7, 5 + rng.randint(0, 20))
        nov1 = latest(11, 1)
        if nov1 + timedelta(days=7) > last.date():
            nov1 = date(nov1.year - 1, 11, 1)
        fall_back = nov1 + timedelta(days=(6 - nov1.weekday()) % 7)
        bursts = [
            self.clock.local(
                winter.year, winter.month, winter.day, 2 + rng.randint(0, 20), rng.randint(0, 59), 0
            ),
            self.clock.local(
                summer.year, summer.month, summer.day, 8 + rng.randint(0, 12), rng.randint(0, 59), 0
            ),
            # 01:30 happens twice on fall-back day: -07:00, then an hour later -08:00.
            self.clock.local(fall_back.year, fall_back.month, fall_back.day, 1, 30, 1),
        ]
        if n >= 100:
            bursts.append(
                self.clock.local(fall_back.year, fall_back.month, fall_back.day, 1, 30, 0)
            )
        return sorted(b for b in bursts if first.timestamp() <= b <= self.anchor - DAY)

    def association(self, target: str, k: int, node: Node, depth: int) -> dict[str, Any]:
        """The embedded object for entity ``k``; cached and shared (never mutated)."""
        key = (target, k, id(node), depth)
        found = self._assoc.get(key)
        if found is None:
            found = self._make_association(target, k, node, depth)
            if len(self._assoc) < 200_000:
                self._assoc[key] = found
        return found

    def _assoc_plan(self, target: str, node: Node, depth: int) -> list[tuple[str, str, Any]]:
        """Per-node recipe so each entity is built without re-deciding per property.

        Keyed by target too: one definition's node serves several associations.
        """
        key = (target, id(node), depth)
        plan = self._assoc_plans.get(key)
        if plan is None:
            plan = []
            for prop, child in node.props.items():
                if prop == "id" and child.kind == "integer":
                    plan.append((prop, "id", None))
                elif prop in ("created-at", "updated-at") and child.kind == "datetime":
                    plan.append((prop, "time", None))
                elif prop in IDENTITY_PROPS and child.kind in ("string", "boolean"):
                    plan.append((prop, "identity", scalar_fn(prop, child)))
                elif child.is_scalar:
                    # Embedded objects carry a few attributes besides their natural keys.
                    chance = density(target, prop, 1) * 0.15
                    if chance > 0:
                        plan.append((prop, "scalar", (chance, scalar_fn(prop, child))))
                elif child.kind == "object" and depth < 3:
                    plan.append((prop, "object", child))
            self._assoc_plans[key] = plan
        return plan

    def _make_association(self, target: str, k: int, node: Node, depth: int) -> dict[str, Any]:
        rng = Random(f"{self.seed}:assoc:{target}:{k}")
        ids = self.ids(target)
        ident = self.identity(target, k)
        created, updated = self.timeline(target)[k] if k < len(ids) else (self.anchor,) * 2
        ctx = RecordCtx(
            owner=target,
            index=k,
            created=created,
            updated=updated,
            anchor=self.anchor,
            clock=self.clock,
        )
        out: dict[str, Any] = {}
        # Null attributes are left out of embedded objects to keep payloads realistic
        # in size (the schemas list every attribute of the referenced resource).
        for prop, how, extra in self._assoc_plan(target, node, depth):
            if how == "id":
                out[prop] = ids[k % len(ids)]
            elif how == "time":
                out[prop] = self.clock.format(created if prop == "created-at" else updated)
            elif how == "identity":
                value = ident.get(prop)
                out[prop] = value if _fits(value, node.props[prop].kind) else extra(rng, ctx)
            elif how == "scalar":
                chance, fn = extra
                if rng.random() < chance:
                    out[prop] = fn(rng, ctx)
            elif how == "object" and rng.random() < 0.25:
                sub = resolve_target(prop, self.registry)
                k2 = rng.randrange(self.pool_size(sub))
                out[prop] = self.association(sub, k2, extra, depth + 1)
        return out


def _fits(value: Any, kind: str) -> bool:
    if value is None:
        return False
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    return False


MAIN_LINES = frozenset(
    {
        "invoice-lines",
        "order-lines",
        "requisition-lines",
        "expense-lines",
        "lines",
        "quote-request-lines",
        "asn-lines",
        "receipt-lines",
        "order-pad-lines",
        "pick-list-lines",
        "return-request-lines",
        "contract-lines",
    }
)


def _array_size(
    prop: str, depth: int, is_child_stream: bool, document: bool = False
) -> tuple[int, int, float]:
    """(min, max, chance of an empty array) for a nested array.

    ``document``: a realistic document (see :data:`DOCUMENT_SHAPES`), whose lines always
    carry tax lines and account allocations, as Coupa's do.
    """
    w = words(prop)
    main = prop in MAIN_LINES or (is_child_stream and w[-1:] == ["lines"] and "tax" not in w)
    if document and depth == 0 and main:
        return (1, 4, 0.0)  # drawn skewed to 1-2 lines (see ArrayPlan.skew)
    if document and depth == 1 and prop in TAX_ARRAYS:
        return (1, 2, 0.0)
    if document and depth == 1 and prop == "account-allocations":
        return (1, 2, 0.0)
    if depth == 0 and main:
        return (1, 5, 0.0)  # the document lines: invoice-lines, order-lines …
    if is_child_stream:
        return (1, 2, 0.7 if depth == 0 else 0.8)  # charges, allocations, tax lines
    if depth == 0:
        return (1, 2, 0.8)  # approvals, taggings, failed tolerances …
    return (1, 1, 0.85)


PROTOTYPES = 500
"""Records generated in full per stream; larger streams clone and re-key them (cheap)."""


@dataclass
class FieldPlan:
    """How to produce one property: a value function, or a nested array plan."""

    prop: str
    fn: FieldFn
    varies: bool  # re-computed for clones (ids, times, natural keys, amounts)
    array: ArrayPlan | None = None


@dataclass
class ObjectPlan:
    """Compiled recipe for an object node."""

    fields: list[FieldPlan]
    varying: list[FieldPlan] = dataclasses.field(default_factory=list)
    arrays: list[FieldPlan] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.varying = [f for f in self.fields if f.varies and f.array is None]
        self.arrays = [f for f in self.fields if f.array is not None]


@dataclass
class ArrayPlan:
    """Compiled recipe for a nested array (lines, allocations …)."""

    low: int
    high: int
    empty: float
    base: int  # first id of this array property
    stride: int  # id slots per parent object: ids are unique and ascending, with gaps
    item: ObjectPlan
    #: Exponent on the uniform draw of the count: above 1, short arrays are likelier
    #: (most Coupa documents have one or two lines).
    skew: float = 1.0


def _varies(prop: str, node: Node, depth: int) -> bool:
    if node.kind in ("datetime", "date") or prop == "id":
        return True
    if depth > 0:
        return False  # lines keep their prototype's values apart from ids and times
    w = words(prop)
    money = node.kind == "number" and any(x in w for x in MONEY_WORDS)
    return money or prop in IDENTITY_PROPS or (bool(w) and w[-1] in ("number", "num"))


class StreamGenerator:
    """Builds the records of one top-level stream from its compiled schema plan.

    Record ``i`` is a pure function of ``(seed, stream, i)`` and its timeline entry:
    the first :data:`PROTOTYPES` records are generated in full, later ones are clones of
    prototype ``i % PROTOTYPES`` with ids, times, natural keys and amounts re-rolled.
    So any record can be (re)built on demand, which keeps 30,000-invoice instances cheap.
    """

    def __init__(self, world: World, stream: StreamDef) -> None:
        self.world = world
        self.stream = stream
        #: Shaped as Coupa serves its documents (see :data:`DOCUMENT_SHAPES`).
        self.document = world.document_shape == "realistic" and stream.name in DOCUMENTS
        schema = document_schema(stream) if self.document else stream.schema
        self.plan = self._compile_object(schema, (), 0, stream.name)
        self._prototypes: list[dict[str, Any]] = []

    # -- public -----------------------------------------------------------------------

    def prepare(self, count: int) -> None:
        """Generate the prototypes (the first ``min(count, PROTOTYPES)`` records)."""
        ids = self.world.ids(self.stream.name)
        timeline = self.world.timeline(self.stream.name)
        rng = Random(f"{self.world.seed}:records:{self.stream.name}")
        self._prototypes = [
            self._run(self.plan, rng, self._ctx(i, ids[i], *timeline[i]), None)
            for i in range(min(count, PROTOTYPES, len(ids)))
        ]

    def record(self, index: int, record_id: int, created: float, updated: float) -> dict[str, Any]:
        """Record number ``index`` with the given id and timestamps."""
        if index < len(self._prototypes):
            proto = self._prototypes[index]
            if proto.get("id", record_id) == record_id:
                return proto
        rng = Random(f"{self.world.seed}:record:{self.stream.name}:{index}")
        ctx = self._ctx(index, record_id, created, updated)
        if not self._prototypes:
            return self._run(self.plan, rng, ctx, None)
        return self._run(self.plan, rng, ctx, self._prototypes[index % len(self._prototypes)])

    def template(self, index: int) -> dict[str, Any] | None:
        """The prototype record ``index`` is cloned from: same nested array lengths."""
        if not self._prototypes:
            return None
        return self._prototypes[index % len(self._prototypes)]

    def changed(self, record: Mapping[str, Any], rng: Random, now: float) -> dict[str, Any]:
        """A copy of ``record`` updated "now": new ``updated-at`` and one changed value."""
        out = dict(record)
        props = self.stream.schema.props
        if props.get("updated-at", Node("")).kind == "datetime":
            out["updated-at"] = self.world.clock.format(now)
        candidates = [
            p
            for p, n in props.items()
            if n.is_scalar
            and n.kind not in ("datetime", "date")
            and p not in ("id", "created-at", "updated-at")
            and not p.endswith("-id")
        ]
        if not candidates:
            return out
        prop = "status" if "status" in candidates else rng.choice(candidates)
        kind = props[prop].kind
        ctx = self._ctx(rng.randint(0, 9999), int(record.get("id") or 0), now, now)
        fn = scalar_fn(prop, props[prop])
        value: Any = None
        for _ in range(8):
            value = fn(rng, ctx)
            if prop == "status":
                value = rng.choice(STATUSES[status_family(self.stream.name)])
            if value != record.get(prop):
                break
        if kind == "boolean":
            value = not bool(record.get(prop))
        out[prop] = value
        return out

    # -- running plans --------------------------------------------------------------------

    def _ctx(self, index: int, record_id: int, created: float, updated: float) -> RecordCtx:
        return RecordCtx(
            owner=self.stream.name,
            index=index,
            created=created,
            updated=updated,
            anchor=self.world.anchor,
            clock=self.world.clock,
            record_id=record_id,
            slot=index,
        )

    def _run(
        self, plan: ObjectPlan, rng: Random, ctx: RecordCtx, proto: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        if proto is not None:  # clone: copy, then re-roll what differs per record
            out = dict(proto)
            for field in plan.varying:
                out[field.prop] = field.fn(rng, ctx)
            for field in plan.arrays:
                assert field.array is not None
                out[field.prop] = self._run_array(
                    field.array, rng, ctx, proto.get(field.prop), True
                )
            return out
        out = {}
        for field in plan.fields:
            if field.array is not None:
                out[field.prop] = self._run_array(field.array, rng, ctx, None, False)
            else:
                out[field.prop] = field.fn(rng, ctx)
        return out

    def _run_array(
        self, plan: ArrayPlan, rng: Random, ctx: RecordCtx, proto: Any, cloning: bool
    ) -> list[dict[str, Any]]:
        if cloning:
            if not isinstance(proto, list):
                return []
            count = len(proto)
        else:
            if rng.random() < plan.empty:
                return []
            if plan.skew == 1.0:
                count = rng.randint(plan.low, plan.high)
            else:
                count = plan.low + int((plan.high - plan.low + 1) * rng.random() ** plan.skew)
        items = []
        for n in range(count):
            slot = ctx.slot * plan.stride + n
            updated = ctx.created + rng.random() * max(0.0, ctx.updated - ctx.created)
            item_ctx = ctx.copy()
            item_ctx.line_num = n + 1
            item_ctx.updated = float(int(updated))
            item_ctx.item_id = plan.base + slot
            item_ctx.slot = slot
            item_proto = proto[n] if cloning and isinstance(proto[n], Mapping) else None
            items.append(self._run(plan.item, rng, item_ctx, item_proto))
        return items

    # -- compilation --------------------------------------------------------------------

    def _compile_object(
        self, node: Node, path: tuple[str, ...], depth: int, context: str
    ) -> ObjectPlan:
        """Compile an object node; ``context`` is the stream whose schema it belongs to."""
        fields = []
        for prop, child in node.props.items():
            if child.kind == "array":
                array = self._array(prop, child, path, depth, context)
                fields.append(FieldPlan(prop, _empty_list, True, array))
            else:
                fn = self._compile_prop(prop, child, path, depth)
                # The key object holds the row's own id and creation time: a clone
                # (an insert, a record past the prototypes) must not keep its prototype's.
                key = depth == 0 and prop == self.stream.key_object
                fields.append(FieldPlan(prop, fn, key or _varies(prop, child, depth)))
        return ObjectPlan(fields)

    def _compile_prop(self, prop: str, node: Node, path: tuple[str, ...], depth: int) -> FieldFn:
        name = self.stream.name
        clock = self.world.clock
        if depth == 0 and self.stream.key_object is not None:
            if prop == self.stream.key_object:
                return self._key_object(node)
            if prop == "id":  # whose revision this is: an order of the purchase_orders pool
                orders = self.world.ids("purchase_orders")
                return lambda rng, ctx: orders[ctx.index % len(orders)]
        if prop == "id" and node.kind == "integer":
            if depth == 0:
                return lambda rng, ctx: ctx.record_id
            return lambda rng, ctx: ctx.item_id
        if prop in ("created-at", "updated-at") and node.kind == "datetime":
            if prop == "created-at":
                return lambda rng, ctx: clock.format(ctx.created)
            return lambda rng, ctx: clock.format(ctx.updated)
        if depth == 0 and prop in IDENTITY_PROPS and node.kind in ("string", "boolean"):
            fallback = scalar_fn(prop, node)

            def ident(rng: Random, ctx: RecordCtx) -> Any:
                value = self.world.identity(name, ctx.index).get(prop)
                return value if _fits(value, node.kind) else fallback(rng, ctx)

            return ident
        if node.is_scalar:
            return self._scalar(prop, node, depth)
        if node.kind == "object":
            return self._association(prop, node, depth)
        if node.kind == "open" and prop == "custom-fields":
            return self._custom_fields(path)
        return _none

    def _key_object(self, node: Node) -> FieldFn:
        """The object holding the row's own id and creation time (``revision-record``).

        The store indexes rows by these, so filters and order on ``id`` and
        ``created-at`` apply to them, as Coupa documents for revisions.
        """
        clock = self.world.clock
        users = self.world.ids("users")

        def key_object(rng: Random, ctx: RecordCtx) -> dict[str, Any]:
            found = {
                "id": ctx.record_id,
                "revision": 1 + ctx.index % 4,
                "created-at": clock.format(ctx.created),
                "created-by": users[ctx.index % len(users)],
            }
            return {key: value for key, value in found.items() if key in node.props}

        return key_object

    def _scalar(self, prop: str, node: Node, depth: int) -> FieldFn:
        chance = density(self.stream.name, prop, depth)
        if self.document and depth > 0 and node.kind == "number" and _key_decimal(prop):
            chance = 1.0  # Coupa fills a line's amounts, quantities, rates and shares
        fn = scalar_fn(prop, node)
        if chance <= 0.0:
            return _none
        if chance >= 1.0:
            return fn
        return lambda rng, ctx: fn(rng, ctx) if rng.random() < chance else None

    def _association(self, prop: str, node: Node, depth: int) -> FieldFn:
        if depth >= 3:
            return _none
        world = self.world
        target = resolve_target(prop, world.registry)
        known = target in world.counts
        bucket = stable_hash(self.stream.name, prop) % 10
        if self.document and (target in COMMON_TARGETS or prop in DOCUMENT_REFERENCES):
            chance = 1.0  # a document's lines name their account, currency, users …
        elif target in COMMON_TARGETS:
            chance = 0.92 if depth == 0 else 0.35
        elif known:
            chance = 0.4 if depth == 0 else 0.15
        else:
            chance = 0.0 if bucket < 3 else (0.3 if depth == 0 else 0.1)
        if chance == 0.0:
            return _none
        size = world.pool_size(target)
        skew = target == "currencies"

        def assoc(rng: Random, ctx: RecordCtx) -> Any:
            if rng.random() >= chance:
                return None
            k = 0 if skew and rng.random() < 0.7 else rng.randrange(size)
            return world.association(target, k, node, depth + 1)

        return assoc

    def _custom_fields(self, path: tuple[str, ...]) -> FieldFn:
        keys = self.world.custom_keys(".".join((self.stream.name, *path)))
        return lambda rng, ctx: {key: custom_field_value(key, rng) for key in keys}

    def _array(
        self, prop: str, node: Node, path: tuple[str, ...], depth: int, context: str
    ) -> ArrayPlan | None:
        items = node.items
        if items is None or items.kind != "object" or depth >= 3:
            return None
        child = next(
            (
                s
                for s in self.world.registry.children
                if s.parent == context and s.array_field == prop
            ),
            None,
        )
        low, high, empty = _array_size(prop, depth, child is not None, self.document)
        sub_path = (*path, prop)
        base = Random(f"{self.world.seed}:items:{self.stream.name}:{sub_path}").randint(1, 50)
        item = self._compile_object(
            items, sub_path, depth + 1, child.name if child is not None else ""
        )
        skew = DOCUMENT_LINES_SKEW if self.document and depth == 0 and high > 2 else 1.0
        return ArrayPlan(low, high, empty, base, high + 1 + high // 2, item, skew)


def _key_decimal(prop: str) -> bool:
    """An amount, price, quantity, rate or share: always filled in a document's lines."""
    w = words(prop)
    return prop in ("amount", "total", "price", "quantity", "pct", "rate") or (
        "total" in w and "distribution" not in w
    )


def _none(rng: Random, ctx: RecordCtx) -> Any:
    return None


def _empty_list(rng: Random, ctx: RecordCtx) -> Any:
    return []

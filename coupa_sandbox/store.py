"""In-memory record store: lazy generation, an id/timestamp index, live mutation.

Each stream keeps one small row per record (generation index, created, updated and,
once a record was mutated, the record itself); full records are rebuilt on demand
from the seed (see :class:`~coupa_sandbox.generate.StreamGenerator`) and cached.
Queries on ``id``/``created-at``/``updated-at`` - what incremental syncs send - are
answered from the index without building the records they skip.

Records are never modified in place: an update replaces the dict, so a response
being serialised on another thread never sees a half-applied change.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from random import Random
from typing import Any

import msgspec

from .clock import Clock
from .generate import StreamGenerator, World
from .query import Query, index_order, index_signature, indexed, match_indexed, select
from .schema import Registry, StreamDef

_encode = msgspec.json.Encoder().encode

MATCH_CACHE = 32
"""Indexed query results remembered per stream (one per filter combination)."""

"""Built records kept per stream (beyond the prototypes, which are always kept)."""


@dataclass
class Row:
    """Index entry of one record."""

    index: int  # generation index: the record is rebuilt from (seed, stream, index)
    created: float
    updated: float
    record: dict[str, Any] | None = None  # set once the record was mutated


@dataclass
class StreamData:
    """Current rows of one top-level stream, keyed (and ordered) by id."""

    generator: StreamGenerator
    rows: dict[int, Row]
    next_index: int = 0
    max_id: int = 0  # largest id ever used; inserts go above it, ids are never reused
    cache: OrderedDict[int, dict[str, Any]] = field(default_factory=OrderedDict)
    orders: dict[tuple[int, bool], list[tuple[int, float, float]]] = field(default_factory=dict)
    matches: OrderedDict[tuple[Any, ...], list[int]] = field(default_factory=OrderedDict)

    def ordered(self, pos: int, descending: bool) -> list[tuple[int, float, float]]:
        """(id, created, updated) entries sorted by one of them (ties by id); cached."""
        key = (pos, descending)
        found = self.orders.get(key)
        if found is None:
            entries = [(rid, row.created, row.updated) for rid, row in self.rows.items()]
            if pos != 0 or descending:
                entries.sort(key=lambda e: (e[pos], e[0]), reverse=descending)
            found = self.orders[key] = entries
        return found

    def matched(self, query: Query) -> list[int]:
        """Every id an indexed query selects; remembered so paging by offset is cheap."""
        signature = index_signature(query)
        found = self.matches.get(signature)
        if found is None:
            found = match_indexed(self.ordered(*index_order(query)), query)
            self.matches[signature] = found
            if len(self.matches) > MATCH_CACHE:
                self.matches.popitem(last=False)
        return found

    def changed(self) -> None:
        """Drop the sorted indexes and remembered results after a mutation."""
        self.orders.clear()
        self.matches.clear()


@dataclass
class BackgroundRule:
    """Mutate ``stream`` every ``every_requests`` API requests while a sync runs."""

    stream: str
    every_requests: int
    update: int = 0
    insert: int = 0
    delete: int = 0
    seen: int = 0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> BackgroundRule:
        """Build from the admin/JSON form ``{"stream": …, "every_requests": 3, …}``."""
        every = int(raw.get("every_requests", raw.get("every", 1)))
        if every < 1:
            raise ValueError("every_requests must be >= 1")
        return cls(
            stream=str(raw["stream"]),
            every_requests=every,
            update=int(raw.get("update", 0)),
            insert=int(raw.get("insert", 0)),
            delete=int(raw.get("delete", 0)),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form, including how many requests have been counted."""
        return {
            "stream": self.stream,
            "every_requests": self.every_requests,
            "update": self.update,
            "insert": self.insert,
            "delete": self.delete,
            "requests_seen": self.seen,
        }


class Store:
    """All streams' records plus the mutation machinery."""

    def __init__(
        self,
        registry: Registry,
        counts: Mapping[str, int],
        seed: int,
        clock: Clock,
        anchor: float,
        now: Callable[[], float] = time.time,
        cache_records: int = 5000,
        document_shape: str = "realistic",
    ) -> None:
        self.registry = registry
        #: Generated records kept per stream (a benchmark of a large stream wants all).
        self.cache_records = cache_records
        self.document_shape = document_shape
        self.counts = dict(counts)
        self.seed = seed
        self.clock = clock
        self.anchor = anchor
        self.now = now
        self._lock = threading.RLock()
        self._streams: dict[str, StreamData] = {}
        self._world = World(registry, self.counts, seed, clock, anchor, document_shape)
        self._mutation_rngs: dict[str, Random] = {}
        self._background: list[BackgroundRule] = []
        self.mutations: dict[str, int] = {"updated": 0, "inserted": 0, "deleted": 0}

    # -- access ---------------------------------------------------------------------------

    def stream_def(self, name: str) -> StreamDef:
        """Registry entry of a top-level stream; KeyError otherwise."""
        stream = self.registry[name]
        if not stream.top_level:
            raise KeyError(f"{name} is a child stream; its records live in {stream.parent}")
        return stream

    def custom_keys(self, name: str) -> tuple[str, ...]:
        """Instance-specific custom-field keys of a top-level stream (queryable by name)."""
        return self._world.custom_keys(name)

    def _data(self, name: str) -> StreamData:
        data = self._streams.get(name)
        if data is None:
            with self._lock:
                data = self._streams.get(name)
                if data is None:
                    generator = StreamGenerator(self._world, self.stream_def(name))
                    ids = self._world.ids(name)[: self.counts.get(name, 0)]
                    timeline = self._world.timeline(name)
                    generator.prepare(len(ids))
                    rows = {rid: Row(i, *timeline[i]) for i, rid in enumerate(ids)}
                    data = StreamData(generator, rows, len(ids), max(ids, default=0))
                    self._streams[name] = data
                    # Generated data lives as long as the sandbox: keep the cyclic GC
                    # from re-scanning hundreds of thousands of objects on every pass.
                    gc.freeze()
        return data

    def warm(self, names: Iterable[str] | None = None) -> None:
        """Generate streams (and as many records as the cache keeps) now, not on access."""
        for name in names or [s.name for s in self.registry.top_level]:
            data, rows = self._rows(name)
            for record_id, row in rows[: self.cache_records]:
                self._build(data, record_id, row)

    def _build(self, data: StreamData, record_id: int, row: Row) -> dict[str, Any]:
        if row.record is not None:
            return row.record
        cached = data.cache.get(record_id)
        if cached is not None:
            return cached
        record = data.generator.record(row.index, record_id, row.created, row.updated)
        with self._lock:
            if data.rows.get(record_id) is row and row.record is None:
                data.cache[record_id] = record
                if len(data.cache) > self.cache_records:
                    data.cache.popitem(last=False)
        return record

    def _rows(self, name: str) -> tuple[StreamData, list[tuple[int, Row]]]:
        data = self._data(name)
        with self._lock:
            return data, list(data.rows.items())

    def snapshot(self, name: str) -> list[dict[str, Any]]:
        """The current records of a stream in id order (shared dicts: do not modify)."""
        data, rows = self._rows(name)
        return [self._build(data, rid, row) for rid, row in rows]

    def get(self, name: str, record_id: int) -> dict[str, Any] | None:
        """One current record by id."""
        data = self._data(name)
        with self._lock:
            row = data.rows.get(record_id)
        return None if row is None else self._build(data, record_id, row)

    def query(self, name: str, query: Query) -> list[Mapping[str, Any]]:
        """One page of records for an API query (filters, order, offset, limit)."""
        if indexed(query):
            data = self._data(name)
            with self._lock:
                ids = data.matched(query)[query.offset : query.offset + query.limit]
                page = [(rid, data.rows[rid]) for rid in ids]
            return [self._build(data, rid, row) for rid, row in page]
        data, rows = self._rows(name)
        records = [self._build(data, rid, row) for rid, row in rows]
        return select(records, query, self.clock)

    def records_json(self, name: str) -> bytes:
        """Every current record as one JSON array (admin endpoint, tests)."""
        return _encode(self.snapshot(name))

    def counts_now(self) -> dict[str, int]:
        """Record count per top-level stream and nested item count per child stream.

        Clones have their prototype's array lengths, so child counts come from the
        index without building every record.
        """
        out: dict[str, int] = {}
        chains: dict[str, list[tuple[str, list[str]]]] = {}
        for stream in self.registry.children:
            chain = self.array_chain(stream.name)
            if chain is not None:
                top, fields = chain
                chains.setdefault(top, []).append((stream.name, fields))
                out[stream.name] = 0
        for stream in self.registry.top_level:
            data, rows = self._rows(stream.name)
            out[stream.name] = len(rows)
            for rid, row in rows:
                source = row.record or data.generator.template(row.index)
                if source is None:
                    source = self._build(data, rid, row)
                for child, fields in chains.get(stream.name, ()):
                    out[child] += len(_nested_items([source], fields))
        return out

    def array_chain(self, name: str) -> tuple[str, list[str]] | None:
        """(top-level ancestor, array fields leading to a child stream's items)."""
        fields: list[str] = []
        stream = self.registry[name]
        while not stream.top_level:
            parent = self.registry.streams.get(stream.parent or "")
            if parent is None or not stream.array_field:
                return None
            fields.insert(0, stream.array_field)
            stream = parent
        return stream.name, fields

    def child_items(self, name: str) -> list[Mapping[str, Any]]:
        """Items of a child stream: the nested arrays of its parent's records."""
        chain = self.array_chain(name)
        if chain is None:
            return []
        top, fields = chain
        return _nested_items(self.snapshot(top), fields)

    # -- mutation -------------------------------------------------------------------------

    def _rng(self, name: str) -> Random:
        rng = self._mutation_rngs.get(name)
        if rng is None:
            rng = self._mutation_rngs[name] = Random(f"{self.seed}:mutate:{name}")
        return rng

    def mutate(
        self,
        name: str,
        update: int = 0,
        insert: int = 0,
        delete: int = 0,
        delete_ids: Iterable[int] = (),
    ) -> dict[str, list[int]]:
        """Update, insert and delete records of a top-level stream; returns affected ids.

        Updated and inserted records get ``updated-at`` = now (instance zone, whole
        seconds), like a user editing them in Coupa during a sync. ``delete_ids`` are
        deleted too (those that exist), as a user deleting chosen records would.
        """
        data = self._data(name)
        rng = self._rng(name)
        now = float(int(self.now()))
        result: dict[str, list[int]] = {"updated": [], "inserted": [], "deleted": []}
        with self._lock:
            ids = list(data.rows)
            for record_id in rng.sample(ids, min(max(0, update), len(ids))):
                row = data.rows[record_id]
                record = data.generator.changed(self._build(data, record_id, row), rng, now)
                data.rows[record_id] = Row(row.index, row.created, now, record)
                data.cache.pop(record_id, None)
                result["updated"].append(record_id)
            for _ in range(max(0, insert)):
                record_id = data.max_id + 1 + (rng.randint(1, 5) if rng.random() < 0.35 else 0)
                data.rows[record_id] = Row(data.next_index, now, now)
                data.next_index += 1
                data.max_id = record_id
                result["inserted"].append(record_id)
            remaining = [i for i in data.rows if i not in result["inserted"]]
            chosen = [i for i in delete_ids if i in data.rows]
            for record_id in chosen + rng.sample(remaining, min(max(0, delete), len(remaining))):
                if record_id not in data.rows:
                    continue
                del data.rows[record_id]
                data.cache.pop(record_id, None)
                result["deleted"].append(record_id)
            for key in result:
                self.mutations[key] += len(result[key])
            data.changed()
        for key in result:
            result[key].sort()
        return result

    def set_background(self, rules: Iterable[BackgroundRule]) -> None:
        """Replace the background mutation rules (empty = stop)."""
        rules = list(rules)
        for rule in rules:
            self.stream_def(rule.stream)
        with self._lock:
            self._background = rules

    def background(self) -> list[dict[str, Any]]:
        """Current background rules in JSON form."""
        with self._lock:
            return [rule.to_dict() for rule in self._background]

    def on_api_request(self) -> None:
        """Count an API request and run background mutations that are due."""
        due: list[BackgroundRule] = []
        with self._lock:
            for rule in self._background:
                rule.seen += 1
                if rule.seen % rule.every_requests == 0:
                    due.append(rule)
        for rule in due:
            self.mutate(rule.stream, update=rule.update, insert=rule.insert, delete=rule.delete)

    def reset(self) -> None:
        """Forget every change and regenerate lazily from the seed."""
        with self._lock:
            self._streams.clear()
            self._mutation_rngs.clear()
            self._world = World(
                self.registry, self.counts, self.seed, self.clock, self.anchor, self.document_shape
            )
            for rule in self._background:
                rule.seen = 0
            self.mutations = {"updated": 0, "inserted": 0, "deleted": 0}


def _nested_items(sources: list[Any], fields: list[str]) -> list[Mapping[str, Any]]:
    """The objects reached from ``sources`` through a chain of nested array fields."""
    items = sources
    for array_field in fields:
        items = [
            item
            for parent in items
            if isinstance(parent, Mapping) and isinstance(parent.get(array_field), list)
            for item in parent[array_field]
        ]
    return [i for i in items if isinstance(i, Mapping)]

"""A set of record ids kept as runs of consecutive ids, for state that grows with gaps.

Coupa's ids are assigned in sequence, so the ids of a collection are long runs broken
where records were deleted (or belong to records a filter leaves out). 100,000 ids
with 1% deleted at random are about a thousand runs, a few kilobytes of JSON.

In state a set is a flat list ``[start, length, gap, length, gap, length, ...]``: the
first id, then alternately how many consecutive ids follow and how many are skipped.
"""

from __future__ import annotations

import bisect
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator


class IdRuns:
    """Sorted, disjoint runs ``[start, end]`` of ids; built by appending ascending ids."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    @classmethod
    def of(cls, ids: Iterable[int]) -> IdRuns:
        """The runs of any ids, in any order."""
        runs = cls()
        for record_id in sorted(set(ids)):
            runs.append(record_id)
        return runs

    def append(self, record_id: int) -> None:
        """Add an id greater than every id already held (the order a scan yields them)."""
        if self._ends and record_id <= self._ends[-1]:
            msg = f"ids must be appended in increasing order: {record_id} after {self._ends[-1]}"
            raise ValueError(msg)
        if self._ends and record_id == self._ends[-1] + 1:
            self._ends[-1] = record_id
        else:
            self._starts.append(record_id)
            self._ends.append(record_id)

    def __contains__(self, record_id: object) -> bool:
        if not isinstance(record_id, int):
            return False
        index = bisect.bisect_right(self._starts, record_id) - 1
        return index >= 0 and record_id <= self._ends[index]

    def __iter__(self) -> Iterator[int]:
        for start, end in zip(self._starts, self._ends, strict=True):
            yield from range(start, end + 1)

    def __len__(self) -> int:
        return sum(end - start + 1 for start, end in zip(self._starts, self._ends, strict=True))

    def __or__(self, other: IdRuns) -> IdRuns:
        return IdRuns.of([*self, *other])

    @property
    def runs(self) -> int:
        """How many runs hold the ids (what the state's size grows with)."""
        return len(self._starts)

    def to_state(self) -> list[int]:
        """``[start, length, gap, length, ...]`` (empty for no ids)."""
        flat: list[int] = []
        previous_end: int | None = None
        for start, end in zip(self._starts, self._ends, strict=True):
            flat.append(start if previous_end is None else start - previous_end - 1)
            flat.append(end - start + 1)
            previous_end = end
        return flat

    @classmethod
    def from_state(cls, flat: object) -> IdRuns:
        """Read ``to_state``'s list; ValueError names what is wrong with it."""
        if not (
            isinstance(flat, list)
            and len(flat) % 2 == 0
            and all(isinstance(n, int) and not isinstance(n, bool) for n in flat)
        ):
            msg = "is not an even-length list of integers"
            raise ValueError(msg)
        runs = cls()
        position: int | None = None
        for index in range(0, len(flat), 2):
            step, length = flat[index], flat[index + 1]
            if length < 1 or (position is not None and step < 1):
                msg = f"has an empty run or no gap at position {index}"
                raise ValueError(msg)
            start = step if position is None else position + step + 1
            runs._starts.append(start)
            runs._ends.append(start + length - 1)
            position = start + length - 1
        return runs

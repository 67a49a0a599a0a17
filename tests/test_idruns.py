"""Id sets as runs: exact membership, compact state, strict reading."""

from __future__ import annotations

import random

import pytest

from tap_coupa.idruns import IdRuns

pytestmark = pytest.mark.unit


def test_runs_hold_exactly_the_ids_and_round_trip() -> None:
    rng = random.Random(5)
    ids = sorted(rng.sample(range(1, 200_000), 100_000))
    runs = IdRuns.of(reversed(ids))
    assert list(runs) == ids
    assert len(runs) == len(ids)
    assert all(i in runs for i in ids[:500])
    assert not any(i in runs for i in set(range(1, 2000)) - set(ids))
    again = IdRuns.from_state(runs.to_state())
    assert list(again) == ids


def test_state_grows_with_gaps_not_rows() -> None:
    rng = random.Random(7)
    deleted = set(rng.sample(range(1, 100_001), 1000))
    runs = IdRuns.of(i for i in range(1, 100_001) if i not in deleted)
    assert runs.runs <= 1001
    assert runs.to_state()[:2] == [1, min(deleted) - 1]
    assert len(str(runs.to_state())) < 16_000


def test_union_and_ascending_appends() -> None:
    runs = IdRuns()
    for i in (3, 4, 5, 9):
        runs.append(i)
    assert runs.to_state() == [3, 3, 3, 1]
    assert list(runs | IdRuns.of([6, 1])) == [1, 3, 4, 5, 6, 9]
    with pytest.raises(ValueError, match="increasing"):
        runs.append(9)


@pytest.mark.parametrize("flat", [[1], [1, 0], [1, 2, 0, 1], [1, "2"], "1,2", [True, 1]])
def test_malformed_state_is_refused(flat: object) -> None:
    with pytest.raises(ValueError, match=r"is not|has an empty run"):
        IdRuns.from_state(flat)

"""Id sets as runs: exact membership, compact state, strict reading."""

from __future__ import annotations

import base64
import random
import zlib

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
    assert len(runs.to_state()) < 4_000


def test_ids_that_skip_numbers_often_stay_small() -> None:
    """A third of the ids skip a few numbers (as the sandbox's do): still a few bytes each."""
    rng = random.Random(9)
    ids, current = [], 1
    for _ in range(100_000):
        ids.append(current)
        current += 1 + (rng.randint(1, 6) if rng.random() < 0.35 else 0)
    runs = IdRuns.of(ids)
    assert runs.runs > 30_000
    assert len(runs.to_state()) < 64_000
    assert list(IdRuns.from_state(runs.to_state())) == ids


def test_union_and_ascending_appends() -> None:
    runs = IdRuns()
    for i in (3, 4, 5, 9):
        runs.append(i)
    assert list(IdRuns.from_state(runs.to_state())) == [3, 4, 5, 9]
    assert list(runs | IdRuns.of([6, 1])) == [1, 3, 4, 5, 6, 9]
    overlapping = IdRuns.of(range(4, 12)) | runs
    assert list(overlapping) == list(range(3, 12))
    assert overlapping.runs == 1, "adjacent and overlapping runs merge"
    with pytest.raises(ValueError, match="increasing"):
        runs.append(9)


def encoded(raw: bytes) -> str:
    return base64.b64encode(zlib.compress(raw)).decode()


@pytest.mark.parametrize(
    "text",
    [[1, 2], "not base64!", "aGVsbG8=", encoded(b"\x01"), encoded(b"\x01\x00"), encoded(b"\x81")],
    ids=["a-list", "not-base64", "not-zlib", "odd-count", "empty-run", "truncated"],
)
def test_malformed_state_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match=r"is not|has an empty run|truncated"):
        IdRuns.from_state(text)

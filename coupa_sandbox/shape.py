"""How big the documents are: bytes and nested objects per record.

``python -m coupa_sandbox.shape`` prints the figures the README quotes for the realistic
document shape (see ``generate.DOCUMENT_SHAPES``), and generation time, so a change to
generation shows its effect on what benchmarks measure.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from .config import SandboxConfig
from .generate import DOCUMENT_SHAPES, DOCUMENTS
from .state import SandboxState


def nested_objects(value: Any) -> int:
    """JSON objects inside ``value``, not counting ``value`` itself."""
    if isinstance(value, Mapping):
        return sum(_objects(v) for v in value.values())
    return _objects(value)


def _objects(value: Any) -> int:
    if isinstance(value, Mapping):
        return 1 + sum(_objects(v) for v in value.values())
    if isinstance(value, list):
        return sum(_objects(v) for v in value)
    return 0


@dataclass(frozen=True)
class Figures:
    """Size of records as served (compact JSON), per record."""

    records: int
    mean_bytes: float
    median_bytes: float
    mean_objects: float
    median_objects: float

    @classmethod
    def of(cls, records: Iterable[Any]) -> Figures:
        """Figures of decoded records."""
        sizes, objects = [], []
        for record in records:
            sizes.append(len(msgspec.json.encode(record)))
            objects.append(nested_objects(record))
        return cls(
            len(sizes),
            statistics.mean(sizes),
            statistics.median(sizes),
            statistics.mean(objects),
            statistics.median(objects),
        )

    def __str__(self) -> str:
        return (
            f"{self.records} records: {self.mean_bytes / 1000:.1f} KB mean, "
            f"{self.median_bytes / 1000:.1f} KB median; nested objects "
            f"{self.mean_objects:.0f} mean, {self.median_objects:.0f} median"
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Print figures and generation time per document resource."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--document-shape", choices=DOCUMENT_SHAPES, default="realistic")
    args = parser.parse_args(argv)
    for stream in sorted(DOCUMENTS):
        config = SandboxConfig(
            records={stream: args.records},
            cache_records=args.records,
            document_shape=args.document_shape,
        )
        started = time.perf_counter()
        records = SandboxState(config).store.snapshot(stream)
        elapsed = time.perf_counter() - started
        print(
            f"{stream}: {Figures.of(records)}; generated in "
            f"{elapsed * 1000 / len(records) * 1000:.0f} ms per 1,000"
        )


if __name__ == "__main__":
    main()

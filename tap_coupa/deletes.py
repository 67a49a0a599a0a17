"""Deleted records: Coupa has no feed of them, so the tap compares listings of ids.

A listing reads every id of the collection (``fields=["id"]``, the smallest payload
Coupa offers) with the same concurrent, gap-free scan as the records themselves
(``engine.IdScan``, through the same rate limiter and retries). An id is reported
deleted when the previous listing, or a scan before this listing began, saw it and
this listing does not. Why that never reports an existing record:

* The ids compared are those the target holds: the first listing's, then each id
  the stream emits, less those reported. A record the tap never emitted (inserted and
  deleted between two syncs) is never reported, so no target gets a phantom row; but
  for one window: the first listing adopts every id it sees, so a record inserted
  between the stream's scan and that listing, and deleted before the next sync, is
  reported (once) without having been emitted.
* Ids are never reused, and the scan yields every record that exists from the
  listing's start to its end (its gap-free guarantee). So a held id it does not yield
  did not exist, or did not match the filter, at some moment of the listing.
* Only ids emitted *before* the listing began are compared with it: a record emitted
  after it began may have entered the filter after the listing passed its id. A
  listing that is killed resumes after the last id it checkpointed, with the ids it
  had seen; ids that scans emit meanwhile join the held ones when it ends
  (``state.DeleteState``). A failed page fails the sync: nothing is compared.
* A deletion is reported with the STATE that records the new listing right after it,
  so it is reported once; an id it reports is not held again even if a scan emitted it
  while the listing ran (``DeleteState.finish_listing``). A sync stopped while the
  deletions are reported left them held: the next listing reports them again.
* No 404 but Coupa's "no results" is read as an empty listing (``IdScan``'s
  ``missing_ok``): a proxy's 404 would otherwise report every held id.

The listing uses the stream's own filters and ``start_date``, not the bookmark: a
record that stops matching a user's filter is reported as deleted (it left the
extracted set). Rows of child streams are not checked (see the README).
"""

from __future__ import annotations

import logging
import time
import typing as t

import pendulum

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tap_coupa.engine import IdScan
    from tap_coupa.state import DeleteState

#: The Singer SDK's column for deleted rows (targets delete or flag them).
DELETED_AT = "_sdc_deleted_at"
DELETED_AT_SCHEMA = {"type": ["string", "null"], "format": "date-time"}
#: Checkpoint a running listing at least this often.
CHECKPOINT_IDS = 5000
CHECKPOINT_SECONDS = 10.0

logger = logging.getLogger("tap-coupa")


class DeleteCheck:
    """One listing of a stream's ids, compared with what was seen before it."""

    def __init__(
        self,
        stream: str,
        state: DeleteState,
        listing: Callable[[int | None], IdScan],
        checkpoint: Callable[[], None],
    ) -> None:
        self.stream = stream
        self.state = state
        #: Builds the listing's scan, resuming after the given id.
        self._listing = listing
        self._checkpoint = checkpoint

    def deleted_ids(self) -> Iterator[int]:
        """List every id, then yield the held ones no longer there.

        Nothing is yielded until the listing is complete, and the state takes the new
        held ids only once every one is yielded (reported): a STATE written meanwhile
        (the SDK's every 10,000 records, or on SIGTERM) still holds those not reported.
        """
        baseline = self.state.known
        after_id, seen, started_at = self.state.resume()
        if started_at is None:
            started_at = pendulum.now("UTC").isoformat()
        if after_id is not None:
            logger.info("Resuming %r's delete check after id %s.", self.stream, after_id)
        began = time.monotonic()
        scan = self._listing(after_id)
        checkpoint_at = began + CHECKPOINT_SECONDS
        for count, record in enumerate(scan, start=1):
            seen.append(record["id"])
            if count % CHECKPOINT_IDS == 0 or time.monotonic() >= checkpoint_at:
                self.state.save_listing(record["id"], seen, started_at)
                self._checkpoint()
                checkpoint_at = time.monotonic() + CHECKPOINT_SECONDS
        deleted: list[int] = []
        if baseline is not None:
            deleted = [record_id for record_id in baseline if record_id not in seen]
        stats = scan.source.stats
        logger.info(
            "Stream %r: delete check listed %d ids in %d requests, %d deleted%s, in %.1fs.",
            self.stream,
            len(seen),
            stats.requests,
            len(deleted),
            "" if baseline is not None else " (first listing: the baseline)",
            time.monotonic() - began,
        )
        yield from deleted
        self.state.finish_listing(seen, started_at)


def deleted_record(record_id: int, when: str) -> dict[str, t.Any]:
    """The RECORD that tells a target a row is gone: its key and when it was found."""
    return {"id": record_id, DELETED_AT: when}

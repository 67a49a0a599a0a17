"""A stream's state: its bookmark and, mid-scan, where to resume. The one owner of its format.

Per stream the state holds::

    {"replication_key": "updated-at",
     "replication_key_value": "2025-03-10T15:00:00+00:00",
     "progress": {"since": ..., "after_id": 4711, "started_at": ...},
     "served_per_page": 50}

* The bookmark is an instant, compared with pendulum, never as a string: Coupa's
  offsets change with daylight saving.
* A scan is ordered by id, not by ``updated-at``, so its bookmark only moves when the
  scan completes, and then no further than the instance's clock when the scan began,
  less a safety margin: a record changed during the scan, in a part already read, is
  still ``>=`` the new bookmark and is picked up by the next sync.
* Mid-scan, ``progress`` carries the filter in use (``since``), the last id emitted and
  the scan's start, so an interrupted sync resumes where it stopped rather than from
  zero, and the finished scan still bounds its bookmark by the first attempt's start.
* ``served_per_page`` is the most records one page of the stream has held: proof that
  the endpoint does not cap ``limit`` below it, so a later scan's short first page is
  the end without a confirming request (see ``engine``).
* ``streams`` (in the bookmark's entry and in ``progress``) names the selected streams
  the scan emitted: the collection's own, and its child streams', whose rows come
  from the same scan. A stream selected later (a child added, a parent selected after
  only its children were) was not emitted up to the bookmark, so the bookmark, or an
  interrupted scan, does not apply to it: the scan reads from ``start_date`` once.
  A state without ``streams`` (written before it existed) covers what is selected.
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass

import pendulum

from tap_coupa.errors import CoupaConfigError
from tap_coupa.idruns import IdRuns
from tap_coupa.instants import is_instant, parse_instant

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Collection, Mapping, MutableMapping

BOOKMARK_KEY = "replication_key"
DELETES = "deletes"
BOOKMARK_VALUE = "replication_key_value"
PROGRESS = "progress"
SERVED = "served_per_page"
STREAMS = "streams"


@dataclass(frozen=True)
class Progress:
    """Where an interrupted scan resumes: its filter, last id emitted and start time."""

    since: str | None = None
    after_id: int | None = None
    started_at: str | None = None
    #: The selected streams the scan emits (None: written before this was kept).
    streams: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, value: object) -> Progress:
        """Read a ``progress`` entry; ValueError names what is wrong with it."""
        if not isinstance(value, dict):
            msg = "is not an object"
            raise ValueError(msg)
        streams = _streams(value.get(STREAMS))
        after_id, since, started = (value.get(k) for k in ("after_id", "since", "started_at"))
        if after_id is not None and (not isinstance(after_id, int) or isinstance(after_id, bool)):
            msg = f"has after_id {after_id!r}, not an integer"
            raise ValueError(msg)
        for name, instant in (("since", since), ("started_at", started)):
            if instant is not None and not is_instant(instant):
                msg = f"has {name} {instant!r}, not an ISO-8601 date-time"
                raise ValueError(msg)
        return cls(since=since, after_id=after_id, started_at=started, streams=streams)

    def as_state(self) -> dict[str, t.Any]:
        """The JSON written to state (``started_at`` and ``streams`` only when known)."""
        entry: dict[str, t.Any] = {"since": self.since, "after_id": self.after_id}
        if self.started_at is not None:
            entry["started_at"] = self.started_at
        if self.streams is not None:
            entry[STREAMS] = list(self.streams)
        return entry

    def covers(self, streams: Collection[str]) -> bool:
        """Whether the interrupted scan was emitting every one of ``streams``."""
        return _covers(self.streams, streams)


def _streams(value: object) -> tuple[str, ...] | None:
    """A ``streams`` entry: None, or a list of stream names (ValueError otherwise)."""
    if value is None:
        return None
    if not (isinstance(value, list) and all(isinstance(name, str) for name in value)):
        msg = f"has streams {value!r}, not a list of stream names"
        raise ValueError(msg)
    return tuple(value)


def _covers(covered: tuple[str, ...] | None, streams: Collection[str]) -> bool:
    """Whether ``streams`` were all emitted (a state without the list covers them)."""
    return covered is None or set(streams) <= set(covered)


class StreamState:
    """One stream's state dict (the SDK's ``stream_state``), read and written by rule.

    A stream without a replication key, or forced to FULL_TABLE by the catalog
    (``full_table``), reads everything since ``start_date`` and keeps no bookmark.
    """

    def __init__(
        self,
        state: MutableMapping[str, t.Any],
        replication_key: str | None,
        *,
        full_table: bool = False,
    ) -> None:
        self._state = state
        self.replication_key = replication_key
        self.full_table = full_table or not replication_key

    @property
    def progress(self) -> Progress | None:
        """The interrupted scan to resume, if any (validated when the tap started)."""
        entry = self._state.get(PROGRESS)
        return Progress.parse(entry) if entry else None

    def bookmark(self) -> pendulum.DateTime | None:
        """The stored bookmark, if it belongs to this stream's replication key."""
        value = self._state.get(BOOKMARK_VALUE)
        if not value or self._state.get(BOOKMARK_KEY) != self.replication_key:
            return None
        return parse_instant(str(value))

    def covers(self, streams: Collection[str]) -> bool:
        """Whether the bookmark was left by a scan that emitted every one of ``streams``."""
        return _covers(_streams(self._state.get(STREAMS)), streams)

    def since(
        self,
        start_date: pendulum.DateTime | None,
        lookback: pendulum.Duration,
        streams: Collection[str] = (),
    ) -> str | None:
        """The filter start of a new scan: the later of bookmark - lookback and ``start_date``.

        The lookback re-reads records whose change surfaced after the bookmark passed
        them (a late commit, a derived field Coupa updates without bumping them). The
        bookmark counts only if it covers the ``streams`` this scan emits.
        """
        if not self.replication_key:
            return None
        bookmark = None if self.full_table or not self.covers(streams) else self.bookmark()
        candidates = [
            when
            for when in (None if bookmark is None else bookmark - lookback, start_date)
            if when is not None
        ]
        return max(candidates).in_timezone("UTC").isoformat() if candidates else None

    @property
    def served_per_page(self) -> int:
        """The most records one page of this stream has held (0: none seen yet)."""
        return int(self._state.get(SERVED) or 0)

    def saw_pages_of(self, records: int) -> None:
        """Keep the proof that the endpoint serves at least ``records`` per page."""
        if records > self.served_per_page:
            self._state[SERVED] = records

    def save_progress(self, progress: Progress) -> None:
        """Record where the running scan would resume."""
        self._state[PROGRESS] = progress.as_state()

    def finish(
        self,
        latest: pendulum.DateTime | None,
        started_at: pendulum.DateTime | None,
        margin: pendulum.Duration,
        streams: Collection[str] = (),
    ) -> bool:
        """End the scan: drop ``progress``, move the bookmark to min(latest, start - margin).

        The instance's clock is read from the first page's ``Date`` header, stamped
        after its query ran: a record updated in between, a transaction committing
        after its ``updated-at``, or an app server whose clock lags the header's, all
        leave an ``updated-at`` a little before that stamp, on a record this scan read
        in its old version. The margin keeps such records inside the next filter.
        Returns whether the state changed.
        """
        changed = self._state.pop(PROGRESS, None) is not None
        if self.full_table:  # keeps no bookmark
            dropped = [self._state.pop(key, None) for key in (BOOKMARK_KEY, BOOKMARK_VALUE)]
            return changed or any(value is not None for value in dropped)
        covered = sorted(streams)
        if self._state.get(STREAMS) != covered:
            self._state[STREAMS] = covered
            changed = True
        if latest is None:
            return changed
        value = latest if started_at is None else min(latest, started_at - margin)
        self._state[BOOKMARK_KEY] = self.replication_key
        self._state[BOOKMARK_VALUE] = value.in_timezone("UTC").isoformat()
        return True

    @staticmethod
    def problem(entry: Mapping[str, t.Any]) -> str | None:
        """What is wrong with one stream's stored state, or None."""
        value = entry.get(BOOKMARK_VALUE)
        if value is not None and not is_instant(value):
            return f"has replication_key_value {value!r}, not an ISO-8601 date-time"
        if (progress := entry.get(PROGRESS)) is not None:
            try:
                Progress.parse(progress)
            except ValueError as exc:
                return f"has a progress entry that {exc} ({progress!r})"
        try:
            _streams(entry.get(STREAMS))
        except ValueError as exc:
            return str(exc)
        served = entry.get(SERVED)
        if served is not None and (type(served) is not int or served < 1):
            return f"has {SERVED} {served!r}, not a positive integer"
        if (deletes := entry.get(DELETES)) is not None:
            try:
                DeleteState.parse(deletes)
            except ValueError as exc:
                return f"has a deletes entry that {exc}"
        return None

    @property
    def deletes(self) -> DeleteState:
        """The delete check's part of the state."""
        return DeleteState(self._state.setdefault(DELETES, {}))


class DeleteState:
    """The ``deletes`` entry of a stream's state, for delete detection (``deletes.py``).

    ``known``: the ids the target holds: those the first listing saw, then every id
    emitted since, less those reported deleted (absent before the first listing);
    ``checked_at``: when the last complete listing began; ``listing``: an interrupted
    listing (``after_id``, the ``ids`` it had seen, and the ids ``emitted`` since it
    began), which the next sync resumes. Id sets are ``IdRuns``.
    """

    def __init__(self, entry: MutableMapping[str, t.Any]) -> None:
        self._entry = entry

    @staticmethod
    def parse(entry: object) -> None:
        """Check a ``deletes`` entry; ValueError names what is wrong with it."""
        if not isinstance(entry, dict):
            msg = "is not an object"
            raise ValueError(msg)
        if "known" in entry:
            try:
                IdRuns.from_state(entry["known"])
            except ValueError as exc:
                msg = f"has known ids that {exc}"
                raise ValueError(msg) from None
        if "checked_at" in entry and not is_instant(entry["checked_at"]):
            msg = f"has checked_at {entry['checked_at']!r}, not an ISO-8601 date-time"
            raise ValueError(msg)
        listing = entry.get("listing")
        if listing is not None:
            if not (
                isinstance(listing, dict)
                and isinstance(listing.get("after_id"), int)
                and is_instant(listing.get("started_at"))
            ):
                msg = f"has a listing {listing!r} without after_id and started_at"
                raise ValueError(msg)
            IdRuns.from_state(listing.get("ids"))
            _runs(listing.get("emitted"))

    @property
    def known(self) -> IdRuns | None:
        """The ids the target holds, or None before the first listing."""
        flat = self._entry.get("known")
        return None if flat is None else IdRuns.from_state(flat)

    def add_emitted(self, ids: IdRuns) -> None:
        """Count ids a scan emitted among those the target holds.

        Only ids emitted before a listing began may be compared with it: a record that
        enters the filter after the listing passed its id would look deleted. So while
        a listing is interrupted, what scans emit waits until it ends.
        """
        if not len(ids) or "known" not in self._entry:
            return
        holder, key = (
            (self._entry["listing"], "emitted")
            if "listing" in self._entry
            else (self._entry, "known")
        )
        holder[key] = (_runs(holder.get(key)) | ids).to_state()

    def due(self, now: pendulum.DateTime, interval: pendulum.Duration) -> bool:
        """Whether a listing should run: the first, a resumed one, or one due by interval."""
        checked = self._entry.get("checked_at")
        return (
            checked is None or "listing" in self._entry or now - parse_instant(checked) >= interval
        )

    def resume(self) -> tuple[int | None, IdRuns, str | None]:
        """An interrupted listing's last id, the ids it saw, and its start (or a fresh one)."""
        listing = self._entry.get("listing")
        if not listing:
            return None, IdRuns(), None
        return listing["after_id"], IdRuns.from_state(listing["ids"]), listing["started_at"]

    def save_listing(self, after_id: int, seen: IdRuns, started_at: str) -> None:
        """Checkpoint a running listing."""
        listing = self._entry.setdefault("listing", {})
        listing.update(after_id=after_id, ids=seen.to_state(), started_at=started_at)

    def finish_listing(self, seen: IdRuns, started_at: str) -> None:
        """End a listing: held ids it saw, and those emitted while it ran, stay held.

        The held ids it did not see were reported deleted; so they are not held again
        even if a scan emitted them while the listing ran (it was killed, and the next
        sync's scan came first): the report told the target to drop them, and holding
        them would report them again. The first listing's ids become the held ones.
        """
        listing = self._entry.pop("listing", None) or {}
        known = self.known
        emitted = _runs(listing.get("emitted"))
        if known is None:
            kept = seen
        else:
            kept = IdRuns.of(record_id for record_id in known if record_id in seen)
            emitted = IdRuns.of(i for i in emitted if i in seen or i not in known)
        self._entry["known"] = (kept | emitted).to_state()
        self._entry["checked_at"] = started_at


def _runs(value: object) -> IdRuns:
    """An encoded id set, or the empty one for None."""
    return IdRuns() if value is None else IdRuns.from_state(value)


def state_file_problem(value: object) -> str | None:
    """What keeps a --state file's JSON from being a Singer state, or None."""
    if not isinstance(value, dict):
        return "is not a JSON object"
    for key, what in (("singer_state", "Meltano's"), ("value", "a STATE message's")):
        inner = value.get(key)
        if "bookmarks" not in value and isinstance(inner, dict) and "bookmarks" in inner:
            # Read as it is, it has no bookmarks: every stream, and the delete check's
            # baseline, would start over without a word.
            return f'is {what} wrapper of a state; pass the object under "{key}"'
    bookmarks = value.get("bookmarks", {})
    if not (isinstance(bookmarks, dict) and all(isinstance(b, dict) for b in bookmarks.values())):
        return 'has no "bookmarks" object of per-stream objects'
    return None


def check_state(state: Mapping[str, t.Any], streams: Collection[str], log: logging.Logger) -> None:
    """Refuse a state that is not ours or not well-formed, before any request."""
    bookmarks = state.get("bookmarks", {})
    known = set(streams)
    unknown = sorted(set(bookmarks) - known)
    if unknown and not set(bookmarks) & known:
        msg = (
            f"The state file's bookmarks ({', '.join(unknown[:5])}) are not tap-coupa "
            "streams: it belongs to another tap. Pass this tap's state, or none."
        )
        raise CoupaConfigError(msg)
    for name in unknown:
        log.warning("State has a bookmark for unknown stream %r; ignoring it.", name)
    for name in sorted(set(bookmarks) & known):
        if problem := StreamState.problem(bookmarks[name]):
            msg = (
                f"State for stream {name!r} {problem}; fix it, or remove that stream's "
                "bookmark to re-extract it."
            )
            raise CoupaConfigError(msg)


class ScanClock:
    """The instance's clock when a scan began (from the first page's ``Date`` header).

    A resumed scan keeps the start of its first attempt: records it read before the
    interruption may have changed since.
    """

    def __init__(self, resumed: str | None = None) -> None:
        self._started: float | None = None
        self._resumed = resumed
        self._local = time.time()

    def observe(self, server_time: float | None) -> None:
        """Take the first page's server time; later pages are later still."""
        if self._started is None:
            self._started = server_time if server_time is not None else self._local

    def started_at(self) -> pendulum.DateTime | None:
        """When the (first attempt of the) scan began, if known."""
        if self._resumed:
            return parse_instant(self._resumed)
        if self._started is None:
            return None
        return pendulum.from_timestamp(self._started)

    def started_text(self) -> str | None:
        """``started_at`` as written to ``progress``."""
        started = self.started_at()
        return started.isoformat() if started else None

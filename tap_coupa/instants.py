"""Coupa's datetimes as instants, never as strings.

They carry the instance's UTC offset, which flips with daylight saving.
"""

from __future__ import annotations

import typing as t

import pendulum


def parse_instant(value: str) -> pendulum.DateTime:
    """Parse an ISO-8601 instant; a value without an offset is taken as UTC."""
    parsed = pendulum.parse(value, tz="UTC")
    if not isinstance(parsed, pendulum.DateTime):
        msg = f"{value!r} is not a date-time"
        raise ValueError(msg)
    return parsed


def is_instant(value: object) -> bool:
    """Whether ``value`` reads as an ISO-8601 instant."""
    try:
        parse_instant(str(value))
    except ValueError:
        return False
    return True


class InstantMax:
    """The latest instant among ISO-8601 strings that carry different UTC offsets.

    Strings that share an offset do compare correctly, so the hot path keeps one
    maximum per offset and parses only those few at the end.
    """

    def __init__(self) -> None:
        self._by_offset: dict[str, str] = {}

    def observe(self, value: t.Any) -> None:
        """Account for one replication-key value (ignoring nulls)."""
        if value.__class__ is not str or not value:
            return
        offset = value[-6:] if len(value) > 6 and value[-6] in "+-" else value[-1:]
        current = self._by_offset.get(offset)
        if current is None or value > current:
            self._by_offset[offset] = value

    def latest(self) -> pendulum.DateTime | None:
        """The latest instant observed, or None if none was.

        Raises ``ValueError`` naming a value that is not a date-time: the latest could
        be any instant, so no bookmark is safe.
        """
        instants = []
        for value in self._by_offset.values():
            try:
                instants.append(parse_instant(value))
            except ValueError:
                msg = f"{value[:40]!r} is not an ISO-8601 date-time"
                raise ValueError(msg) from None
        return max(instants, default=None)

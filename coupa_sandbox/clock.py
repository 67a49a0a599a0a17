"""Instance time zone: formatting and parsing of Coupa datetimes.

Coupa renders every datetime in the instance's time zone with its UTC offset
(``2025-03-10T08:00:00-07:00``), so offsets change with DST.  Filters must compare
*instants*, whatever offset (or ``Z``) the client sent.
"""

from __future__ import annotations

import functools
import re
from datetime import date, datetime, timezone, tzinfo

DEFAULT_TIMEZONE = "America/Los_Angeles"

_NAIVE_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?"
    # A literal "+" in a query string decodes to a space: "…T08:00:00 02:00".
    # Rails' parser then sees no zone and reads the wall time in the instance zone.
    r"(?:\s+\d{2}:?\d{2})?$"
)
_FRACTION_RE = re.compile(r"\.(\d+)")


def load_zone(name: str) -> tzinfo:
    """Return a tzinfo for ``name``; pendulum's bundled data backs up a missing tzdb."""
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # pragma: no cover - only on hosts without a tz database
        import pendulum

        return pendulum.timezone(name)


def _normalise_fraction(value: str) -> str:
    """Pad or cut fractional seconds to 6 digits so Python 3.10 ``fromisoformat`` accepts them."""
    return _FRACTION_RE.sub(lambda m: "." + (m.group(1) + "000000")[:6], value, count=1)


@functools.lru_cache(maxsize=131072)
def parse_instant(value: str, zone: tzinfo) -> float:
    """Parse a Coupa/ISO datetime (or date) into a POSIX timestamp.

    Values without an offset are wall times in the instance zone, as Coupa reads them.
    Raises ``ValueError`` when the value is not a datetime at all.
    """
    text = value.strip()
    if not text:
        raise ValueError("empty datetime")
    naive = _NAIVE_RE.match(text)
    if naive:
        day, clock = naive.group(1), naive.group(2) or "00:00:00"
        local = datetime.fromisoformat(_normalise_fraction(f"{day}T{clock}"))
        return local.replace(tzinfo=zone).timestamp()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(_normalise_fraction(text))
    if parsed.tzinfo is None:  # pragma: no cover - covered by the regex above
        parsed = parsed.replace(tzinfo=zone)
    return parsed.timestamp()


@functools.lru_cache(maxsize=65536)
def _format(ts: int, zone: tzinfo) -> str:
    return datetime.fromtimestamp(ts, zone).isoformat()


@functools.lru_cache(maxsize=4096)
def _midnight(day: date, zone: tzinfo) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=zone).isoformat()


class Clock:
    """Formats instants the way the instance does; one per sandbox."""

    def __init__(self, zone_name: str = DEFAULT_TIMEZONE) -> None:
        self.zone_name = zone_name
        self.zone = load_zone(zone_name)

    def format(self, ts: float) -> str:
        """ISO-8601 with the instance's offset at that instant, second precision."""
        return _format(int(ts), self.zone)

    def format_midnight(self, ts: float) -> str:
        """Local midnight of the day containing ``ts`` (Coupa's date-like datetimes)."""
        return _midnight(datetime.fromtimestamp(int(ts), self.zone).date(), self.zone)

    def format_date(self, ts: float) -> str:
        """Local calendar date, for ``format: date`` properties."""
        return datetime.fromtimestamp(int(ts), self.zone).date().isoformat()

    def parse(self, value: str) -> float:
        """Parse any datetime string into an instant (see :func:`parse_instant`)."""
        return parse_instant(value, self.zone)

    def local(self, year: int, month: int, day: int, hour: int, minute: int, fold: int) -> float:
        """Instant of a local wall time; ``fold`` picks the 1st/2nd occurrence in DST fall-back."""
        return datetime(year, month, day, hour, minute, tzinfo=self.zone, fold=fold).timestamp()

    @staticmethod
    def today_utc_midnight(now: datetime | None = None) -> float:
        """Start of the current UTC day: a default anchor that is stable within a day."""
        current = now or datetime.now(timezone.utc)
        start = date(current.year, current.month, current.day)
        return datetime(start.year, start.month, start.day, tzinfo=timezone.utc).timestamp()

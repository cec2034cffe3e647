"""Data-capture rate per device-day: readings received against readings expected.

Regulators judge a device by the share of its reporting slots that arrived (HJ 75 calls
it 数据捕集率 / data capture rate) and, separately, by the share that arrived flagged
valid. Pure: it takes the counts the database found, the device's interval and "now",
and decides nothing from a clock of its own, so a test can pin every edge (a partial
first day, today not yet over, a device that reports more often than registered).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class DayCount:
    """What the database found for one UTC day: distinct reporting timestamps, and those
    with at least one value flagged N."""

    day: date
    received: int
    valid: int
    first_ts: datetime | None = None  # the day's first reading


def active_since(registered_at: datetime, counts: list[DayCount]) -> datetime:
    """From when a device is expected to report: its registration, or its first reading
    if that is earlier (history loaded or replayed after the device was registered)."""
    firsts = [c.first_ts for c in counts if c.first_ts is not None]
    return min([registered_at, *firsts])


@dataclass(frozen=True, slots=True)
class DayCapture:
    day: date
    expected: int
    received: int
    valid: int
    capture_rate: float | None  # received / expected, capped at 1; None: nothing expected
    valid_rate: float | None


def utc_days(start: datetime, end: datetime) -> list[date]:
    """The UTC days that [start, end) touches, in order."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end need a time zone")
    first, last = (
        start.astimezone(UTC).date(),
        (end.astimezone(UTC) - timedelta(microseconds=1)).date(),
    )
    return (
        [first + timedelta(days=i) for i in range((last - first).days + 1)] if end > start else []
    )


def capture_by_day(
    counts: list[DayCount],
    interval_s: float,
    start: datetime,
    end: datetime,
    now: datetime,
    since: datetime | None = None,
) -> list[DayCapture]:
    """One row per UTC day of [start, end): the slots expected are the seconds of that day
    inside the range, before ``now`` and after ``since`` (the device's registration),
    divided by its interval. A day with nothing expected has no rate, not 0 % or 100 %."""
    if interval_s <= 0:
        raise ValueError(f"interval_s must be positive, not {interval_s}")
    found = {c.day: c for c in counts}
    lo_bound = max(start, since) if since is not None else start
    hi_bound = min(end, now)
    out: list[DayCapture] = []
    for day in utc_days(start, end):
        day_start = datetime.combine(day, time(), UTC)
        lo, hi = max(day_start, lo_bound), min(day_start + DAY, hi_bound)
        expected = int((hi - lo).total_seconds() // interval_s) if hi > lo else 0
        c = found.get(day, DayCount(day, 0, 0, None))
        out.append(
            DayCapture(
                day,
                expected,
                c.received,
                c.valid,
                _rate(c.received, expected),
                _rate(c.valid, expected),
            )
        )
    return out


def _rate(n: int, expected: int) -> float | None:
    return None if expected <= 0 else min(1.0, n / expected)

"""Read-only: every alert *episode* in device time, for ``offsite alerts export``.

An alert row is reused when its condition returns (reopened), so one row can hold
several episodes. Its lifecycle events (``alert_events``, with the device times
that migration 0030 records) mark where each begins ('opened', 'reopened') and
ends ('cleared' by the engine, 'resolved' by a person). ``episodes_of`` turns one
alert's events into episodes (pure); ``export_episodes`` streams them from the
database with a server-side cursor, so a year of alerts never sits in memory.

Events written before migration 0030 carry no device time: the first episode then
starts at the alert's ``first_seen`` and the last closed one ends at its
``last_seen``; the boundaries between earlier episodes are unknown (None).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

SEVERITY_ORDER = ("info", "warning", "major", "critical")
STARTS = frozenset({"opened", "reopened"})
ENDS = frozenset({"cleared", "resolved"})

# The columns of an exported episode, in order (the CSV header; the JSON keys).
COLUMNS = (
    "alert_id",
    "episode",
    "rule",
    "mn",
    "point_id",
    "enterprise_id",
    "pollutant",
    "severity",
    "suppressed",
    "start",
    "end",
    "end_reason",
)


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    rule: str
    mn: str
    pollutant: str
    first_seen: datetime
    last_seen: datetime
    severity: str
    suppressed: str | None
    point_id: str | None
    enterprise_id: str | None


@dataclass(frozen=True, slots=True)
class EventRow:
    kind: str
    device_at: datetime | None
    severity: str | None
    suppressed: str | None


@dataclass(frozen=True, slots=True)
class Episode:
    """One stretch of an alert from its (re)opening to its clear or resolution.

    ``end`` is the device time of the last reading that showed the condition; None
    while the episode is still open (``end_reason`` "open") or when unknown (events
    from before migration 0030). ``severity`` is the highest seen in the episode.
    """

    alert_id: int
    episode: int
    rule: str
    mn: str
    point_id: str | None
    enterprise_id: str | None
    pollutant: str
    severity: str
    suppressed: str | None
    start: datetime | None
    end: datetime | None
    end_reason: str  # cleared | resolved | open

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "episode": self.episode,
            "rule": self.rule,
            "mn": self.mn,
            "point_id": self.point_id,
            "enterprise_id": self.enterprise_id,
            "pollutant": self.pollutant,
            "severity": self.severity,
            "suppressed": self.suppressed,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "end_reason": self.end_reason,
        }

    def overlaps(self, since: datetime | None, until: datetime | None) -> bool:
        """Whether the episode touches ``[since, until)`` in device time (unknown
        bounds are taken as open, so nothing is lost by a missing time)."""
        if until is not None and self.start is not None and self.start >= until:
            return False
        return not (since is not None and self.end is not None and self.end < since)


def _worse(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    rank = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    return a if rank.get(a, -1) >= rank.get(b, -1) else b


def episodes_of(alert: AlertRow, events: Sequence[EventRow]) -> list[Episode]:
    """The episodes of one alert from its events in order (pure).

    An 'opened' or 'reopened' event begins an episode (a reopen while one is open,
    which the lifecycle never writes, is taken as part of it); 'cleared' or
    'resolved' ends it. An alert without any event (written by hand) is one episode
    spanning its first and last seen.
    """
    out: list[Episode] = []
    start: datetime | None = None
    severity: str | None = None
    suppressed: str | None = None
    is_open = False

    def close(end: datetime | None, reason: str) -> None:
        first = not out
        out.append(
            Episode(
                alert.id,
                len(out) + 1,
                alert.rule,
                alert.mn,
                alert.point_id,
                alert.enterprise_id,
                alert.pollutant,
                severity or alert.severity,
                suppressed,
                start if start is not None else (alert.first_seen if first else None),
                end,
                reason,
            )
        )

    for ev in events:
        if ev.kind in STARTS:
            if is_open:
                severity = _worse(severity, ev.severity)
                continue
            is_open = True
            start, severity, suppressed = ev.device_at, ev.severity, ev.suppressed
        elif ev.kind in ENDS and is_open:
            is_open = False
            close(ev.device_at, ev.kind)
        elif is_open:
            severity = _worse(severity, ev.severity)
    if is_open:
        close(None, "open")
    if not out:
        start, severity, suppressed = alert.first_seen, alert.severity, alert.suppressed
        close(alert.last_seen, "cleared")
    last = out[-1]
    if last.end is None and last.end_reason != "open":  # closed before migration 0030
        out[-1] = _replace_end(last, alert.last_seen)
    return out


def _replace_end(e: Episode, end: datetime) -> Episode:
    d = {f: getattr(e, f) for f in Episode.__slots__}
    d["end"] = end
    return Episode(**d)


_QUERY = """
SELECT a.id, a.rule, a.mn, a.pollutant, a.first_seen, a.last_seen, a.severity, a.suppressed,
       d.point_id, p.enterprise_id,
       e.kind, e.device_at, e.severity, e.suppressed
FROM alerts a
LEFT JOIN devices d ON d.mn = a.mn
LEFT JOIN points p ON p.id = d.point_id
LEFT JOIN alert_events e ON e.alert_id = a.id
WHERE (%(since)s::timestamptz IS NULL OR a.last_seen >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR a.first_seen < %(until)s)
ORDER BY a.id, e.id
"""


def export_episodes(
    conn: psycopg.Connection,
    since: datetime | None = None,
    until: datetime | None = None,
    batch: int = 2000,
) -> Iterator[Episode]:
    """Every episode touching ``[since, until)`` in device time, by alert id then episode.

    Read-only, in one snapshot: runs in its own transaction on ``conn`` and fetches
    ``batch`` rows at a time through a server-side cursor.
    """
    with conn.transaction(), conn.cursor(name="offsite_alert_export") as cur:
        cur.itersize = batch
        cur.execute(_QUERY, {"since": since, "until": until})
        alert: AlertRow | None = None
        events: list[EventRow] = []
        for row in cur:
            if alert is None or row[0] != alert.id:
                if alert is not None:
                    yield from (e for e in episodes_of(alert, events) if e.overlaps(since, until))
                alert = AlertRow(*row[:10])
                events = []
            if row[10] is not None:
                events.append(EventRow(*row[10:14]))
        if alert is not None:
            yield from (e for e in episodes_of(alert, events) if e.overlaps(since, until))

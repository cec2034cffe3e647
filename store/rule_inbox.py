"""The rule engine's queue: readings stored by any worker, judged by the rule runner.

``queue_for_rules`` runs inside the transaction that stores the readings; ``take`` and
``done`` run inside the runner's transaction that writes the alerts. One row per
committed batch, arrays inside, so queueing costs one small INSERT per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from ingest.models import Reading

NOTIFY_CHANNEL = "offsite_rule_inbox"


@dataclass(frozen=True, slots=True)
class Queued:
    ids: list[int]
    readings: list[Reading]
    heard: dict[str, datetime]


def queue_for_rules(conn: psycopg.Connection, new: Sequence[Reading],
                    received: Mapping[tuple[str, str, str, datetime], datetime],
                    heard: Mapping[str, datetime]) -> None:
    """Queue primary readings (not min/max/cou… beside an average) and who was heard.

    ``received`` maps (mn, pollutant, kind, ts) to when ingest received the reading."""
    primary = [r for r in new if not r.stat]
    if not primary and not heard:
        return
    rec = [received[(r.mn, r.pollutant, r.kind_text, r.ts)] for r in primary]
    conn.execute(
        """INSERT INTO rule_inbox (min_received, ts, mn, pollutant, kind, value, flag,
                                   received, heard_mn, heard_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (min([*rec, *heard.values()]), [r.ts for r in primary], [r.mn for r in primary],
         [r.pollutant for r in primary], [r.kind.value for r in primary],
         [r.value for r in primary], "".join(r.flag for r in primary), rec, list(heard),
         list(heard.values())))
    conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))


def committed_through(conn: psycopg.Connection, worker: str, through: datetime) -> None:
    """Record this worker's promise (in the transaction that keeps it, or when idle)."""
    conn.execute("UPDATE ingest_workers SET committed_through = %s WHERE worker = %s",
                 (through, worker))


def watermark(conn: psycopg.Connection, stale: timedelta) -> datetime:
    """Every reading received before this instant, by any live worker, is committed.

    Live = a heartbeat within ``stale``; a worker gone silent longer stops holding
    the others back (what it kept uncommitted comes later, out of order)."""
    row = conn.execute(
        """SELECT coalesce(min(committed_through), clock_timestamp()) FROM ingest_workers
           WHERE heartbeat_at > clock_timestamp() - %s AND committed_through IS NOT NULL""",
        (stale,)).fetchone()
    assert row is not None
    return row[0]


def take(conn: psycopg.Connection, before: datetime, limit: int = 2000) -> Queued:
    """Lock and take the queued readings received before ``before`` (a watermark).

    A batch that also holds readings received later is split: those stay queued for
    the next slice. Judging exactly "everything received before the watermark" keeps
    every device's readings in the order they arrived, whichever worker stored them.
    """
    rows = conn.execute(
        """SELECT id, queued_at, ts, mn, pollutant, kind, value, flag, received, heard_mn,
                  heard_at
           FROM rule_inbox WHERE min_received < %s
           ORDER BY min_received, id LIMIT %s FOR UPDATE SKIP LOCKED""",
        (before, limit)).fetchall()
    if len(rows) == limit:  # a cut: only what is older than the last taken is complete
        before = min(before, max(min(r[8] or [before]) for r in rows))
    ids: list[int] = []
    readings: list[Reading] = []
    heard: dict[str, datetime] = {}
    for rid, queued_at, ts, mn, pol, kind, value, flag, rec, hmn, hat in rows:
        ids.append(rid)
        rest: list[int] = []
        for i, (t, m, p, v, f, k, r) in enumerate(zip(ts, mn, pol, value, flag, kind, rec,
                                                       strict=True)):
            if r >= before:
                rest.append(i)
                continue
            dk, stat = Reading.split_kind(k)
            readings.append(Reading(t, m, p, v, f, dk, stat))
        for m, at in zip(hmn, hat, strict=True):
            if m not in heard or at > heard[m]:
                heard[m] = at
        if rest:  # re-queue the later part of this batch as its own row
            conn.execute(
                """INSERT INTO rule_inbox (queued_at, min_received, ts, mn, pollutant, kind,
                                           value, flag, received, heard_mn, heard_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, '{}', '{}')""",
                (queued_at, min(rec[i] for i in rest), [ts[i] for i in rest],
                 [mn[i] for i in rest], [pol[i] for i in rest], [kind[i] for i in rest],
                 [value[i] for i in rest], "".join(flag[i] for i in rest),
                 [rec[i] for i in rest]))
    return Queued(ids, readings, heard)


def done(conn: psycopg.Connection, ids: Sequence[int]) -> None:
    if ids:
        conn.execute("DELETE FROM rule_inbox WHERE id = ANY(%s)", (list(ids),))


def depth(conn: psycopg.Connection) -> tuple[int, float]:
    """(queued batches, age in seconds of the oldest): the rule runner's lag."""
    row = conn.execute("""SELECT count(*), coalesce(extract(epoch FROM
                              clock_timestamp() - min(queued_at)), 0) FROM rule_inbox""").fetchone()
    assert row is not None
    return int(row[0]), float(row[1])

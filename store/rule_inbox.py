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
                    heard: Mapping[str, datetime]) -> None:
    """Queue primary readings (not min/max/cou… beside an average) and who was heard."""
    primary = [r for r in new if not r.stat]
    if not primary and not heard:
        return
    conn.execute(
        """INSERT INTO rule_inbox (ts, mn, pollutant, kind, value, flag, heard_mn, heard_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        ([r.ts for r in primary], [r.mn for r in primary], [r.pollutant for r in primary],
         [r.kind.value for r in primary], [r.value for r in primary],
         "".join(r.flag for r in primary), list(heard), list(heard.values())))
    conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))


def take(conn: psycopg.Connection, settle: timedelta, limit: int = 200) -> Queued:
    """Lock the oldest queued batches that have settled for ``settle``.

    Batches committed by different workers within ``settle`` of each other are judged
    together, sorted by device time, so the order in which workers happened to commit
    does not change which alerts are raised.
    """
    rows = conn.execute(
        """SELECT id, ts, mn, pollutant, kind, value, flag, heard_mn, heard_at
           FROM rule_inbox WHERE queued_at <= clock_timestamp() - %s
           ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED""", (settle, limit)).fetchall()
    ids: list[int] = []
    readings: list[Reading] = []
    heard: dict[str, datetime] = {}
    for rid, ts, mn, pol, kind, value, flag, hmn, hat in rows:
        ids.append(rid)
        for t, m, p, v, f, k in zip(ts, mn, pol, value, flag, kind, strict=True):
            dk, stat = Reading.split_kind(k)
            readings.append(Reading(t, m, p, v, f, dk, stat))
        for m, at in zip(hmn, hat, strict=True):
            if m not in heard or at > heard[m]:
                heard[m] = at
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

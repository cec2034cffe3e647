"""Write readings: binary COPY into a staging table, then one idempotent INSERT.

COPY cannot skip duplicates, so it fills ``readings_stage`` (per connection, emptied at
commit) and an INSERT moves the rows. Duplicates are rare (a message redelivered after a
crash or a reconnect), so the INSERT is first tried plain, in a savepoint, and only a
unique violation makes it ``ON CONFLICT DO NOTHING``: the speculative insertion that
ON CONFLICT does for every row cost a 20,000-row batch 167 ms of insert and rollup
against 123 ms plain (medians of 13 batches), paid on every batch for what happens on
few. The rules must see exactly the rows new to the store (a redelivered message is
stored and judged once) and the hourly rollup (``store/rollups.py``; the daily one is a
view of it) must add up exactly those, which the same statement does from its RETURNING
rows, inside PostgreSQL. In the usual case every staged row is new, the plain INSERT
stores them all, and the batch itself is the answer (returning every row instead cost a
sixth of ingest's CPU in building them again in Python); only when some were duplicates
does the ON CONFLICT statement return the rows it inserted (not ``xmin``: TimescaleDB
refuses it on a hypertable with compressed chunks). On that rare path, a duplicate whose
value or flag differs from the stored one is rewritten history, found by a join of the
batch to the table and kept by ``store.conflicts``; never on the fast path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from operator import attrgetter

import psycopg

from offsite.core.readings import Reading
from offsite.store.conflicts import KEEP_REWRITES
from offsite.store.rollups import UPSERT_HOURLY, rollups_maintained

_COLUMNS = "ts, mn, pollutant, kind, value, flag, received_at"
_MN = attrgetter("mn")
_TYPES = ["timestamptz", "text", "text", "text", "float8", "text", "timestamptz"]


def _ensure_stage(conn: psycopg.Connection) -> None:
    """Create the session's staging table if needed.

    Asked every batch (one cheap round trip) rather than remembered, because a rolled
    back transaction also rolls back the table's creation.
    """
    conn.execute("""CREATE TEMP TABLE IF NOT EXISTS readings_stage
                    (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS""")


def insert_readings(
    conn: psycopg.Connection, readings: Sequence[Reading], received_at: Sequence[datetime]
) -> list[Reading]:
    """Store readings inside the caller's transaction; return those that were new."""
    if not readings:
        return []
    _ensure_stage(conn)
    with conn.cursor() as cur:
        with cur.copy(f"COPY readings_stage ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_TYPES)
            for r, rec in zip(readings, received_at, strict=True):
                copy.write_row((r.ts, r.mn, r.pollutant, r.kind_text, r.value, r.flag, rec))
        rollups = rollups_maintained(conn)
        try:
            with conn.transaction():  # a savepoint: a duplicate undoes only this attempt
                _move(cur, "", rollups)  # a plain INSERT stores every row or none
            new = list(readings)
        except psycopg.errors.UniqueViolation:
            new = _move_returning(cur, readings, rollups)
        if new:
            last, counts = device_times(new)
            mns = sorted(last)
            cur.execute(
                """
                INSERT INTO device_status AS s (mn, last_ts, last_received_at, readings)
                SELECT mn, ts, %s, n FROM unnest(%s::text[], %s::timestamptz[], %s::bigint[])
                    AS u (mn, ts, n)
                ON CONFLICT (mn) DO UPDATE SET
                    last_ts = greatest(s.last_ts, excluded.last_ts),
                    last_received_at = greatest(s.last_received_at, excluded.last_received_at),
                    readings = s.readings + excluded.readings""",
                (max(received_at), mns, [last[m] for m in mns], [counts[m] for m in mns]),
            )
    return new


def device_times(readings: Sequence[Reading]) -> tuple[dict[str, datetime], Counter[str]]:
    """Per device, its latest reading time and how many readings, for device_status.

    Counted in C; a message's readings share one device and one timestamp object, so
    only the first of each run is compared (this ran in the writer thread, a Python
    loop building a tuple per reading of a 20,000-reading batch)."""
    counts = Counter(map(_MN, readings))
    last: dict[str, datetime] = {}
    prev_ts = prev_mn = None
    for r in readings:
        ts, mn = r.ts, r.mn
        if ts is prev_ts and mn is prev_mn:
            continue
        prev_ts, prev_mn = ts, mn
        seen = last.get(mn)
        if seen is None or ts > seen:
            last[mn] = ts
    return last, counts


def _move(cur: psycopg.Cursor, on_conflict: str, rollups: bool) -> int:
    """Move the staged rows into ``readings`` (and the hourly rollup, when this code keeps
    it: it counts exactly the rows inserted); return how many were inserted."""
    insert = f"""INSERT INTO readings ({_COLUMNS}) SELECT {_COLUMNS} FROM readings_stage
                 {on_conflict}"""
    if not rollups:
        cur.execute(insert.encode())
        return cur.rowcount
    cur.execute(
        f"""WITH new AS ({insert} RETURNING ts, mn, pollutant, kind, value, flag),
                         h AS ({UPSERT_HOURLY})
                    SELECT count(*) FROM new""".encode()
    )
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _move_returning(
    cur: psycopg.Cursor, readings: Sequence[Reading], rollups: bool
) -> list[Reading]:
    """Move the staged rows that are new (``ON CONFLICT DO NOTHING``) and return them, as
    stored, in the batch's order and once each (a batch may hold the same reading twice);
    keep the rewrites: staged rows whose stored twin (inserted by this batch too: two
    versions in one batch) has another value or flag, kept as evidence by
    ``store.conflicts``.

    The rare path of a batch with duplicates: the rows come from RETURNING, never from
    ``xmin`` — TimescaleDB refuses system columns other than tableoid on a hypertable with
    compressed chunks, and checking a conflict there may decompress existing rows into
    this very transaction."""
    insert = f"""INSERT INTO readings ({_COLUMNS}) SELECT {_COLUMNS} FROM readings_stage
                 ON CONFLICT DO NOTHING RETURNING ts, mn, pollutant, kind, value, flag"""
    rollup = f", h AS ({UPSERT_HOURLY})" if rollups else ""
    cur.execute(f"WITH new AS ({insert}){rollup} SELECT * FROM new".encode())
    rows = cur.fetchall()
    cur.execute(
        f"""
        WITH matched AS (
            SELECT mn, pollutant, kind, ts, s.value AS s_value, s.flag AS s_flag,
                   s.received_at AS s_received_at, r.value AS r_value, r.flag AS r_flag,
                   r.received_at AS r_received_at
            FROM readings_stage s JOIN readings r USING (mn, pollutant, kind, ts))
        {KEEP_REWRITES}""".encode()
    )
    stored = {(mn, pol, kind, ts): (value, flag) for ts, mn, pol, kind, value, flag in rows}
    return _in_batch_order(readings, stored)


def _in_batch_order(
    readings: Sequence[Reading], stored: dict[tuple[str, str, str, datetime], tuple[float, str]]
) -> list[Reading]:
    new = []
    for r in readings:
        row = stored.pop((r.mn, r.pollutant, r.kind_text, r.ts), None)
        if row is not None:
            new.append(Reading(r.ts, r.mn, r.pollutant, row[0], row[1], r.kind, r.stat))
    return new


def recent_readings(conn: psycopg.Connection, per_series: int, since: datetime) -> list[Reading]:
    """The newest ``per_series`` primary values of every series heard from since ``since``
    (to rebuild the rule engine's state when a rule runner takes the lead). Finding the
    series scans the readings since ``since`` (OFFSITE_RULE_WARM_S, 4 h by default, read
    once per takeover); the values come from the primary key, walked backwards per series."""
    rows = conn.execute(
        """SELECT r.ts, s.mn, s.pollutant, r.value, r.flag, s.kind
           FROM (SELECT DISTINCT mn, pollutant, kind FROM readings
                 WHERE ts >= %s AND kind IN ('rtd', 'min', 'hour', 'day')) s
           CROSS JOIN LATERAL (
               SELECT ts, value, flag FROM readings x
               WHERE x.mn = s.mn AND x.pollutant = s.pollutant AND x.kind = s.kind
               ORDER BY x.ts DESC LIMIT %s) r""",
        (since, per_series),
    ).fetchall()
    return [
        Reading(ts, mn, pol, value, flag, *Reading.split_kind(kind))
        for ts, mn, pol, value, flag, kind in rows
    ]


def day_lag_readings(
    conn: psycopg.Connection,
    pollutants: Sequence[str],
    now: datetime,
    days: int,
    before: timedelta,
    after: timedelta,
) -> list[Reading]:
    """The stored values of these pollutants at the same time of day on each of the last
    ``days`` days, from ``before`` ahead of now's time of day to ``after`` past it: what
    copy-paste's memory holds for the next ``after`` of judging, rebuilt at a takeover.
    Bounded by (``before`` + ``after``) × ``days`` of data per series."""
    if not pollutants or days < 1:
        return []
    starts = [now - timedelta(days=d) - before for d in range(1, days + 1)]
    ends = [now - timedelta(days=d) + after for d in range(1, days + 1)]
    rows = conn.execute(
        """SELECT r.ts, r.mn, r.pollutant, r.value, r.flag, r.kind
           FROM unnest(%s::timestamptz[], %s::timestamptz[]) w (a, b)
           JOIN readings r ON r.ts >= w.a AND r.ts < w.b
           WHERE r.kind IN ('rtd', 'min') AND r.pollutant = ANY(%s)""",
        (starts, ends, list(pollutants)),
    ).fetchall()
    return [
        Reading(ts, mn, pol, value, flag, *Reading.split_kind(kind))
        for ts, mn, pol, value, flag, kind in rows
    ]

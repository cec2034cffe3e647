"""Hourly and daily rollups of readings: kept in step on insert, rebuilt after bulk loads,
read by the API's bucketed series and by anything that needs hourly averages.

``readings_hourly`` (migration 0005) holds, per (mn, pollutant, kind, UTC hour): ``n``,
``total``, ``min_value``, ``max_value`` over every value, and ``n_valid``,
``total_valid`` over values flagged N — enough to answer avg / min / max / count for any
bucket that is a whole number of hours, and the valid-only average the standard's
validity rules are written in. ``readings_daily`` has the same columns per UTC day.

On plain PostgreSQL ``insert_readings`` upserts the hourly table from the rows its
INSERT returned, in the same statement: only rows new to the store count, so a
redelivered message never counts twice, and a rolled-back batch leaves no trace. The
daily rollup is a view summing the hourly rows (migration 0010): a second upsert per
batch cost ingest more than reading 24 rows per day costs a reader. On TimescaleDB both
names are continuous aggregates (the daily one of the hourly one, migration 0011) with
real-time aggregation, and nothing is upserted: rows newer than the materialised part
(the last hour or so) are aggregated when read, and a reading that arrives later than
that counts once a refresh policy has run (every 15 minutes for hours, hourly for days)
or ``rebuild_rollups`` has refreshed its range.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.pq import TransactionStatus

from offsite.store.errors import StoreError

HOUR = 3600
DAY = 86400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# One row per (key, bucket) from the new rows ``new`` (a CTE of inserted readings), added
# to what is there. Sorted so concurrent workers lock rollup rows in one order.
_UPSERT = """
INSERT INTO {table} AS r (mn, pollutant, kind, bucket, n, total, min_value, max_value,
                          n_valid, total_valid)
SELECT mn, pollutant, kind, date_bin(interval '{width}', ts, timestamptz '1970-01-01'),
       count(*), sum(value), min(value), max(value), count(*) FILTER (WHERE flag = 'N'),
       coalesce(sum(value) FILTER (WHERE flag = 'N'), 0)
FROM new GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (mn, pollutant, kind, bucket) DO UPDATE SET
    n = r.n + excluded.n, total = r.total + excluded.total,
    min_value = least(r.min_value, excluded.min_value),
    max_value = greatest(r.max_value, excluded.max_value),
    n_valid = r.n_valid + excluded.n_valid, total_valid = r.total_valid + excluded.total_valid
"""
UPSERT_HOURLY = _UPSERT.format(table="readings_hourly", width="1 hour")

_maintained: weakref.WeakKeyDictionary[psycopg.Connection, bool] = weakref.WeakKeyDictionary()


def rollups_maintained(conn: psycopg.Connection) -> bool:
    """True when the rollups are tables this code keeps (plain PostgreSQL), False when
    they are TimescaleDB continuous aggregates (or absent). Asked once per connection."""
    known = _maintained.get(conn)
    if known is None:
        row = conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = to_regclass('readings_hourly')"
        ).fetchone()
        known = _maintained[conn] = bool(row and row[0] == "r")
    return known


def rollup_table(bucket_s: int, start: datetime, end: datetime) -> str | None:
    """The rollup that answers buckets of ``bucket_s`` seconds over [start, end) exactly
    as raw rows would, or None when only raw rows can.

    Exact means: each bucket is a whole number of rollup buckets, and the range cuts no
    rollup bucket in two (else the rollup would count rows outside the range).
    """
    for table, width in (("readings_daily", DAY), ("readings_hourly", HOUR)):
        if bucket_s % width == 0 and _aligned(start, width) and _aligned(end, width):
            return table
    return None


def _aligned(t: datetime, width_s: int) -> bool:
    delta = t - _EPOCH
    return delta.microseconds == 0 and (delta.days * DAY + delta.seconds) % width_s == 0


def rebuild_rollups(
    conn: psycopg.Connection, start: datetime | None = None, end: datetime | None = None
) -> tuple[int, int]:
    """Bring the rollups over [start, end) (widened to whole UTC days; None: everything)
    up to date with the raw readings — after a bulk COPY that bypassed
    ``insert_readings``; returns (hourly rows, daily rows) in the range.

    Plain PostgreSQL: the hourly table is recomputed inside the caller's transaction (if
    one is open), so a load and its rollups commit together. TimescaleDB: the continuous
    aggregates are refreshed, hourly then daily; TimescaleDB refreshes in transactions of
    its own, so ``conn`` must have none open (commit the load first)."""
    lo = _floor_day(start) if start is not None else datetime(1, 1, 1, tzinfo=UTC)
    hi = _ceil_day(end) if end is not None else datetime(9999, 1, 1, tzinfo=UTC)
    idle = conn.info.transaction_status == TransactionStatus.IDLE  # before asking anything
    if rollups_maintained(conn):
        with conn.transaction():
            return _rebuild_tables(conn, lo, hi)
    if not continuous_aggregates(conn):
        raise StoreError("no rollups here: migrate the database first (offsite db migrate)")
    if not idle:
        raise StoreError(
            "refreshing TimescaleDB's continuous aggregates needs a connection outside any "
            "transaction: commit the load first"
        )
    bounds = (None if start is None else lo, None if end is None else hi)
    if conn.info.transaction_status != TransactionStatus.IDLE:
        conn.commit()  # only the catalogue questions above are in it
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        for view in ("readings_hourly", "readings_daily"):  # the daily sums the hourly
            conn.execute(
                f"CALL refresh_continuous_aggregate('{view}', %s::timestamptz, %s::timestamptz)",
                bounds,
            )
    except psycopg.Error as exc:
        raise StoreError(f"refreshing the continuous aggregates failed: {exc}") from exc
    finally:
        conn.autocommit = autocommit
    counts = [
        conn.execute(
            f"SELECT count(*) FROM {view} WHERE bucket >= %s AND bucket < %s", (lo, hi)
        ).fetchone()
        for view in ("readings_hourly", "readings_daily")
    ]
    if not autocommit:
        conn.commit()  # leave the connection as it came: outside any transaction
    return int(counts[0][0]) if counts[0] else 0, int(counts[1][0]) if counts[1] else 0


def continuous_aggregates(conn: psycopg.Connection) -> bool:
    """True when the rollups are TimescaleDB continuous aggregates."""
    row = conn.execute(
        """SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"""
    ).fetchone()
    if not (row and row[0]):
        return False
    row = conn.execute(
        """SELECT count(*) FROM timescaledb_information.continuous_aggregates
           WHERE view_name IN ('readings_hourly', 'readings_daily')"""
    ).fetchone()
    return bool(row and row[0] == 2)


def _rebuild_tables(conn: psycopg.Connection, lo: datetime, hi: datetime) -> tuple[int, int]:
    conn.execute("DELETE FROM readings_hourly WHERE bucket >= %s AND bucket < %s", (lo, hi))
    hourly = conn.execute(
        """
        INSERT INTO readings_hourly
        SELECT mn, pollutant, kind, date_bin('1 hour', ts, timestamptz '1970-01-01'),
               count(*), sum(value), min(value), max(value),
               count(*) FILTER (WHERE flag = 'N'),
               coalesce(sum(value) FILTER (WHERE flag = 'N'), 0)
        FROM readings WHERE ts >= %s AND ts < %s GROUP BY 1, 2, 3, 4""",
        (lo, hi),
    ).rowcount
    row = conn.execute(
        """SELECT count(*) FROM readings_daily   -- a view of the hourly
                          WHERE bucket >= %s AND bucket < %s""",
        (lo, hi),
    ).fetchone()
    daily = int(row[0]) if row else 0
    return hourly, daily


def _floor_day(t: datetime) -> datetime:
    u = t.astimezone(UTC)
    return datetime(u.year, u.month, u.day, tzinfo=UTC)


def _ceil_day(t: datetime) -> datetime:
    f = _floor_day(t)
    return f if f == t else f + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class HourlyAverage:
    bucket: datetime  # hour start, UTC
    avg: float | None  # mean of the valid (flag N) values; None if there are none
    n_valid: int  # how many valid values (HJ 212 Annex D wants ≥ 45 minutes)
    n: int  # how many values of any flag


def hourly_averages(
    conn: psycopg.Connection,
    mn: str,
    pollutant: str,
    start: datetime,
    end: datetime,
    kind: str = "rtd",
) -> list[HourlyAverage]:
    """Hourly averages of one series from the rollup (never the raw rows) — for rules
    judged on 1-hour averages, as exceedances of flue gas are. Works on both backends."""
    rows = conn.execute(
        """
        SELECT bucket, total_valid / nullif(n_valid, 0), n_valid, n FROM readings_hourly
        WHERE mn = %s AND pollutant = %s AND kind = %s AND bucket >= %s AND bucket < %s
        ORDER BY bucket""",
        (mn, pollutant, kind, start, end),
    ).fetchall()
    return [
        HourlyAverage(b, None if a is None else float(a), int(v), int(n)) for b, a, v, n in rows
    ]

"""Readings: raw rows, time buckets (from the rollups where exact), each pollutant's
latest value and the daily capture counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from offsite.api.capture import DayCount
from offsite.store.rollups import rollup_table


async def readings(
    conn: AsyncConnection,
    mn: str,
    start: datetime,
    end: datetime,
    pollutant: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    sql = """SELECT ts, pollutant, kind, value, flag FROM readings
             WHERE mn = %s AND ts >= %s AND ts < %s"""
    args: list[Any] = [mn, start, end]
    if pollutant is not None:
        sql += " AND pollutant = %s"
        args.append(pollutant)
    async with conn.cursor(row_factory=dict_row, binary=True) as cur:  # up to 10,000 rows
        await cur.execute((sql + " ORDER BY ts, pollutant LIMIT %s").encode(), [*args, limit])
        return await cur.fetchall()


async def buckets(
    conn: AsyncConnection,
    mn: str,
    start: datetime,
    end: datetime,
    pollutant: str | None,
    bucket_s: int,
) -> list[dict[str, Any]]:
    """avg/min/max/count of real-time values per bucket: from the hourly or daily rollup
    when that gives exactly the raw answer (whole hours or days, aligned range), else from
    raw rows. Tests hold both to the same numbers."""
    # date_bin is PostgreSQL ≥ 14's time_bucket; the origin aligns buckets to UTC epochs.
    table = rollup_table(bucket_s, start, end)
    if table is not None:
        sql = f"""SELECT date_bin(make_interval(secs => %s), bucket, timestamptz '1970-01-01')
                        AS bucket, pollutant, sum(total) / sum(n)::float8 AS avg,
                        min(min_value) AS min, max(max_value) AS max, sum(n)::bigint AS count
                 FROM {table}
                 WHERE mn = %s AND bucket >= %s AND bucket < %s AND kind = 'rtd'"""
    else:
        sql = """SELECT date_bin(make_interval(secs => %s), ts, timestamptz '1970-01-01')
                        AS bucket, pollutant, avg(value) AS avg, min(value) AS min,
                        max(value) AS max, count(*) AS count
                 FROM readings WHERE mn = %s AND ts >= %s AND ts < %s AND kind = 'rtd'"""
    args: list[Any] = [bucket_s, mn, start, end]
    if pollutant is not None:
        sql += " AND pollutant = %s"
        args.append(pollutant)
    # Binary results: a device-month is 720 buckets × 8 channels, and decoding 5,760 rows
    # of text took the client about as long as the server took to answer (docs/measured.md)
    async with conn.cursor(row_factory=dict_row, binary=True) as cur:
        # Never prepared: a prepared statement soon runs a generic plan, blind to the
        # range. On TimescaleDB that plan reads the hourly rollup by its bucket-only index
        # and filters every device's rows (a device-month: 38 ms server time instead of
        # 2.5 ms with 6 devices, worse with more; docs/measured.md).
        await cur.execute((sql + " GROUP BY 1, 2 ORDER BY 1, 2").encode(), args, prepare=False)
        return await cur.fetchall()


async def latest_values(conn: AsyncConnection, mn: str, last_ts: datetime) -> list[dict]:
    """The newest real-time value of each pollutant with its flag, looked for in the day
    before the device's last reading (bounded, so it never scans a device's history)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT DISTINCT ON (r.pollutant) r.pollutant, r.ts, r.value, r.flag,
                                    l.limit_value
                             FROM readings r JOIN devices d ON d.mn = r.mn
                             LEFT JOIN point_limits l ON l.point_id = d.point_id
                                                    AND l.pollutant = r.pollutant
                             WHERE r.mn = %s AND r.kind = 'rtd'
                               AND r.ts > %s - interval '1 day' AND r.ts <= %s
                             ORDER BY r.pollutant, r.ts DESC""",
            (mn, last_ts, last_ts),
        )
        return await cur.fetchall()


async def day_counts(
    conn: AsyncConnection, mn: str, start: datetime, end: datetime
) -> list[DayCount]:
    """Distinct real-time reporting timestamps per UTC day, and those with a valid value."""
    cur = await conn.execute(
        """SELECT (date_bin(interval '1 day', ts, timestamptz '1970-01-01')
                   AT TIME ZONE 'UTC')::date,
                  count(DISTINCT ts), count(DISTINCT ts) FILTER (WHERE flag = 'N'), min(ts)
           FROM readings WHERE mn = %s AND kind = 'rtd' AND ts >= %s AND ts < %s
           GROUP BY 1 ORDER BY 1""",
        (mn, start, end),
    )
    return [DayCount(d, int(n), int(v), first) for d, n, v, first in await cur.fetchall()]

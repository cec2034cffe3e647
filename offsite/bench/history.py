"""A large stored history for the query benchmark, generated inside PostgreSQL.

One function, ``generate_history``, fills every table the console's queries read
(readings, alerts); the query benchmark then rebuilds the rollups from them, as after
any bulk load. Rows are produced server-side (``generate_series``) in primary-key order,
device by device, so the index only ever grows at its right edge: tens of millions of
rows in minutes, without shipping them through Python.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from offsite.simulators.devices import PROFILES
from offsite.simulators.scenarios import Fleet

DEVICES_PER_STATEMENT = 25


@dataclass(frozen=True, slots=True)
class History:
    start: datetime
    end: datetime
    readings: int
    alerts: int


def generate_history(
    conn: psycopg.Connection,
    fleet: Fleet,
    days: float,
    end: datetime,
    *,
    interval_s: int = 60,
    out: Callable[[str], None] = print,
) -> History:
    """Minute data (``interval_s``) of every channel of every device of ``fleet`` over
    ``days`` before ``end`` — a daily cycle plus noise around each channel's baseline —
    and exceedance alerts (a few a device a day, the newest ones still open).

    The registry must already be stored. Commits as it goes.
    """
    start = end - timedelta(days=days)
    rows: list[tuple[str, str, float, float]] = []
    for i, d in enumerate(fleet.devices):
        for ch in PROFILES[d.profile.name].channels:
            rows.append((d.mn, ch.code, ch.baseline, (i * 0.37) % (2 * math.pi)))
    t0 = time.perf_counter()
    per = max(1, DEVICES_PER_STATEMENT)
    mns = [d.mn for d in fleet.devices]
    for k in range(0, len(mns), per):
        chunk = set(mns[k : k + per])
        part = [r for r in rows if r[0] in chunk]
        conn.execute(
            """
            INSERT INTO readings (ts, mn, pollutant, kind, value, flag, received_at)
            SELECT t, s.mn, s.code, 'rtd',
                   greatest(0, s.base * (1 + 0.2 * sin(extract(epoch FROM t) / 13750.99
                                                       + s.phase))
                               * (1 + 0.05 * (random() - 0.5))),
                   'N', t + interval '3 seconds'
            FROM unnest(%s::text[], %s::text[], %s::float8[], %s::float8[])
                 AS s (mn, code, base, phase)
            CROSS JOIN generate_series(%s::timestamptz, %s::timestamptz - interval '1 second',
                                       make_interval(secs => %s)) AS t
            ORDER BY s.mn, s.code, t""",
            (
                [r[0] for r in part],
                [r[1] for r in part],
                [r[2] for r in part],
                [r[3] for r in part],
                start,
                end,
                interval_s,
            ),
        )
        conn.commit()
        done = min(k + per, len(mns))
        out(f"  readings: {done}/{len(mns)} devices, {time.perf_counter() - t0:.0f} s")
    alerts = _alerts(conn, fleet, start, end)
    conn.commit()
    conn.execute("ANALYZE readings")
    conn.execute("ANALYZE alerts")
    conn.commit()
    row = conn.execute("SELECT count(*) FROM readings").fetchone()
    return History(start, end, int(row[0]) if row else 0, alerts)


def _alerts(conn: psycopg.Connection, fleet: Fleet, start: datetime, end: datetime) -> int:
    """Per device an exceedance of its limited pollutant every 8 hours, resolved or
    cleared, except the newest, which is still open or acknowledged (one active alert
    per rule, device and pollutant, as the engine keeps it)."""
    limited = [
        (d.mn, d.profile.fault_pollutant, float(d.profile.limits[d.profile.fault_pollutant]))
        for d in fleet.devices
    ]
    cur = conn.execute(
        """
        INSERT INTO alerts (rule, mn, pollutant, severity, state, first_seen, last_seen,
                            count, worst_value, limit_value, message, opened_at, updated_at)
        SELECT 'exceedance', s.mn, s.code,
               CASE WHEN n %% 5 = 0 THEN 'critical' ELSE 'major' END,
               CASE WHEN t < %s::timestamptz - interval '1 day'
                    THEN (CASE WHEN n %% 2 = 0 THEN 'resolved' ELSE 'cleared' END)
                    ELSE (CASE WHEN n %% 3 = 0 THEN 'acknowledged' ELSE 'open' END) END,
               t, t + interval '20 minutes', 3, s.lim * 1.4, s.lim,
               s.code || ' above its permit limit', t, t + interval '20 minutes'
        FROM unnest(%s::text[], %s::text[], %s::float8[]) AS s (mn, code, lim)
        CROSS JOIN LATERAL (
            SELECT t, row_number() OVER () AS n
            FROM generate_series(%s::timestamptz + (hashtext(s.mn) & 255) * interval '1 minute',
                                 %s::timestamptz, interval '8 hours') AS t) g
        -- one active alert per (rule, device, pollutant): only the newest stays active
        WHERE t < %s::timestamptz - interval '1 day'
           OR t = (SELECT max(x) FROM generate_series(
                       %s::timestamptz + (hashtext(s.mn) & 255) * interval '1 minute',
                       %s::timestamptz, interval '8 hours') AS x)""",
        (
            end,
            [m for m, _, _ in limited],
            [c for _, c, _ in limited],
            [v for _, _, v in limited],
            start,
            end,
            end,
            start,
            end,
        ),
    )
    return cur.rowcount

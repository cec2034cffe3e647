"""What a monthly report costs: from the rollups (as the API does) and, for comparison,
the exceedance hours computed from raw readings.

    python -m offsite.bench.loop_report [--devices 10] [--days 30] [--json]

Uses OFFSITE_DATABASE_URL's server (default: the local test server) and a scratch
database. Minute readings of SO2 (limited at 35) and O2 per device for ``days`` days of
one month, loaded by COPY and rolled up; then 30 cases, 60 visits and 200 alerts so the
other sections have rows. Prints load figures and the report's latency (best of 5).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

import psycopg

from offsite.api.queries.reports import month_range, monthly_report
from offsite.bench.report import emit
from offsite.core.registry import registry_from_dict
from offsite.store.migrate import migrate
from offsite.store.registry import save_registry
from offsite.store.rollups import rebuild_rollups
from offsite.store.scratch import scratch_database

MONTH = "2026-01"


def _mn(i: int) -> str:
    return f"LOOPB{i:019d}"


def _load(url: str, devices: int, days: int) -> int:
    start, _ = month_range(MONTH)
    reg = registry_from_dict(
        {
            "enterprises": [
                {
                    "id": "EB",
                    "name": "Bench",
                    "points": [
                        {
                            "id": "EB-P",
                            "kind": "flue_gas",
                            "limits": {"a21026": 35.0},
                            "devices": [{"mn": _mn(i), "interval_s": 60} for i in range(devices)],
                        }
                    ],
                }
            ]
        }
    )
    rows = 0
    with psycopg.connect(url) as conn:
        migrate(conn)
        save_registry(conn, reg)
        with conn.cursor().copy(
            "COPY readings (ts, mn, pollutant, kind, value, flag, received_at) FROM STDIN"
        ) as cp:
            for minute in range(days * 24 * 60):
                ts = start + timedelta(minutes=minute)
                for d in range(devices):
                    so2 = 20.0 + (minute // 60 * 7 + d) % 25  # some hours over 35
                    flag = "N" if (minute + d) % 40 else "M"
                    cp.write_row((ts, _mn(d), "a21026", "rtd", so2, flag, ts))
                    cp.write_row((ts, _mn(d), "a19001", "rtd", 8.0, "N", ts))
                    rows += 2
        conn.commit()  # TimescaleDB refreshes its continuous aggregates in its own transactions
        rebuild_rollups(conn)
        for i in range(200):
            conn.execute(
                """INSERT INTO alerts (rule, mn, pollutant, severity, state,
                                first_seen, last_seen, message)
                            VALUES (%s, %s, %s, 'major', 'cleared', %s, %s, 'bench')""",
                (
                    ("exceedance", "flatline", "spike")[i % 3],
                    _mn(i % devices),
                    f"p{i}",
                    start + timedelta(hours=i),
                    start + timedelta(hours=i),
                ),
            )
        for i in range(30):
            conn.execute(
                """INSERT INTO cases (enterprise_id, title, opened_by, opened_at,
                                state, closed_at) VALUES ('EB', 'bench', 'bench', %s,
                                'closed', %s)""",
                (start + timedelta(days=i % days), start + timedelta(days=i % days, hours=5)),
            )
        for i in range(60):
            conn.execute(
                """INSERT INTO visits (enterprise_id, inspector_id, purpose,
                                token_kid, checked_in_at, rating)
                            VALUES ('EB', 'insp', 'bench', 'k1', %s, %s)""",
                (start + timedelta(hours=i * 5), 1 + i % 5),
            )
        conn.commit()
        conn.execute("ANALYZE")  # as autovacuum would after a bulk load; plans need it
    return rows


async def _time_report(url: str) -> tuple[float, dict]:
    best, report = float("inf"), {}
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for _ in range(5):
            t0 = time.perf_counter()
            report = await monthly_report(conn, "EB", MONTH, datetime(2026, 2, 1, tzinfo=UTC))
            best = min(best, time.perf_counter() - t0)
    return best, report


def _time_naive(url: str) -> tuple[float, int]:
    start, end = month_range(MONTH)
    with psycopg.connect(url) as conn:
        t0 = time.perf_counter()
        row = conn.execute(
            """
            SELECT count(*) FROM (
                SELECT mn, date_trunc('hour', ts) h, avg(value) a, count(*) n FROM readings
                WHERE pollutant = 'a21026' AND kind = 'rtd' AND flag = 'N'
                  AND ts >= %s AND ts < %s GROUP BY 1, 2) x
            WHERE n >= 45 AND a > 35""",
            (start, end),
        ).fetchone()
        return time.perf_counter() - t0, int(row[0]) if row else 0


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--devices", type=int, default=10)
    p.add_argument("--days", type=int, default=30, choices=range(1, 32), metavar="1..31")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    admin = os.environ.get("OFFSITE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    with scratch_database(admin, "offsite_bench_loop") as url:
        t0 = time.perf_counter()
        rows = _load(url, a.devices, a.days)
        load_s = time.perf_counter() - t0
        report_s, report = asyncio.run(_time_report(url))
        naive_s, naive_hours = _time_naive(url)
    over = sum(report["summary"]["hours_over_limit"].values())
    if over != naive_hours:
        raise SystemExit(f"report says {over} hours over the limit, raw readings {naive_hours}")
    emit(
        {
            "devices": a.devices,
            "days": a.days,
            "raw_readings": rows,
            "load_and_rollup_s": round(load_s, 2),
            "report_ms (rollups, best of 5)": round(report_s * 1000, 1),
            "exceedance_hours_from_raw_ms": round(naive_s * 1000, 1),
            "hours_over_limit": over,
            "cases": len(report["cases"]),
            "visits": len(report["visits"]),
        },
        a.json,
    )


if __name__ == "__main__":
    main()

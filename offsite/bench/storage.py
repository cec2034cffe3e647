"""What partitions and rollups cost and save, on a scratch database.

    python -m offsite.bench.storage [--devices 100] [--hours 48] [--batch 5000] [--json]

Uses OFFSITE_DATABASE_URL's server (default: the local test server). Prints:
  - insert rate through ``insert_readings`` with rollups kept in the same statement, and
    without (the same data into a second scratch database whose rollup tables are gone),
    so the rollups' cost on ingest is one ratio;
  - ``rebuild_rollups`` over everything (rows/s of raw data), as after a bulk COPY;
  - ``maintain`` moving a month of rows out of the DEFAULT partition;
  - a device's hourly buckets over the whole span from the rollup and from raw rows.
Minute readings of 8 pollutants per device, all in one UTC month.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg

from offsite.bench.report import emit
from offsite.core.readings import Reading
from offsite.core.registry import Registry, registry_from_dict
from offsite.store.migrate import migrate
from offsite.store.partitions import maintain
from offsite.store.readings import insert_readings
from offsite.store.registry import save_registry
from offsite.store.rollups import rebuild_rollups
from offsite.store.scratch import scratch_database

POLLUTANTS = ("a21026", "a21002", "a34013", "a19001", "a01011", "a01012", "a01013", "a01014")
START = datetime(2026, 1, 1, tzinfo=UTC)


def mn_of(i: int) -> str:
    return f"BENCH{i:019d}"


def _readings(devices: int, hours: int) -> Iterator[Reading]:
    for minute in range(hours * 60):
        ts = START + timedelta(minutes=minute)
        for d in range(devices):
            for k, pol in enumerate(POLLUTANTS):
                yield Reading(
                    ts,
                    mn_of(d),
                    pol,
                    float((minute * 7 + d * 13 + k) % 97),
                    "N" if (minute + d) % 50 else "M",
                )


def bench_registry(devices: int) -> Registry:
    """One enterprise, one flue-gas point, ``devices`` minute devices with no limits."""
    return registry_from_dict(
        {
            "enterprises": [
                {
                    "id": "EB",
                    "name": "Bench",
                    "points": [
                        {
                            "id": "EB-P",
                            "kind": "flue_gas",
                            "limits": {},
                            "devices": [{"mn": mn_of(i), "interval_s": 60} for i in range(devices)],
                        }
                    ],
                }
            ]
        }
    )


def _prepare(url: str, devices: int, keep_rollups: bool) -> None:
    reg = bench_registry(devices)
    with psycopg.connect(url) as conn:
        migrate(conn)
        save_registry(conn, reg)
        if not keep_rollups:
            conn.execute("DROP VIEW readings_daily")
            conn.execute("DROP TABLE readings_hourly")


def _load(url: str, devices: int, hours: int, batch: int) -> tuple[int, float]:
    rows: list[Reading] = []
    n, t0 = 0, time.perf_counter()
    with psycopg.connect(url) as conn:
        for r in _readings(devices, hours):
            rows.append(r)
            if len(rows) == batch:
                with conn.transaction():
                    n += len(insert_readings(conn, rows, [r.ts for r in rows]))
                rows = []
        if rows:
            with conn.transaction():
                n += len(insert_readings(conn, rows, [r.ts for r in rows]))
    return n, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=100)
    p.add_argument("--hours", type=int, default=48)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    admin = os.environ.get("OFFSITE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    out: dict[str, object] = {"readings": a.devices * a.hours * 60 * len(POLLUTANTS)}

    with scratch_database(admin, "offsite_bench_plain") as plain:
        _prepare(plain, a.devices, keep_rollups=False)
        n, s = _load(plain, a.devices, a.hours, a.batch)
        out["insert_no_rollups_rows_per_s"] = round(n / s)

    with scratch_database(admin, "offsite_bench_rollups") as url:
        _prepare(url, a.devices, keep_rollups=True)
        n, s = _load(url, a.devices, a.hours, a.batch)
        out["insert_with_rollups_rows_per_s"] = round(n / s)
        out["rollup_cost_on_insert"] = f"{out['insert_no_rollups_rows_per_s'] / (n / s):.2f}x time"  # type: ignore[operator]
        with psycopg.connect(url) as conn:
            t0 = time.perf_counter()
            with conn.transaction():
                hourly, daily = rebuild_rollups(conn)
            out["rebuild_rollups_raw_rows_per_s"] = round(n / (time.perf_counter() - t0))
            out["hourly_rows"], out["daily_rows"] = hourly, daily
            span = (START, START + timedelta(hours=a.hours))
            for label, q in (
                (
                    "bucket_query_rollup_ms",
                    """
                    SELECT bucket, pollutant, sum(total) / sum(n), min(min_value),
                           max(max_value), sum(n) FROM readings_hourly
                    WHERE mn = %s AND kind = 'rtd' AND bucket >= %s AND bucket < %s
                    GROUP BY 1, 2""",
                ),
                (
                    "bucket_query_raw_ms",
                    """
                    SELECT date_bin('1 hour', ts, timestamptz 'epoch'), pollutant,
                           avg(value), min(value), max(value), count(*) FROM readings
                    WHERE mn = %s AND kind = 'rtd' AND ts >= %s AND ts < %s
                    GROUP BY 1, 2""",
                ),
            ):
                conn.execute(q.encode(), (mn_of(0), *span)).fetchall()  # warm the cache
                t0 = time.perf_counter()
                for _ in range(5):
                    conn.execute(q.encode(), (mn_of(1), *span)).fetchall()
                out[label] = round((time.perf_counter() - t0) / 5 * 1000, 2)
        # every row so far sits in DEFAULT (no month was made): time moving them out
        with psycopg.connect(url, autocommit=True) as conn:
            t0 = time.perf_counter()
            r = maintain(conn, START, months_ahead=0, retention=None)
            out["maintain_moved_rows"] = r.moved_rows
            out["maintain_move_rows_per_s"] = round(r.moved_rows / (time.perf_counter() - t0))
    emit(out, a.json)


if __name__ == "__main__":
    main()

"""``offsite bench query``: the console's typical queries over a large stored history.

The history (``bench.history.generate_history``: by default 1,000 devices × their 4 or 8
pollutants × 6 days of minute data ≈ 58M readings) lives in a database of its own that
is kept between runs — generating it takes minutes — and regenerated when its shape
differs or with ``--fresh``. Each query runs through the API's own query functions
(``api.queries``), with parameters drawn at random, and is timed end to end (round
trip, rows fetched): p50 and p95.

- device-day: hourly avg/min/max of every pollutant of one device over one day
  (``GET /api/devices/{mn}/readings?bucket=3600``);
- open alerts: the console's feed list, newest first (``GET /api/alerts?state=open&
  state=acknowledged``);
- enterprise month: an enterprise's exceedance alerts of a month — there is no count
  endpoint, so the console lists them (``GET /api/alerts?enterprise=&rule=exceedance&
  since=&until=``) and counts the rows.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from offsite.api import queries
from offsite.bench.harness import percentile
from offsite.bench.history import generate_history
from offsite.rules.alerts import ACTIVE_STATES, AlertState
from offsite.simulators.scenarios import build_fleet
from offsite.store.migrate import migrate
from offsite.store.registry import save_registry
from offsite.store.rollups import continuous_aggregates, rebuild_rollups, rollups_maintained
from offsite.store.scratch import with_database

DB_NAME = "offsite_bench_history"


@dataclass(frozen=True, slots=True)
class QueryBenchArgs:
    devices: int = 1000
    days: float = 6.0
    repeats: int = 40
    fresh: bool = False
    seed: int = 1


def run_query_bench(
    args: QueryBenchArgs, admin_url: str, out: Callable[[str], None] = print
) -> dict[str, object]:
    end = datetime(2026, 11, 1, tzinfo=UTC)  # fixed: the same history whenever generated
    fleet = build_fleet(
        args.devices, seed=args.seed, start=end - timedelta(days=args.days), rate_s=60.0, faults=()
    )
    shape = f"devices={args.devices} days={args.days:g} seed={args.seed} end={end.isoformat()}"
    db = with_database(admin_url, DB_NAME)
    gen_s = _ensure_history(admin_url, db, fleet, args, end, shape, out)
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
        n_readings = int(row[0]) if row else 0
        row = conn.execute("""SELECT coalesce(sum(pg_total_relation_size(relid)), 0)
                              FROM pg_partition_tree('readings')""").fetchone()
        size_gb = round(int(row[0]) / 1e9, 2) if row else 0.0
    timings = asyncio.run(_time_queries(db, fleet, end, args))
    result: dict[str, object] = {
        "readings": n_readings,
        "readings_table_gb": size_gb,
        "devices": args.devices,
        "days": args.days,
        "generated_s": gen_s,
        "repeats": args.repeats,
    }
    for name, (ms, rows) in timings.items():
        ms.sort()
        result[f"{name}_p50_ms"] = round(percentile(ms, 50), 1)
        result[f"{name}_p95_ms"] = round(percentile(ms, 95), 1)
        result[f"{name}_rows"] = rows
    return result


def _ensure_history(
    admin_url: str,
    db: str,
    fleet: Any,
    args: QueryBenchArgs,
    end: datetime,
    shape: str,
    out: Callable[[str], None],
) -> float | None:
    """Reuse the kept history when it has this shape; else (re)generate it. Returns the
    generation time in seconds, or None when reused."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
            is not None
        )
    if exists and not args.fresh:
        with psycopg.connect(db) as conn:
            try:
                row = conn.execute("SELECT shape FROM bench_history").fetchone()
            except psycopg.errors.UndefinedTable:
                row = None
        if row is not None and row[0] == shape:
            out(f"reusing the stored history in {DB_NAME} ({shape})")
            with psycopg.connect(db) as conn:
                _ensure_rollups(conn, out)
            return None
    out(f"generating the history in {DB_NAME} ({shape}) …")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    t0 = time.perf_counter()
    with psycopg.connect(db) as conn:
        migrate(conn)
        save_registry(conn, fleet.registry)
        h = generate_history(conn, fleet, args.days, end, out=out)
        _ensure_rollups(conn, out)
        # written last: a history cut short by Ctrl-C is regenerated next time
        conn.execute("CREATE TABLE bench_history (shape text NOT NULL)")
        conn.execute("INSERT INTO bench_history VALUES (%s)", (shape,))
        conn.commit()
    took = round(time.perf_counter() - t0, 1)
    out(f"  {h.readings} readings, {h.alerts} alerts in {took} s")
    return took


def _ensure_rollups(conn: psycopg.Connection, out: Callable[[str], None]) -> None:
    """The history is written in bulk, past ``insert_readings``: the rollups are then
    brought up to date from it, as after any bulk load (plain PostgreSQL: the hourly table
    rebuilt; TimescaleDB: the continuous aggregates refreshed, else they would aggregate
    raw rows on every read), so the console's queries take their production path."""
    if rollups_maintained(conn):
        if conn.execute("SELECT 1 FROM readings_hourly LIMIT 1").fetchone() is not None:
            return
    elif not continuous_aggregates(conn):
        return
    conn.commit()
    out("  bringing the rollups up to date from the stored readings …")
    t0 = time.perf_counter()
    hourly, daily = rebuild_rollups(conn)
    conn.commit()
    out(f"  {hourly} hourly, {daily} daily rollup rows in {time.perf_counter() - t0:.0f} s")


async def _time_queries(
    db: str, fleet: Any, end: datetime, args: QueryBenchArgs
) -> dict[str, tuple[list[float], int]]:
    rng = random.Random(args.seed)
    mns = [d.mn for d in fleet.devices]
    enterprises = [e.id for e in fleet.registry.enterprises]
    days = max(1, int(args.days))

    def device_day() -> Callable[[Any], Awaitable[list[dict[str, Any]]]]:
        day = end - timedelta(days=rng.randrange(1, days + 1))
        mn = rng.choice(mns)
        return lambda c: queries.readings.buckets(c, mn, day, day + timedelta(days=1), None, 3600)

    def device_day_raw() -> Callable[[Any], Awaitable[list[dict[str, Any]]]]:
        # the same view over a day that does not start on the hour: no rollup can
        # answer it exactly, so raw rows do (as without rollups at all)
        day = end - timedelta(days=rng.randrange(1, days + 1)) + timedelta(minutes=1)
        mn = rng.choice(mns)
        return lambda c: queries.readings.buckets(c, mn, day, day + timedelta(days=1), None, 3600)

    def open_alerts() -> Callable[[Any], Awaitable[list[dict[str, Any]]]]:
        return lambda c: queries.alerts.list_alerts(
            c,
            states=[s.value for s in AlertState if s in ACTIVE_STATES],
            severity=None,
            enterprise=None,
            mn=None,
            rule=None,
            since=None,
            until=None,
            limit=100,
            offset=0,
        )

    def enterprise_month() -> Callable[[Any], Awaitable[list[dict[str, Any]]]]:
        e = rng.choice(enterprises)
        month_end = end
        return lambda c: queries.alerts.list_alerts(
            c,
            states=None,
            severity=None,
            enterprise=e,
            mn=None,
            rule="exceedance",
            since=month_end - timedelta(days=30),
            until=month_end,
            limit=10_000,
            offset=0,
        )

    cases: dict[str, Callable[[], Callable[[Any], Awaitable[list[dict[str, Any]]]]]] = {
        "device_day_hourly": device_day,
        "device_day_hourly_raw": device_day_raw,
        "open_alerts": open_alerts,
        "enterprise_month_exceedances": enterprise_month,
    }
    results: dict[str, tuple[list[float], int]] = {}
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        for name, make in cases.items():
            await make()(conn)  # warm the connection and plan cache
            ms: list[float] = []
            rows = 0
            for _ in range(args.repeats):
                q = make()
                t0 = time.perf_counter()
                got = await q(conn)
                ms.append((time.perf_counter() - t0) * 1000)
                rows = len(got)
                if not got:  # an empty answer times nothing: the history is not what we think
                    raise RuntimeError(f"{name}: the query returned no rows")
            results[name] = (ms, rows)
    return results

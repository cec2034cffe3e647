"""``offsite bench query``: the console's typical queries over a large stored history.

The history (``bench.history.generate_history``: by default 1,000 devices × their 4 or 8
pollutants × 6 days of minute data ≈ 58M readings; ``--devices 180 --days 31`` ≈ 54M
with a whole month) lives in a database of its own on ``OFFSITE_DATABASE_URL``'s server
(plain PostgreSQL or TimescaleDB: the same name on either) that is kept between runs —
generating it takes minutes — and regenerated when its shape differs or with ``--fresh``.
Plain PostgreSQL gets the history's monthly partitions before it arrives, as ``offsite db
maintain`` makes them ahead; on TimescaleDB the database's policies are paused, so no
refresh or compression runs by itself in the middle of a measurement. Each query runs
through the API's own query functions (``api.queries``), with parameters drawn at random
(the same draws in every pass), and is timed end to end (round trip, rows fetched): p50
and p95.

- device-day: hourly avg/min/max of every pollutant of one device over one day
  (``GET /api/devices/{mn}/readings?bucket=3600``);
- device-month: the same over 30 days from a whole hour, 720 hourly buckets (the console's
  30-day chart); when the history is shorter, over all of it;
- open alerts: the console's feed list, newest first (``GET /api/alerts?state=open&
  state=acknowledged``);
- enterprise month: an enterprise's exceedance alerts of a month — there is no count
  endpoint, so the console lists them (``GET /api/alerts?enterprise=&rule=exceedance&
  since=&until=``) and counts the rows.

``--compress`` (TimescaleDB): then runs the database's own compression policy (migration
0005: segment by device and pollutant, every chunk older than 7 days, which is all of
this history), prints the readings hypertable's size before and after, and times the
device-day and device-month reads again.
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
from offsite.store.migrate import migrate, timescale_active
from offsite.store.partitions import maintain
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
    compress: bool = False
    database: str = DB_NAME  # the kept history's database (tests use one of their own)


class NotTimescale(ValueError):
    """``--compress`` asked of a server without TimescaleDB."""


MONTH = timedelta(days=30)
# the reads compression can change: every other one reads alerts, never compressed
READINGS_CASES = ("device_day_hourly", "device_day_hourly_raw", "device_month_hourly")


def month_starts(start: datetime, end: datetime) -> list[datetime]:
    """Every whole hour at which a 30-day window inside [start, end) can begin (the
    console's month chart is aligned to hours); when the history is shorter than 30 days,
    its first whole hour alone."""
    first = start.replace(minute=0, second=0, microsecond=0)
    if first < start:
        first += timedelta(hours=1)
    last = end - MONTH
    if last < first:
        return [first]
    return [first + timedelta(hours=h) for h in range(int((last - first) / timedelta(hours=1)) + 1)]


def run_query_bench(
    args: QueryBenchArgs, admin_url: str, out: Callable[[str], None] = print
) -> dict[str, object]:
    end = datetime(2026, 11, 1, tzinfo=UTC)  # fixed: the same history whenever generated
    fleet = build_fleet(
        args.devices, seed=args.seed, start=end - timedelta(days=args.days), rate_s=60.0, faults=()
    )
    shape = f"devices={args.devices} days={args.days:g} seed={args.seed} end={end.isoformat()}"
    db = with_database(admin_url, args.database)
    if args.compress and not _preloads_timescale(admin_url):  # before minutes of generating
        raise NotTimescale("--compress needs TimescaleDB: plain PostgreSQL compresses nothing")
    gen_s = _ensure_history(admin_url, db, fleet, args, end, shape, out)
    with psycopg.connect(db) as conn:
        timescale = timescale_active(conn)
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
        n_readings = int(row[0]) if row else 0
        size = readings_size(conn, timescale)
        chunks = _chunks(conn) if timescale else None
    result: dict[str, object] = {
        "backend": "timescaledb" if timescale else "plain",
        "readings": n_readings,
        "readings_table_gb": round(size / 1e9, 3),
        "devices": args.devices,
        "days": args.days,
        "generated_s": gen_s,
        "repeats": args.repeats,
    }
    if chunks is not None:  # a reused history may have been compressed by an earlier run
        result["chunks_compressed"] = f"{chunks[0]} of {chunks[1]}"
    out("timing the queries …")
    _summarise(result, asyncio.run(_time_queries(db, fleet, end, args)), "")
    if not args.compress:
        return result
    out("running the compression policy …")
    t0 = time.perf_counter()
    with psycopg.connect(db, autocommit=True) as conn:
        compress_readings(conn)
        result["compress_s"] = round(time.perf_counter() - t0, 1)
        conn.execute("ANALYZE readings")
        after = readings_size(conn, timescale=True)
        chunks = _chunks(conn)
        stats = conn.execute("""SELECT sum(before_compression_total_bytes)::bigint,
                                       sum(after_compression_total_bytes)::bigint
                                FROM hypertable_compression_stats('readings')""").fetchone()
    result["chunks_compressed_after"] = f"{chunks[0]} of {chunks[1]}"
    result["compressed_table_gb"] = round(after / 1e9, 3)
    result["compression_ratio"] = round(size / max(after, 1), 1)
    if stats and stats[0] is not None:
        result["compressed_chunks_before_gb"] = round(int(stats[0]) / 1e9, 3)
        result["compressed_chunks_after_gb"] = round(int(stats[1]) / 1e9, 3)
    out("timing the readings queries on compressed chunks …")
    timings = asyncio.run(_time_queries(db, fleet, end, args, only=READINGS_CASES))
    _summarise(result, timings, "_compressed")
    return result


def _preloads_timescale(admin_url: str) -> bool:
    """True when the server preloads TimescaleDB (a database migrated there gets the
    hypertable), as the test suite tells the backends apart."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            """SELECT current_setting('shared_preload_libraries', true) LIKE '%timescaledb%'
                      AND EXISTS (SELECT 1 FROM pg_available_extensions
                                  WHERE name = 'timescaledb')"""
        ).fetchone()
    return bool(row and row[0])


def _summarise(
    result: dict[str, object], timings: dict[str, tuple[list[float], int]], suffix: str
) -> None:
    for name, (ms, rows) in timings.items():
        ms.sort()
        result[f"{name}{suffix}_p50_ms"] = round(percentile(ms, 50), 1)
        result[f"{name}{suffix}_p95_ms"] = round(percentile(ms, 95), 1)
        result[f"{name}{suffix}_rows"] = rows


def readings_size(conn: psycopg.Connection, timescale: bool) -> int:
    """Bytes of the readings table with its indexes: every chunk of the hypertable
    (compressed ones as stored), or every partition."""
    if timescale:
        row = conn.execute("SELECT hypertable_size('readings')").fetchone()
    else:
        row = conn.execute(
            """SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('readings')
               WHERE isleaf"""
        ).fetchone()
    return int(row[0]) if row and row[0] else 0


def _chunks(conn: psycopg.Connection) -> tuple[int, int]:
    row = conn.execute(
        """SELECT count(*) FILTER (WHERE is_compressed), count(*)
           FROM timescaledb_information.chunks WHERE hypertable_name = 'readings'"""
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def compress_readings(conn: psycopg.Connection) -> None:
    """Run the readings hypertable's own compression policy now (the job the scheduler
    would run, with its settings), paused or not."""
    job = conn.execute(
        """SELECT job_id FROM timescaledb_information.jobs
           WHERE proc_name = 'policy_compression' AND hypertable_name = 'readings'"""
    ).fetchone()
    if job is None:
        raise RuntimeError("the readings hypertable has no compression policy: migrate first")
    conn.execute("CALL run_job(%s)", (job[0],))


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
            conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (args.database,)
            ).fetchone()
            is not None
        )
    if exists and not args.fresh:
        with psycopg.connect(db) as conn:
            try:
                row = conn.execute("SELECT shape FROM bench_history").fetchone()
            except psycopg.errors.UndefinedTable:
                row = None
        if row is not None and row[0] == shape:
            out(f"reusing the stored history in {args.database} ({shape})")
            with psycopg.connect(db) as conn:
                _ensure_rollups(conn, out)
            return None
    out(f"generating the history in {args.database} ({shape}) …")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.database))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.database)))
    t0 = time.perf_counter()
    with psycopg.connect(db) as conn:
        with conn.transaction():  # policies paused before TimescaleDB's scheduler sees them
            migrate(conn)
            if timescale_active(conn):
                conn.execute(
                    "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
                )
        if not timescale_active(conn):  # the months exist before the rows arrive
            conn.commit()
            conn.autocommit = True
            maintain(
                conn,
                end - timedelta(days=args.days),
                months_ahead=int(args.days) // 28 + 2,
                retention=None,
            )
            conn.autocommit = False
        save_registry(conn, fleet.registry)
        h = generate_history(conn, fleet, args.days, end, out=out)
        _ensure_rollups(conn, out)
        conn.commit()
        _settle(conn, out)
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


def _settle(conn: psycopg.Connection, out: Callable[[str], None]) -> None:
    """VACUUM (ANALYZE) what the reads touch: the readings and the hourly rollup's storage.
    A bulk-loaded table is otherwise read in a state no production table stays in (hint
    bits set by the first reader, no statistics on the rollup), and autovacuum may be off
    on the server (it is on the test server at 5432) or not yet done with it."""
    t0 = time.perf_counter()
    out("  VACUUM (ANALYZE) of the readings and the hourly rollup …")
    tables = ["readings", "readings_hourly"]
    if continuous_aggregates(conn):  # the aggregate's own hypertable: a view is not vacuumed
        row = conn.execute(
            """SELECT format('%I.%I', materialization_hypertable_schema,
                             materialization_hypertable_name)
               FROM timescaledb_information.continuous_aggregates
               WHERE view_name = 'readings_hourly'"""
        ).fetchone()
        tables[1] = str(row[0]) if row else tables[1]
    conn.commit()
    autocommit = conn.autocommit
    conn.autocommit = True  # VACUUM runs outside any transaction
    try:
        for t in tables:
            conn.execute(f"VACUUM (ANALYZE) {t}".encode())
    finally:
        conn.autocommit = autocommit
    out(f"  vacuumed in {time.perf_counter() - t0:.0f} s")


async def _time_queries(
    db: str, fleet: Any, end: datetime, args: QueryBenchArgs, only: tuple[str, ...] = ()
) -> dict[str, tuple[list[float], int]]:
    """Each case (those in ``only``, else all) warmed once then timed ``repeats`` times;
    each case draws from a generator of its own, so every pass reads the same devices
    and days."""
    rng = random.Random()
    mns = [d.mn for d in fleet.devices]
    enterprises = [e.id for e in fleet.registry.enterprises]
    days = max(1, int(args.days))
    months = month_starts(end - timedelta(days=args.days), end)

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

    def device_month() -> Callable[[Any], Awaitable[list[dict[str, Any]]]]:
        first = rng.choice(months)
        last = min(end, first + MONTH)
        mn = rng.choice(mns)
        return lambda c: queries.readings.buckets(c, mn, first, last, None, 3600)

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
        "device_month_hourly": device_month,
        "open_alerts": open_alerts,
        "enterprise_month_exceedances": enterprise_month,
    }
    results: dict[str, tuple[list[float], int]] = {}
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        for name, make in cases.items():
            if only and name not in only:
                continue
            rng.seed(f"{args.seed}/{name}")
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

"""Storage on both backends, side by side: plain PostgreSQL (monthly partitions, rollup
tables kept by ingest) against TimescaleDB (hypertable, continuous aggregates, compression).

    offsite bench storage [--backend both|plain|timescaledb] [--devices 12] [--days 30]
                          [--plain-url URL] [--timescale-url URL] [--json]

For each backend, in a scratch database of its server:
  1. ingest rate: the first ``--ingest-rows`` readings through ``insert_readings`` (the
     store path of ingest: staging COPY, INSERT, rollups where the code keeps them), in
     batches of ``--batch``;
  2. the rest of ``--days`` of minute data for ``--devices`` devices × 8 pollutants,
     generated inside the server one day per transaction (values at 0.01 resolution
     around a daily cycle, as analysers report), then the rollups brought up to date;
  3. query latency (median and p95 over ``--repeats`` runs, random devices and days):
     a device-day of raw readings, a device-month of hourly buckets from raw rows, and the
     same month from the hourly rollup;
  4. TimescaleDB only: its compression policy run (every chunk of the history is older
     than compress_after), the size before and after, the same queries again, and late
     readings stored into the compressed chunks.
``--devices 145 --days 30`` is 50.1M readings per backend.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from offsite.bench.query import readings_size
from offsite.bench.storage import bench_registry, mn_of
from offsite.core.readings import Reading
from offsite.store.migrate import migrate, timescale_active
from offsite.store.partitions import maintain
from offsite.store.readings import insert_readings
from offsite.store.registry import save_registry
from offsite.store.rollups import rebuild_rollups
from offsite.store.scratch import scratch_database

POLLUTANTS = ("a21026", "a21002", "a34013", "a19001", "a01011", "a01012", "a01013", "a01014")
DEFAULT_PLAIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_TIMESCALE = "postgresql://postgres@127.0.0.1:5433/postgres"

# One device's day of raw rows, as the console's raw chart and the CSV export read it.
DEVICE_DAY = """SELECT ts, pollutant, value, flag FROM readings
                WHERE mn = %s AND ts >= %s AND ts < %s"""
# A device's month in hourly buckets from raw rows (the API's path for unaligned ranges).
DEVICE_MONTH_RAW = """
    SELECT date_bin('1 hour', ts, timestamptz 'epoch'), pollutant, avg(value), min(value),
           max(value), count(*)
    FROM readings WHERE mn = %s AND kind = 'rtd' AND ts >= %s AND ts < %s GROUP BY 1, 2"""
# The same month from the hourly rollup (the path aligned ranges take).
DEVICE_MONTH_ROLLUP = """
    SELECT bucket, pollutant, total / n, min_value, max_value, n FROM readings_hourly
    WHERE mn = %s AND kind = 'rtd' AND bucket >= %s AND bucket < %s"""


@dataclass(frozen=True, slots=True)
class StorageBenchArgs:
    devices: int = 12
    days: int = 30
    ingest_rows: int = 200_000
    batch: int = 5000
    repeats: int = 40


def _start(days: int, now: datetime) -> datetime:
    """History that ends eight days ago, so every chunk is older than compress_after."""
    end = (now - timedelta(days=8)).replace(hour=0, minute=0, second=0, microsecond=0)
    return end - timedelta(days=days)


def _stream(devices: int, start: datetime) -> Iterator[Reading]:
    """The ingest part, minute by minute across all devices (as a fleet reports)."""
    rnd = random.Random(7)
    minute = 0
    while True:
        ts = start + timedelta(minutes=minute)
        for d in range(devices):
            for k, pol in enumerate(POLLUTANTS):
                yield Reading(ts, mn_of(d), pol, round(40 + 10 * rnd.random() + k, 2), "N")
        minute += 1


def _prepare(url: str, devices: int, start: datetime, days: int) -> bool:
    reg = bench_registry(devices)
    with psycopg.connect(url) as conn:
        migrate(conn)
        save_registry(conn, reg)
        ts = timescale_active(conn)
        if ts:  # the bench runs each policy itself, when it means to
            conn.execute(
                "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
            )
        conn.commit()
    if not ts:  # the months the history needs, made before it arrives
        with psycopg.connect(url, autocommit=True) as conn:
            maintain(conn, start, months_ahead=days // 28 + 2, retention=None)
    return ts


def _ingest(url: str, a: StorageBenchArgs, start: datetime) -> tuple[int, float, datetime]:
    """Store the first ``ingest_rows`` readings (whole minutes) through insert_readings;
    return rows, seconds and the first minute not stored."""
    n, t0 = 0, time.perf_counter()
    batch: list[Reading] = []
    last_mn, last_pol = mn_of(a.devices - 1), POLLUTANTS[-1]
    with psycopg.connect(url) as conn:

        def flush() -> int:
            with conn.transaction():
                return len(insert_readings(conn, batch, [x.ts for x in batch]))

        for r in _stream(a.devices, start):
            batch.append(r)
            done = n + len(batch) >= a.ingest_rows and r.mn == last_mn and r.pollutant == last_pol
            if len(batch) == a.batch or done:
                n += flush()
                batch = []
            if done:
                return n, time.perf_counter() - t0, r.ts + timedelta(minutes=1)
    raise AssertionError("the stream is endless")


_GENERATE = """
INSERT INTO readings (ts, mn, pollutant, kind, value, flag, received_at)
SELECT t, 'BENCH' || lpad(d::text, 19, '0'), p.code, 'rtd',
       round((40 + 10 * sin(extract(epoch FROM t) / 13751 + d) + 3 * random() + p.k)::numeric,
             2)::float8,
       CASE WHEN (extract(epoch FROM t)::bigint / 60 + d) %% 50 = 0 THEN 'M' ELSE 'N' END, t
FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 minute',
                     interval '1 minute') t,
     generate_series(0, %s - 1) d,
     unnest(%s::text[]) WITH ORDINALITY p (code, k)
"""


def _bulk(url: str, devices: int, lo: datetime, hi: datetime, out: Callable[[str], None]) -> int:
    """The rest of the history, one day per transaction (ordered by time, as it arrives)."""
    n = 0
    with psycopg.connect(url) as conn:
        day = lo
        while day < hi:
            upto = min(hi, (day + timedelta(days=1)).replace(hour=0, minute=0))
            with conn.transaction():
                n += conn.execute(
                    _GENERATE.encode(), (day, upto, devices, list(POLLUTANTS))
                ).rowcount
            day = upto
            out(f"    history to {day:%Y-%m-%d}: {n:,} rows")
    return n


def _timings(
    url: str, a: StorageBenchArgs, start: datetime, days: int
) -> dict[str, dict[str, float]]:
    """Median and p95 (ms) of each query over ``repeats`` runs, random devices and days."""
    rnd = random.Random(11)
    month = min(days, 30)
    out: dict[str, dict[str, float]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        # the month reads are the API's bucket query, which is never prepared
        # (api/queries/readings.py says why); the raw day read is prepared as usual
        for label, q, span, prepare in (
            ("device_day_raw", DEVICE_DAY, 1, None),
            ("device_month_raw", DEVICE_MONTH_RAW, month, False),
            ("device_month_rollup", DEVICE_MONTH_ROLLUP, month, False),
        ):
            times = []
            for i in range(a.repeats + 3):
                d = rnd.randrange(a.devices)
                first = start + timedelta(days=rnd.randrange(max(1, days - span + 1)))
                t0 = time.perf_counter()
                conn.execute(
                    q.encode(), (mn_of(d), first, first + timedelta(days=span)), prepare=prepare
                ).fetchall()
                if i >= 3:  # the first runs warm the cache
                    times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            out[label] = {
                "median_ms": round(statistics.median(times), 2),
                "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 2),
            }
    return out


def bench_backend(
    admin_url: str, a: StorageBenchArgs, out: Callable[[str], None], now: datetime
) -> dict[str, Any]:
    """Everything above on one server; returns the figures."""
    res: dict[str, Any] = {}
    start = _start(a.days, now)
    end = start + timedelta(days=a.days)
    with scratch_database(admin_url, "offsite_bench_storage") as url:
        ts = _prepare(url, a.devices, start, a.days)
        res["backend"] = "timescaledb" if ts else "plain"
        out(f"  {res['backend']}: ingest through insert_readings …")
        n, secs, resume = _ingest(url, a, start)
        res["ingest_rows"] = n
        res["ingest_rows_per_s"] = round(n / secs)
        out(f"    {n:,} rows in {secs:.1f} s")
        out("  generating the rest of the history inside the server …")
        t0 = time.perf_counter()
        bulk = _bulk(url, a.devices, resume, end, out)
        res["history_rows"] = n + bulk
        res["bulk_insert_rows_per_s"] = round(bulk / max(time.perf_counter() - t0, 1e-9))
        with psycopg.connect(url, autocommit=True) as conn:
            t0 = time.perf_counter()
            rebuild_rollups(conn, start, end)
            res["rollups_s"] = round(time.perf_counter() - t0, 1)
            conn.execute("ANALYZE")
            res["size_mib"] = round(readings_size(conn, ts) / 2**20, 1)
        out("  queries …")
        res["queries"] = _timings(url, a, start, a.days)
        if not ts:
            return res
        with psycopg.connect(url, autocommit=True) as conn:
            job = conn.execute(
                "SELECT job_id FROM timescaledb_information.jobs "
                "WHERE proc_name = 'policy_compression'"
            ).fetchone()
            assert job is not None
            out("  compression policy …")
            t0 = time.perf_counter()
            conn.execute("CALL run_job(%s)", (job[0],))
            res["compress_s"] = round(time.perf_counter() - t0, 1)
            c = conn.execute(
                """SELECT count(*) FILTER (WHERE is_compressed), count(*)
                   FROM timescaledb_information.chunks WHERE hypertable_name = 'readings'"""
            ).fetchone()
            res["chunks_compressed"] = f"{c[0]} of {c[1]}" if c else "?"
            conn.execute("ANALYZE")
            res["compressed_size_mib"] = round(readings_size(conn, ts) / 2**20, 1)
            res["compression_ratio"] = round(
                res["size_mib"] / max(res["compressed_size_mib"], 0.1), 1
            )
        out("  queries on compressed chunks …")
        res["queries_compressed"] = _timings(url, a, start, a.days)
        # late readings into compressed chunks: new minutes, and redeliveries of stored ones
        late = [  # at half minutes: none of them stored yet
            Reading(
                start + timedelta(days=i % a.days, minutes=i, seconds=30),
                mn_of(i % a.devices),
                pol,
                1.0,
            )
            for i in range(100)
            for pol in POLLUTANTS[:5]
        ]
        again = list(_first(a.devices, start, 500))
        with psycopg.connect(url) as conn:
            t0 = time.perf_counter()
            with conn.transaction():
                new = insert_readings(conn, late + again, [now] * (len(late) + len(again)))
            secs = time.perf_counter() - t0
        assert len(new) == len(late), (len(new), len(late))
        res["late_into_compressed_rows_per_s"] = round((len(late) + len(again)) / secs)
    return res


def _first(devices: int, start: datetime, n: int) -> Iterator[Reading]:
    for i, r in enumerate(_stream(devices, start)):
        if i >= n:
            return
        yield r


def run_storage_bench(
    a: StorageBenchArgs, urls: dict[str, str], out: Callable[[str], None]
) -> dict[str, Any]:
    """Run on each backend in ``urls`` (name → admin URL), one after the other."""
    now = datetime.now(UTC)
    readings = a.devices * a.days * 1440 * len(POLLUTANTS)
    out(
        f"{a.devices} devices × {len(POLLUTANTS)} pollutants × {a.days} days = "
        f"{readings:,} readings per backend"
    )
    result: dict[str, Any] = {"readings_per_backend": readings}
    for name, url in urls.items():
        result[name] = bench_backend(url, a, out, now)
    return result


def side_by_side(result: dict[str, Any]) -> str:
    """The figures as a table, one column per backend."""
    names = [k for k in ("plain", "timescaledb") if k in result]
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, get: Callable[[dict[str, Any]], object]) -> None:
        vals = []
        for n in names:
            try:
                v = get(result[n])
            except KeyError:
                v = "-"
            vals.append(f"{v:,}" if isinstance(v, int) else str(v))
        rows.append((label, vals))

    add("history rows", lambda r: r["history_rows"])
    add("ingest rows/s (insert_readings)", lambda r: r["ingest_rows_per_s"])
    add("bulk insert rows/s (in server)", lambda r: r["bulk_insert_rows_per_s"])
    add("rollups brought up to date (s)", lambda r: r["rollups_s"])
    add("size (MiB, with indexes)", lambda r: r["size_mib"])
    add("size compressed (MiB)", lambda r: r["compressed_size_mib"])
    add("compression ratio", lambda r: r["compression_ratio"])
    add("compression policy run (s)", lambda r: r["compress_s"])

    def timing(key: str, q: str) -> Callable[[dict[str, Any]], object]:
        return lambda r: "{median_ms} / {p95_ms}".format(**r[key][q])

    for q in ("device_day_raw", "device_month_raw", "device_month_rollup"):
        add(f"{q} median / p95 ms", timing("queries", q))
        add("  … compressed median / p95 ms", timing("queries_compressed", q))
    add("late rows into compressed chunks /s", lambda r: r["late_into_compressed_rows_per_s"])
    w = max(len(label) for label, _ in rows)
    cw = [max(len(n), *(len(v[i]) for _, v in rows)) for i, n in enumerate(names)]
    lines = [f"{'':<{w}}  " + "  ".join(f"{n:>{cw[i]}}" for i, n in enumerate(names))]
    lines += [
        f"{label:<{w}}  " + "  ".join(f"{v:>{cw[i]}}" for i, v in enumerate(vals))
        for label, vals in rows
    ]
    return "\n".join(lines)

"""What ``offsite db status`` reports: schema, backend features, sizes, data span,
partitions, rollups, retention, and compression where TimescaleDB knows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

from offsite.store.migrate import available, current_version, timescale_active
from offsite.store.partitions import DEFAULT_PARTITION, Partition, existing_partitions, partitioned

TABLES = (
    "readings",
    "readings_hourly",
    "readings_daily",
    "packets",
    "dead_letters",
    "alerts",
    "alert_events",
    "visits",
    "devices",
    "device_status",
    "ingest_workers",
)


@dataclass(frozen=True, slots=True)
class Job:
    """One TimescaleDB background job (a policy) and how its last run went."""

    id: int
    kind: str  # "retention", "compression", "refresh readings_hourly", …
    schedule: timedelta
    scheduled: bool
    last_run: datetime | None
    last_status: str | None  # "Success", "Failed", None before the first run
    next_start: datetime | None
    failures: int


@dataclass
class DbStatus:
    server_version: str
    schema_version: int
    latest_migration: int
    timescaledb: bool
    hypertable: bool
    # name → (estimated rows, -1 if never analysed; bytes with indexes)
    tables: dict[str, tuple[int, int]] = field(default_factory=dict)
    oldest_reading: datetime | None = None
    newest_reading: datetime | None = None
    partitioned: bool = False  # plain PostgreSQL monthly partitions
    partitions: list[Partition] = field(default_factory=list)
    default_rows: int = 0  # rows waiting in DEFAULT (exact)
    rollups: str = "none"  # "tables", "continuous aggregates"
    # TimescaleDB only: bytes before / after compression of the compressed chunks
    compression: tuple[int, int] | None = None
    chunk_interval: timedelta | None = None
    chunks: int = 0
    compressed_chunks: int = 0
    jobs: list[Job] = field(default_factory=list)
    # continuous aggregate → materialised up to (later buckets: real-time aggregation)
    materialized_until: dict[str, datetime | None] = field(default_factory=dict)
    retention_policy: timedelta | None = None  # the policy's drop_after, if there is one


def db_status(conn: psycopg.Connection) -> DbStatus:
    row = conn.execute("SHOW server_version").fetchone()
    ts = timescale_active(conn)
    hyper = False
    if ts:
        h = conn.execute(
            "SELECT count(*) FROM timescaledb_information.hypertables "
            "WHERE hypertable_name = 'readings'"
        ).fetchone()
        hyper = bool(h and h[0])
    st = DbStatus(
        str(row[0]) if row else "?",
        current_version(conn),
        max((m.version for m in available()), default=0),
        ts,
        hyper,
    )
    for name in TABLES:
        # estimated rows (exact counts scan years of data) and total size with indexes
        # (a partitioned table has no storage of its own: add up its partitions)
        r = conn.execute(
            """SELECT sum(greatest(c.reltuples, 0))::bigint,
                                   min(c.reltuples)::bigint,
                                   sum(pg_total_relation_size(c.oid))::bigint
                            FROM pg_partition_tree(to_regclass(%s)) t
                            JOIN pg_class c ON c.oid = t.relid
                            WHERE t.isleaf AND c.relkind <> 'v'""",
            (name,),
        ).fetchone()
        if r is not None and r[2] is not None:
            st.tables[name] = (-1 if r[1] < 0 else int(r[0]), int(r[2]))
    if hyper:  # chunks are inherited, not partitions: TimescaleDB adds them up itself
        size = conn.execute("SELECT hypertable_size('readings')").fetchone()
        rows = conn.execute("SELECT approximate_row_count('readings')").fetchone()
        if size and rows:
            st.tables["readings"] = (int(rows[0]), int(size[0] or 0))
    # newest from the per-device status (no scan); oldest needs readings themselves
    newest = conn.execute("SELECT max(last_ts) FROM device_status").fetchone()
    oldest = conn.execute("SELECT ts FROM readings ORDER BY ts LIMIT 1").fetchone()
    st.oldest_reading = oldest[0] if oldest else None
    st.newest_reading = newest[0] if newest else None
    if partitioned(conn):
        st.partitioned = True
        st.partitions = existing_partitions(conn)
        d = conn.execute(f"SELECT count(*) FROM {DEFAULT_PARTITION}").fetchone()
        st.default_rows = int(d[0]) if d else 0
    kind = conn.execute(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass('readings_hourly')"
    ).fetchone()
    st.rollups = {"r": "hourly table, daily view of it", "v": "continuous aggregates"}.get(
        kind[0] if kind else "", "none"
    )
    if hyper:
        _timescale_details(conn, st)
    return st


def _timescale_details(conn: psycopg.Connection, st: DbStatus) -> None:
    c = conn.execute("""SELECT sum(before_compression_total_bytes)::bigint,
                               sum(after_compression_total_bytes)::bigint
                        FROM hypertable_compression_stats('readings')""").fetchone()
    if c and c[0]:
        st.compression = (int(c[0]), int(c[1]))
    row = conn.execute("""SELECT time_interval FROM timescaledb_information.dimensions
                          WHERE hypertable_name = 'readings' AND column_name = 'ts'""").fetchone()
    st.chunk_interval = row[0] if row else None
    row = conn.execute("""SELECT count(*), count(*) FILTER (WHERE is_compressed)
                          FROM timescaledb_information.chunks
                          WHERE hypertable_name = 'readings'""").fetchone()
    if row:
        st.chunks, st.compressed_chunks = int(row[0]), int(row[1])
    # (for a continuous aggregate's policy, hypertable_name is the aggregate's name)
    rows = conn.execute("""
        SELECT j.job_id, j.proc_name, coalesce(j.hypertable_name, ''), j.schedule_interval,
               j.scheduled,
               -- ±infinity ("never run yet", "not planned") has no Python datetime: NULL
               CASE WHEN isfinite(s.last_run_started_at) THEN s.last_run_started_at END,
               s.last_run_status,
               CASE WHEN isfinite(s.next_start) THEN s.next_start END,
               coalesce(s.total_failures, 0)
        FROM timescaledb_information.jobs j
        LEFT JOIN timescaledb_information.job_stats s USING (job_id)
        WHERE j.proc_schema = '_timescaledb_functions'
          AND j.proc_name IN ('policy_retention', 'policy_compression',
                              'policy_refresh_continuous_aggregate')
        ORDER BY j.job_id""").fetchall()
    kinds = {
        "policy_retention": "retention",
        "policy_compression": "compression",
        "policy_refresh_continuous_aggregate": "refresh",
    }
    for jid, proc, table, every, on, last, status, nxt, failures in rows:
        kind = kinds.get(str(proc), str(proc))
        if kind == "refresh":
            kind = f"refresh {table}"
        st.jobs.append(Job(jid, kind, every, on, last, status, nxt, int(failures)))
    row = conn.execute("""SELECT (config->>'drop_after')::interval
                          FROM timescaledb_information.jobs
                          WHERE proc_name = 'policy_retention'
                            AND hypertable_name = 'readings'""").fetchone()
    st.retention_policy = row[0] if row else None
    for view in ("readings_hourly", "readings_daily"):
        # the watermark is the minimum time value while nothing is materialised
        row = conn.execute(
            """SELECT CASE WHEN w > '0001-01-01' THEN w END FROM (
                   SELECT _timescaledb_functions.to_timestamp(
                              _timescaledb_functions.cagg_watermark(mat_hypertable_id)) AS w
                   FROM _timescaledb_catalog.continuous_agg WHERE user_view_name = %s) x""",
            (view,),
        ).fetchone()
        if row is not None:
            st.materialized_until[view] = row[0]

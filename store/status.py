"""What ``offsite db status`` reports: schema, backend features, sizes, data span,
partitions, rollups, retention, and compression where TimescaleDB knows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

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
        c = conn.execute("""SELECT sum(before_compression_total_bytes)::bigint,
                                   sum(after_compression_total_bytes)::bigint
                            FROM hypertable_compression_stats('readings')""").fetchone()
        if c and c[0]:
            st.compression = (int(c[0]), int(c[1]))
    return st

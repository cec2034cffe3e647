"""What ``offsite db status`` reports: schema, backend features, sizes, data span."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from store.migrate import available, current_version, timescale_active

TABLES = ("readings", "packets", "dead_letters", "alerts", "alert_events", "visits",
          "devices", "device_status", "ingest_workers")


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


def db_status(conn: psycopg.Connection) -> DbStatus:
    row = conn.execute("SHOW server_version").fetchone()
    ts = timescale_active(conn)
    hyper = False
    if ts:
        h = conn.execute("SELECT count(*) FROM timescaledb_information.hypertables "
                         "WHERE hypertable_name = 'readings'").fetchone()
        hyper = bool(h and h[0])
    st = DbStatus(str(row[0]) if row else "?", current_version(conn),
                  max((m.version for m in available()), default=0), ts, hyper)
    for name in TABLES:
        # estimated rows (exact counts scan years of data) and total size with indexes
        r = conn.execute("""SELECT coalesce(c.reltuples, 0)::bigint,
                                   pg_total_relation_size(c.oid)
                            FROM pg_class c WHERE c.oid = to_regclass(%s)""",
                         (name,)).fetchone()
        if r is not None:
            st.tables[name] = (int(r[0]), int(r[1]))
    # newest from the per-device status (no scan); oldest needs readings themselves
    newest = conn.execute("SELECT max(last_ts) FROM device_status").fetchone()
    oldest = conn.execute("SELECT ts FROM readings ORDER BY ts LIMIT 1").fetchone()
    st.oldest_reading = oldest[0] if oldest else None
    st.newest_reading = newest[0] if newest else None
    return st

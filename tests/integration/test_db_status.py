"""``offsite db status``: schema version, backend features, sizes and the data span."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from offsite.core.readings import Reading
from offsite.store.readings import insert_readings
from offsite.store.status import db_status
from tests.integration.helpers import register
from tests.integration.test_ingest_store import MN, REGISTRY

pytestmark = pytest.mark.integration


def test_db_status_reports_schema_backend_sizes_and_span(backend_db_url: str) -> None:
    db_url = backend_db_url
    register(db_url, REGISTRY)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    with psycopg.connect(db_url) as conn:
        with conn.transaction():
            insert_readings(
                conn,
                [
                    Reading(t0, MN, "a21026", 1.0),
                    Reading(t0 + timedelta(hours=1), MN, "a21026", 2.0),
                ],
                [t0, t0 + timedelta(hours=1)],
            )
        conn.execute("ANALYZE readings")
        st = db_status(conn)
        timescale = conn.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone() == (1,)
    assert st.schema_version == st.latest_migration >= 4
    assert st.timescaledb is timescale and st.hypertable is timescale
    assert st.partitioned is not timescale
    assert st.tables["readings"][0] == 2 and st.tables["readings"][1] > 0
    assert st.oldest_reading == t0 and st.newest_reading == t0 + timedelta(hours=1)

    out = subprocess.run(
        [sys.executable, "-m", "offsite.cli", "db", "status"],
        env={**os.environ, "OFFSITE_DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    kind = "a hypertable" if timescale else "a plain table"
    assert f"readings {kind}" in out.stdout and "~2 rows" in out.stdout

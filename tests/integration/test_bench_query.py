"""``offsite bench query`` at toy scale on both backends: every query answers (an empty
answer fails the run), and on TimescaleDB ``--compress`` runs the readings hypertable's
own compression policy over the whole history and times the readings queries again on
compressed chunks. Figures are not asserted — they are the output."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from offsite.bench.query import READINGS_CASES, NotTimescale, QueryBenchArgs, run_query_bench
from offsite.store.scratch import with_database

pytestmark = pytest.mark.integration


@pytest.fixture
def history_db() -> Iterator[str]:
    """A database name of this test's own (never the kept 50M history's)."""
    yield f"offsite_bench_q_{uuid.uuid4().hex[:8]}"


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _args(database: str, compress: bool) -> QueryBenchArgs:
    return QueryBenchArgs(devices=2, days=2, repeats=2, compress=compress, database=database)


def test_compress_times_the_readings_queries_again_on_compressed_chunks(
    timescale_admin_url: str, history_db: str
) -> None:
    try:
        r = run_query_bench(_args(history_db, True), timescale_admin_url, out=lambda _s: None)
        assert r["backend"] == "timescaledb"
        assert r["chunks_compressed"] == "0 of 2"  # the policies were paused: nothing yet
        assert r["chunks_compressed_after"] == "2 of 2"  # the policy took every chunk
        assert isinstance(r["readings"], int) and r["readings"] > 0
        ratio = r["compression_ratio"]
        assert isinstance(ratio, float) and ratio > 1
        for case in READINGS_CASES:
            # the same draws before and after: the same rows, from compressed chunks
            assert r[f"{case}_compressed_rows"] == r[f"{case}_rows"]
            assert r[f"{case}_compressed_p95_ms"] is not None
        # shorter than a month: the month read is the whole history, 48 hours per channel
        assert isinstance(r["device_month_hourly_rows"], int)
        assert r["device_month_hourly_rows"] > 0 and r["device_month_hourly_rows"] % 48 == 0
        # the kept history is reused as it is, and says that it is compressed now
        again = run_query_bench(_args(history_db, False), timescale_admin_url, lambda _s: None)
        assert again["generated_s"] is None and again["chunks_compressed"] == "2 of 2"
    finally:
        _drop(timescale_admin_url, history_db)


def test_plain_history_lands_in_monthly_partitions_and_refuses_compress(
    plain_admin_url: str, history_db: str
) -> None:
    try:
        r = run_query_bench(_args(history_db, False), plain_admin_url, out=lambda _s: None)
        assert r["backend"] == "plain" and "chunks_compressed" not in r
        assert r["device_month_hourly_rows"] and r["device_day_hourly_rows"]
        with psycopg.connect(with_database(plain_admin_url, history_db)) as conn:
            row = conn.execute("SELECT count(*) FROM readings_default").fetchone()
        assert row is not None and row[0] == 0  # every row in its month's partition
        with pytest.raises(NotTimescale, match="TimescaleDB"):
            run_query_bench(_args(history_db, True), plain_admin_url, out=lambda _s: None)
    finally:
        _drop(plain_admin_url, history_db)

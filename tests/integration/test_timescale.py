"""TimescaleDB on the real extension: the hypertable and its chunks, continuous aggregates
(hourly; daily from hourly) with real-time aggregation and their refresh policies,
compression with late data landing in compressed chunks, and the retention policy.

Test databases are clones whose jobs start paused (tests/conftest.py): each policy here
runs when the test says so, with ``CALL run_job(id)`` — the job's own code, as the
scheduler would run it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from offsite.core.readings import Reading
from offsite.store.partitions import maintain
from offsite.store.readings import insert_readings
from offsite.store.rollups import rebuild_rollups
from offsite.store.status import db_status
from tests.integration.helpers import register
from tests.integration.test_ingest_store import MN, OTHER, REGISTRY

pytestmark = pytest.mark.integration

POLS = ("a21026", "a21002")

NAIVE = """
    SELECT mn, pollutant, kind, date_bin(interval '{w}', ts, timestamptz '1970-01-01'),
           count(*), sum(value), min(value), max(value), count(*) FILTER (WHERE flag = 'N'),
           coalesce(sum(value) FILTER (WHERE flag = 'N'), 0)
    FROM readings GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"""
ROLLUP = """SELECT mn, pollutant, kind, bucket, n, total, min_value, max_value, n_valid,
                   total_valid FROM {t} ORDER BY 1, 2, 3, 4"""


def same_as_raw(conn: psycopg.Connection) -> int:
    """Assert both rollups equal a naive aggregation of the raw rows; return hourly rows."""
    sizes = []
    for w, table in (("1 hour", "readings_hourly"), ("1 day", "readings_daily")):
        naive = conn.execute(NAIVE.format(w=w).encode()).fetchall()
        rolled = conn.execute(ROLLUP.format(t=table).encode()).fetchall()
        assert len(naive) == len(rolled) > 0, table
        for a, b in zip(naive, rolled, strict=True):
            assert a[:5] == b[:5] and a[6:9] == b[6:9], (table, a, b)
            assert a[5] == pytest.approx(b[5]) and a[9] == pytest.approx(b[9])
        sizes.append(len(naive))
    return sizes[0]


def series(start: datetime, minutes: int, seed: int = 3) -> list[Reading]:
    rnd = random.Random(seed)
    out = []
    for i in range(minutes):
        ts = start + timedelta(minutes=i)
        for mn in (MN, OTHER):
            for pol in POLS:
                flag = "N" if rnd.random() > 0.1 else rnd.choice("MDC")
                out.append(Reading(ts, mn, pol, round(rnd.uniform(0, 80), 3), flag))
    return out


def store(conn: psycopg.Connection, readings: list[Reading], batch: int = 250) -> int:
    new = 0
    for k in range(0, len(readings), batch):
        part = readings[k : k + batch]
        with conn.transaction():
            new += len(insert_readings(conn, part, [r.ts for r in part]))
    return new


def job_id(conn: psycopg.Connection, proc: str, table: str = "readings") -> int:
    """The id of the policy ``proc`` on ``table`` (a hypertable or a continuous aggregate)."""
    row = conn.execute(
        # a continuous aggregate's policy names the aggregate as its hypertable
        """SELECT job_id FROM timescaledb_information.jobs
           WHERE proc_name = %s AND hypertable_name = %s""",
        (proc, table),
    ).fetchone()
    assert row is not None, f"no {proc} job on {table}"
    return int(row[0])


def run_job(conn: psycopg.Connection, job: int) -> None:
    """Run a job now with the job's own code, as the scheduler would (``conn`` in
    autocommit: jobs commit as they go); a failure raises here."""
    assert conn.autocommit
    conn.execute("CALL run_job(%s)", (job,))


def refresh_policies(conn: psycopg.Connection) -> None:
    run_job(conn, job_id(conn, "policy_refresh_continuous_aggregate", "readings_hourly"))
    run_job(conn, job_id(conn, "policy_refresh_continuous_aggregate", "readings_daily"))


def watermark(conn: psycopg.Connection, view: str) -> datetime | None:
    return db_status(conn).materialized_until.get(view)


@pytest.fixture
def ts(timescale_db_url: str) -> Iterator[psycopg.Connection]:
    register(timescale_db_url, REGISTRY)
    with psycopg.connect(timescale_db_url, autocommit=True) as conn:
        yield conn


def _hours_ago(now: datetime, hours: int) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)


# -- the schema a migration leaves ----------------------------------------------------------
def test_a_migrated_database_has_the_hypertable_aggregates_and_scheduled_policies(
    timescale_admin_url: str,
) -> None:
    """Checked on a freshly migrated database (not a clone, whose jobs start paused)."""
    from offsite.store.migrate import migrate
    from offsite.store.scratch import scratch_database

    with (
        scratch_database(timescale_admin_url, "offsite_t_fresh") as url,
        psycopg.connect(url) as conn,
    ):
        migrate(conn)
        conn.commit()
        st = db_status(conn)
        assert st.timescaledb and st.hypertable and not st.partitioned
        assert st.chunk_interval == timedelta(days=1)
        assert st.rollups == "continuous aggregates"
        cs = conn.execute(
            """SELECT attname, segmentby_column_index, orderby_column_index,
                          orderby_asc
                   FROM timescaledb_information.compression_settings
                   WHERE hypertable_name = 'readings' ORDER BY attname"""
        ).fetchall()
        assert [(a, s) for a, s, _, _ in cs if s] == [("mn", 1), ("pollutant", 2)]
        assert [(a, o, asc) for a, _, o, asc in cs if o] == [
            ("kind", 1, True),
            ("ts", 2, False),
        ]
        aggs = dict(
            conn.execute(
                """SELECT view_name, materialized_only
                       FROM timescaledb_information.continuous_aggregates"""
            ).fetchall()
        )
        assert aggs == {"readings_hourly": False, "readings_daily": False}  # real-time
        # daily is built on hourly (a hierarchical continuous aggregate)
        parent = conn.execute(
            """SELECT p.user_view_name FROM _timescaledb_catalog.continuous_agg c
                   JOIN _timescaledb_catalog.continuous_agg p
                        ON p.mat_hypertable_id = c.parent_mat_hypertable_id
                   WHERE c.user_view_name = 'readings_daily'"""
        ).fetchone()
        assert parent == ("readings_hourly",)
        jobs = {(j.kind, j.schedule, j.scheduled) for j in st.jobs}
        assert jobs == {
            ("compression", timedelta(hours=12), True),
            ("refresh readings_hourly", timedelta(minutes=15), True),
            ("refresh readings_daily", timedelta(hours=1), True),
        }
        config = dict(
            conn.execute(
                """SELECT proc_name || ' ' || hypertable_name, config::text
                       FROM timescaledb_information.jobs
                       WHERE proc_name IN ('policy_compression',
                                           'policy_refresh_continuous_aggregate')"""
            ).fetchall()
        )
        assert '"compress_after": "7 days"' in config["policy_compression readings"]
        hourly = config["policy_refresh_continuous_aggregate readings_hourly"]
        assert '"start_offset": "35 days"' in hourly and '"end_offset": "01:00:00"' in hourly


def test_chunks_are_one_day_each(ts: psycopg.Connection) -> None:
    t0 = datetime(2026, 11, 3, 22, tzinfo=UTC)
    store(ts, series(t0, 4 * 60))  # 22:00 → 02:00 across one midnight
    chunks = ts.execute(
        """SELECT range_start, range_end FROM timescaledb_information.chunks
           WHERE hypertable_name = 'readings' ORDER BY range_start"""
    ).fetchall()
    assert [(a.astimezone(UTC), b - a) for a, b in chunks] == [
        (datetime(2026, 11, 3, tzinfo=UTC), timedelta(days=1)),
        (datetime(2026, 11, 4, tzinfo=UTC), timedelta(days=1)),
    ]


# -- continuous aggregates ------------------------------------------------------------------
def test_aggregates_equal_raw_rows_before_and_after_the_refresh_policy_with_late_and_redelivered_data(  # noqa: E501
    ts: psycopg.Connection,
) -> None:
    now = datetime.now(UTC)
    start = _hours_ago(now, 50)  # inside the policies' window, ending before now - 1 h
    readings = series(start, 48 * 60)
    assert store(ts, readings) == len(readings)
    # nothing materialised yet: real-time aggregation answers from raw rows
    assert watermark(ts, "readings_hourly") is None
    same_as_raw(ts)

    refresh_policies(ts)
    hourly_mark = watermark(ts, "readings_hourly")
    assert hourly_mark is not None and hourly_mark >= start + timedelta(hours=47)
    assert watermark(ts, "readings_daily") is not None
    materialised = ts.execute(
        f"SELECT count(*) FROM _timescaledb_internal._materialized_hypertable_"
        f"{_mat_id(ts, 'readings_hourly')}"
    ).fetchone()
    assert materialised and materialised[0] > 0
    same_as_raw(ts)

    # late data into hours already materialised, redeliveries of stored rows, and a
    # batch that rolls back: the policy's next run brings the aggregates level again
    late = [
        Reading(start + timedelta(hours=3, seconds=30 + k), MN, "a21026", 500.0 + k)
        for k in range(5)
    ]
    again = readings[1000:1400] + readings[:50]
    random.Random(2).shuffle(again)
    assert store(ts, late + again, batch=97) == len(late)
    with pytest.raises(ZeroDivisionError), ts.transaction():
        insert_readings(
            ts, [Reading(start + timedelta(hours=5, seconds=7), MN, "a21026", 1e6)], [now]
        )
        raise ZeroDivisionError
    refresh_policies(ts)
    same_as_raw(ts)
    hour = ts.execute(
        """SELECT n, max_value FROM readings_hourly
           WHERE mn = %s AND pollutant = 'a21026' AND kind = 'rtd' AND bucket = %s""",
        (MN, start + timedelta(hours=3)),
    ).fetchone()
    assert hour == (65, 504.0)

    # and data newer than the materialised part is aggregated when read (real-time)
    fresh = [Reading(hourly_mark + timedelta(minutes=m), MN, "a21026", 1.0) for m in range(3)]
    store(ts, fresh)
    same_as_raw(ts)


def _mat_id(conn: psycopg.Connection, view: str) -> int:
    row = conn.execute(
        "SELECT mat_hypertable_id FROM _timescaledb_catalog.continuous_agg "
        "WHERE user_view_name = %s",
        (view,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_rebuild_rollups_refreshes_the_aggregates_after_a_bulk_copy(ts: psycopg.Connection) -> None:
    t0 = datetime(2026, 10, 5, tzinfo=UTC)  # outside the policies' window: only a refresh
    rows = series(t0, 26 * 60)
    with (
        ts.transaction(),
        ts.cursor().copy(
            "COPY readings (ts, mn, pollutant, kind, value, flag, received_at) FROM STDIN"
        ) as cp,
    ):
        for r in rows:
            cp.write_row((r.ts, r.mn, r.pollutant, r.kind_text, r.value, r.flag, r.ts))
    hourly, daily = rebuild_rollups(ts, t0, t0 + timedelta(days=2))
    assert (hourly, daily) == (26 * 4, 2 * 4)
    assert watermark(ts, "readings_hourly") == t0 + timedelta(hours=26)
    same_as_raw(ts)
    # a bulk load into the materialised range is invisible until the next refresh …
    with (
        ts.transaction(),
        ts.cursor().copy(
            "COPY readings (ts, mn, pollutant, kind, value, flag, received_at) FROM STDIN"
        ) as cp,
    ):
        cp.write_row((t0 + timedelta(seconds=5), MN, "a21026", "rtd", 1.0, "N", t0))
    with pytest.raises(AssertionError):
        same_as_raw(ts)
    rebuild_rollups(ts, t0, t0 + timedelta(hours=1))  # … which brings it in
    same_as_raw(ts)
    # and the refresh refuses to run inside the caller's transaction (it commits itself)
    from offsite.store.errors import StoreError

    with ts.transaction(), pytest.raises(StoreError, match="commit the load first"):
        rebuild_rollups(ts, t0, t0 + timedelta(hours=1))


# -- compression ----------------------------------------------------------------------------
def test_compression_policy_and_late_data_into_compressed_chunks_loses_nothing(
    ts: psycopg.Connection,
) -> None:
    now = datetime.now(UTC)
    start = _hours_ago(now, 12 * 24)  # twelve days ago: older than compress_after (7 days)
    readings = series(start, 6 * 60)
    store(ts, readings)
    before = ts.execute("SELECT count(*), sum(value) FROM readings").fetchone()
    assert before is not None
    run_job(ts, job_id(ts, "policy_compression"))
    st = db_status(ts)
    assert st.compressed_chunks >= 1 and st.compression is not None
    compressed = ts.execute(
        """SELECT count(*) FROM timescaledb_information.chunks
           WHERE hypertable_name = 'readings' AND is_compressed
             AND range_start <= %s AND range_end > %s""",
        (start + timedelta(hours=1), start + timedelta(hours=1)),
    ).fetchone()
    assert compressed == (1,)
    after = ts.execute("SELECT count(*), sum(value) FROM readings").fetchone()
    assert after is not None and after[0] == before[0] and after[1] == pytest.approx(before[1])

    # late readings for minutes the chunk lacks, mixed with redeliveries of compressed
    # rows: exactly the new ones are stored and reported new, none twice, none lost
    late = [
        Reading(start + timedelta(hours=1, seconds=20 + k), mn, "a21026", 100.0 + k)
        for k in range(10)
        for mn in (MN, OTHER)
    ]
    redelivered = readings[500:700]
    mixed = late + redelivered
    random.Random(5).shuffle(mixed)
    with ts.transaction():
        new = insert_readings(ts, mixed, [now] * len(mixed))
    assert sorted(new, key=_key) == sorted(late, key=_key)
    assert ts.execute("SELECT count(*) FROM readings").fetchone() == (before[0] + len(late),)
    # redelivering the late ones again: nothing new
    with ts.transaction():
        assert insert_readings(ts, late, [now] * len(late)) == []
    stored = ts.execute(
        "SELECT mn, pollutant, ts, value FROM readings WHERE value >= 100 AND value < 110"
    ).fetchall()
    assert sorted(stored) == sorted((r.mn, r.pollutant, r.ts, r.value) for r in late)
    # device_status counts each stored reading once
    counts = dict(ts.execute("SELECT mn, readings FROM device_status").fetchall())
    assert sum(counts.values()) == before[0] + len(late)
    # the compressed segments are still there (recompressed or not, nothing was lost)
    run_job(ts, job_id(ts, "policy_compression"))
    assert ts.execute("SELECT count(*) FROM readings").fetchone() == (before[0] + len(late),)
    rebuild_rollups(ts)
    same_as_raw(ts)


def _key(r: Reading) -> tuple[str, str, datetime]:
    return (r.mn, r.pollutant, r.ts)


# -- retention ------------------------------------------------------------------------------
def test_retention_policy_follows_the_setting_and_drops_old_chunks_but_not_aggregates(
    ts: psycopg.Connection,
) -> None:
    now = datetime.now(UTC)
    old = _hours_ago(now, 60 * 24)  # sixty days ago
    recent = _hours_ago(now, 5 * 24)
    store(ts, series(old, 120) + series(recent, 120))
    rebuild_rollups(ts)  # the old hours materialised before their raw rows go

    r = maintain(ts, now, months_ahead=1, retention=timedelta(days=30))
    assert (r.backend, r.retention_policy, r.retention) == (
        "timescaledb",
        "added",
        timedelta(days=30),
    )
    job = job_id(ts, "policy_retention")
    assert maintain(ts, now, months_ahead=1, retention=timedelta(days=30)).retention_policy == (
        "unchanged"
    )
    assert job_id(ts, "policy_retention") == job  # the same job: schedule and history kept
    assert db_status(ts).retention_policy == timedelta(days=30)

    hours_before = ts.execute("SELECT count(*) FROM readings_hourly").fetchone()
    ts.execute("SELECT alter_job(%s, scheduled => false)", (job,))
    run_job(ts, job)
    span = ts.execute("SELECT min(ts), count(*) FROM readings").fetchone()
    assert span is not None and span[0] >= now - timedelta(days=31) and span[1] == 120 * 4
    # the aggregates outlive the raw rows they summarise
    assert ts.execute("SELECT count(*) FROM readings_hourly").fetchone() == hours_before
    assert ts.execute(
        "SELECT count(*) FROM readings_hourly WHERE bucket < %s", (now - timedelta(days=59),)
    ).fetchone() == (2 * 4,)  # two hours of 2 devices × 2 pollutants

    assert maintain(ts, now, months_ahead=1, retention=timedelta(days=90)).retention_policy == (
        "changed"
    )
    assert maintain(ts, now, months_ahead=1, retention=None).retention_policy == "removed"
    assert db_status(ts).retention_policy is None


# -- the real scheduler ---------------------------------------------------------------------
# What TimescaleDB 2.28.3 on PostgreSQL 15.20 reports for every run its scheduler makes, after
# the run's work has committed (PortalDrop refuses the never-started portal the extension
# creates for the job): docs/deploy.md "TimescaleDB background jobs".
UPSTREAM_PORTAL_ERROR = 'cannot drop portal "" while it is being set up'


@dataclass(frozen=True, slots=True)
class ScheduledRun:
    status: str  # job_stats.last_run_status: "Success" or "Failed"
    error: str | None  # the run's error message when it failed
    started: datetime
    schedule: timedelta
    next_start: datetime  # when the scheduler means to run the job again


def _job_state(conn: psycopg.Connection, job: int) -> tuple[int, str | None, str | None]:
    row = conn.execute(
        "SELECT coalesce(total_runs, 0), job_status, last_run_status "
        "FROM timescaledb_information.job_stats "
        "WHERE job_id = %s",
        (job,),
    ).fetchone()
    return (int(row[0]), row[1], row[2]) if row else (0, None, None)


def scheduled_run(conn: psycopg.Connection, job: int, *, within_s: float = 180.0) -> ScheduledRun:
    """Let TimescaleDB's own scheduler run ``job`` once, now, and pause it again.

    A run the server could not launch (no free background worker: every test database on
    the server has a scheduler of its own) is not the job's outcome: it is asked again."""
    runs, _, _ = _job_state(conn, job)
    conn.execute("SELECT alter_job(%s, scheduled => true, next_start => now())", (job,))
    deadline = time.monotonic() + within_s
    try:
        while True:
            assert time.monotonic() < deadline, f"the scheduler did not run job {job}"
            time.sleep(0.2)
            total, state, status = _job_state(conn, job)
            if total <= runs or state == "Running" or status is None:
                continue
            row = conn.execute(
                """SELECT s.last_run_started_at, j.schedule_interval, s.next_start,
                          (SELECT e.err_message FROM timescaledb_information.job_errors e
                           WHERE e.job_id = j.job_id ORDER BY e.start_time DESC LIMIT 1)
                   FROM timescaledb_information.jobs j
                   JOIN timescaledb_information.job_stats s USING (job_id)
                   WHERE j.job_id = %s""",
                (job,),
            ).fetchone()
            assert row is not None
            started, schedule, next_start, error = row
            if status != "Success" and error and "failed to start" in error:
                runs = total
                conn.execute("SELECT alter_job(%s, next_start => now())", (job,))
                continue
            return ScheduledRun(
                status, error if status != "Success" else None, started, schedule, next_start
            )
    finally:
        conn.execute("SELECT alter_job(%s, scheduled => false)", (job,))


def test_the_scheduler_runs_every_policy_and_keeps_each_on_its_schedule(
    ts: psycopg.Connection,
) -> None:
    """Each policy of ours run by TimescaleDB's background scheduler, not ``run_job``: its
    work is done, it comes back within one schedule interval even after a run reported
    failed, and it succeeds — where the server's TimescaleDB/PostgreSQL pair lets any job
    succeed (not 2.28.3 on 15.20, whose every scheduled run fails after committing)."""
    now = datetime.now(UTC)
    old = _hours_ago(now, 60 * 24)  # past the 30-day retention set below
    aged = _hours_ago(now, 12 * 24)  # past compress_after (7 days)
    recent = _hours_ago(now, 3 * 24)
    store(ts, series(old, 60) + series(aged, 60) + series(recent, 180))
    maintain(ts, now, months_ahead=1, retention=timedelta(days=30))
    jobs = {
        "retention": job_id(ts, "policy_retention"),
        "compression": job_id(ts, "policy_compression"),
        "refresh hourly": job_id(ts, "policy_refresh_continuous_aggregate", "readings_hourly"),
        "refresh daily": job_id(ts, "policy_refresh_continuous_aggregate", "readings_daily"),
    }
    ts.execute("SELECT alter_job(%s, scheduled => false)", (jobs["retention"],))

    # twice each: a second run after a failed one is when a drifting schedule backs off
    # (retry_period × consecutive failures), past the job's interval
    runs = {kind: [scheduled_run(ts, job), scheduled_run(ts, job)] for kind, job in jobs.items()}

    # the work is done (and committed) whatever the runs were reported as
    row = ts.execute("SELECT min(ts) FROM readings").fetchone()
    assert row is not None and row[0] >= now - timedelta(days=31)
    compressed = ts.execute(
        """SELECT count(*) FROM timescaledb_information.chunks
           WHERE hypertable_name = 'readings' AND is_compressed
             AND range_start <= %s AND range_end > %s""",
        (aged, aged),
    ).fetchone()
    assert compressed == (1,)
    hourly, daily = watermark(ts, "readings_hourly"), watermark(ts, "readings_daily")
    assert hourly is not None and hourly >= recent + timedelta(hours=3)
    assert daily is not None and daily >= recent.replace(hour=0) + timedelta(days=1)

    # each policy comes back within one interval of its last start, failed or not
    late = {
        kind: (r.started, r.next_start, r.schedule)
        for kind, (_, r) in runs.items()
        if r.next_start > r.started + r.schedule
    }
    assert not late, f"policies scheduled later than their interval: {late}"

    # a run may report only the known upstream error (TimescaleDB's job runner on this
    # PostgreSQL, raised after the job's commit: the work above is done regardless);
    # any other failure is ours. CI counts an xfail as a skip, so this passes and says so.
    failed = {kind: r.error for kind, rs in runs.items() for r in rs if r.status != "Success"}
    ours = {kind: e for kind, e in failed.items() if e != UPSTREAM_PORTAL_ERROR}
    assert not ours, f"scheduled runs failed: {ours}"
    if failed:
        print(f"\nruns of {sorted(failed)} reported the upstream {UPSTREAM_PORTAL_ERROR!r}")


# -- upgrades -------------------------------------------------------------------------------
def test_an_installation_at_schema_4_upgrades_keeping_every_reading(
    timescale_admin_url: str,
) -> None:
    """A TimescaleDB installation from before the rollups (a hypertable since 0002) gets
    its aggregates (0005; daily rebuilt on hourly by 0011) over the readings it holds."""
    from offsite.store.migrate import available, migrate
    from offsite.store.scratch import scratch_database

    t0 = datetime(2026, 10, 20, tzinfo=UTC)
    readings = series(t0, 30 * 60)
    with (
        scratch_database(timescale_admin_url, "offsite_t_upgrade") as url,
        psycopg.connect(url) as conn,
    ):
        conn.execute("""CREATE TABLE schema_migrations (version integer PRIMARY KEY,
                            name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())""")
        for m in available():
            if m.version <= 4:
                conn.execute(m.sql.encode())
                conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (m.version, m.name))
        conn.commit()
        with conn.cursor().copy(
            "COPY readings (ts, mn, pollutant, kind, value, flag, received_at) FROM STDIN"
        ) as cp:
            for r in readings:
                cp.write_row((r.ts, r.mn, r.pollutant, r.kind_text, r.value, r.flag, r.ts))
        conn.commit()
        assert [m.version for m in migrate(conn)][:1] == [5]
        conn.commit()
        st = db_status(conn)
        assert st.hypertable and st.rollups == "continuous aggregates"
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (len(readings),)
        same_as_raw(conn)  # real-time aggregation over everything, until refreshed
        conn.commit()
        rebuild_rollups(conn)
        assert watermark(conn, "readings_hourly") == t0 + timedelta(hours=30)
        same_as_raw(conn)


# -- reads ----------------------------------------------------------------------------------
def test_rollup_reads_are_never_prepared_so_each_plan_sees_its_range(
    ts: psycopg.Connection, timescale_db_url: str
) -> None:
    """psycopg prepares a statement after a few runs, and PostgreSQL then plans it once for
    any range: on TimescaleDB that plan reads the hourly rollup by its bucket index and
    filters out every other device's rows. The API's bucket query stays unprepared."""
    import asyncio

    from offsite.api.queries.readings import buckets

    now = datetime.now(UTC)
    start = _hours_ago(now, 3 * 24)
    store(ts, series(start, 180))
    rebuild_rollups(ts)

    async def read() -> tuple[int, int]:
        async with await psycopg.AsyncConnection.connect(timescale_db_url) as conn:
            rows = 0
            for _ in range(12):  # past psycopg's prepare_threshold (5)
                rows = len(await buckets(conn, MN, start, start + timedelta(hours=3), None, 3600))
            cur = await conn.execute("SELECT count(*) FROM pg_prepared_statements")
            prepared = await cur.fetchone()
            assert prepared is not None
            return rows, int(prepared[0])

    rows, prepared = asyncio.run(read())
    assert rows == 3 * len(POLS)  # three hours of each pollutant, from the rollup
    assert prepared == 0

"""Storage: rollups equal to naive queries over raw rows and the API's buckets read from
them (on the leg's backend, or on both), and on plain PostgreSQL its monthly partitions:
made ahead, rows moved out of DEFAULT, retention by dropping months. TimescaleDB's own
features are in test_timescale.py."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from offsite.core.readings import Reading
from offsite.store.partitions import existing_partitions, maintain
from offsite.store.readings import insert_readings
from offsite.store.rollups import hourly_averages, rebuild_rollups, rollups_maintained
from tests.integration.helpers import bearer, make_settings, register, scalar, token_for
from tests.integration.test_api_live import serving
from tests.integration.test_ingest_store import MN, OTHER, REGISTRY

pytestmark = pytest.mark.integration

T0 = datetime(2026, 10, 30, 22, 0, tzinfo=UTC)  # spans a month end: October → November
POLS = ("a21026", "a21002")


def _series(n: int, seed: int = 7) -> list[Reading]:
    """Minute readings of two devices and two pollutants, some flagged, some hour/min
    statistics beside them, across a month boundary."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        ts = T0 + timedelta(minutes=i)
        for mn in (MN, OTHER):
            for pol in POLS:
                flag = "N" if rnd.random() > 0.1 else rnd.choice("MDC")
                out.append(Reading(ts, mn, pol, round(rnd.uniform(0, 80), 3), flag))
        if i % 60 == 0:
            out.append(Reading(ts, MN, "a21026", 12.5, "N", Reading.split_kind("hour")[0]))
    return out


def _store(conn: psycopg.Connection, readings: list[Reading], batch: int = 97) -> int:
    new = 0
    for k in range(0, len(readings), batch):
        part = readings[k : k + batch]
        with conn.transaction():
            new += len(insert_readings(conn, part, [r.ts for r in part]))
    return new


NAIVE = """
    SELECT mn, pollutant, kind, date_bin(interval '{w}', ts, timestamptz '1970-01-01'),
           count(*), sum(value), min(value), max(value), count(*) FILTER (WHERE flag = 'N'),
           coalesce(sum(value) FILTER (WHERE flag = 'N'), 0)
    FROM readings GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"""
ROLLUP = """SELECT mn, pollutant, kind, bucket, n, total, min_value, max_value, n_valid,
                   total_valid FROM {t} ORDER BY 1, 2, 3, 4"""


def _same(conn: psycopg.Connection) -> None:
    for w, table in (("1 hour", "readings_hourly"), ("1 day", "readings_daily")):
        naive = conn.execute(NAIVE.format(w=w).encode()).fetchall()
        rolled = conn.execute(ROLLUP.format(t=table).encode()).fetchall()
        assert len(naive) == len(rolled) > 0
        for a, b in zip(naive, rolled, strict=True):
            assert a[:5] == b[:5] and a[6:9] == b[6:9]
            assert a[5] == pytest.approx(b[5]) and a[9] == pytest.approx(b[9])


def test_rollups_equal_raw_queries_and_redelivery_never_double_counts(db_url: str) -> None:
    register(db_url, REGISTRY)
    readings = _series(300)
    with psycopg.connect(db_url) as conn:
        assert _store(conn, readings) == len(readings)
        _same(conn)
        # redelivery: overlapping batches again, in another order, with other batch sizes
        again = readings[100:250] + readings[:40]
        random.Random(1).shuffle(again)
        assert _store(conn, again, batch=53) == 0
        _same(conn)
        # a batch that rolls back leaves no trace in the rollups either
        late = Reading(T0 + timedelta(days=1), MN, "a21026", 999.0)
        with pytest.raises(ZeroDivisionError), conn.transaction():
            insert_readings(conn, [late], [late.ts])
            raise ZeroDivisionError
        _same(conn)
        hourly = conn.execute("SELECT count(*) FROM readings_hourly").fetchone()
        # rebuild from raw gives the same rollups (as after a bulk COPY): plain PostgreSQL
        # recomputes rows lost from its table; TimescaleDB materialises its aggregates
        if rollups_maintained(conn):
            with conn.transaction():
                conn.execute(
                    "DELETE FROM readings_hourly WHERE bucket >= %s", (T0 + timedelta(hours=2),)
                )
                rebuild_rollups(conn, T0 + timedelta(hours=1), T0 + timedelta(hours=4))
        else:
            conn.commit()
            rebuild_rollups(conn, T0 + timedelta(hours=1), T0 + timedelta(hours=4))
        _same(conn)
        assert conn.execute("SELECT count(*) FROM readings_hourly").fetchone() == hourly


def test_hourly_averages_read_valid_values_only(db_url: str) -> None:
    register(db_url, REGISTRY)
    h = datetime(2026, 11, 3, 10, tzinfo=UTC)
    rows = [
        Reading(h + timedelta(minutes=i), MN, "a21026", float(i), "N" if i < 50 else "M")
        for i in range(60)
    ]
    rows.append(Reading(h + timedelta(hours=1), MN, "a21026", 5.0, "D"))
    with psycopg.connect(db_url) as conn:
        _store(conn, rows)
        avgs = hourly_averages(conn, MN, "a21026", h, h + timedelta(hours=2))
    assert [(a.bucket, a.n_valid, a.n) for a in avgs] == [
        (h, 50, 60),
        (h + timedelta(hours=1), 0, 1),
    ]
    assert avgs[0].avg == pytest.approx(sum(range(50)) / 50)
    assert avgs[1].avg is None


def test_months_are_made_ahead_default_rows_moved_and_old_months_dropped(
    plain_db_url: str,
) -> None:
    db_url = plain_db_url
    register(db_url, REGISTRY)
    now = datetime(2026, 11, 26, 9, tzinfo=UTC)
    old = Reading(datetime(2023, 5, 2, tzinfo=UTC), MN, "a21026", 1.0)  # past retention
    kept = Reading(datetime(2026, 3, 10, tzinfo=UTC), MN, "a21026", 2.0)  # no month yet
    far = Reading(datetime(2027, 9, 1, 12, tzinfo=UTC), MN, "a21026", 3.0)  # beyond ahead
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert existing_partitions(conn) == []
        _store(conn, [old, kept, far])  # no months at all: DEFAULT takes them, none lost
        assert conn.execute("SELECT count(*) FROM readings_default").fetchone() == (3,)

        r = maintain(conn, now, months_ahead=2, retention=timedelta(days=3 * 365))
        assert r.created == [
            "readings_p2026_03",
            "readings_p2026_11",
            "readings_p2026_12",
            "readings_p2027_01",
            "readings_p2027_09",
        ]
        assert r.moved_rows == 2 and r.purged_rows == 1 and r.dropped == []
        assert conn.execute("SELECT count(*) FROM readings_default").fetchone() == (0,)
        where = dict(
            conn.execute("SELECT value, tableoid::regclass::text FROM readings").fetchall()
        )
        assert where == {2.0: "readings_p2026_03", 3.0: "readings_p2027_09"}
        # the primary key still refuses duplicates across the moved rows
        assert _store(conn, [kept, far]) == 0
        # a new reading for an existing month goes straight to it
        _store(conn, [Reading(datetime(2026, 12, 5, tzinfo=UTC), MN, "a21026", 4.0)])
        assert conn.execute("SELECT count(*) FROM readings_p2026_12").fetchone() == (1,)
        # rollups outlive the raw rows they summarise
        daily_before = conn.execute("SELECT count(*) FROM readings_daily").fetchone()

        # a second run is a no-op; later, retention drops March 2026 as a whole
        assert not (maintain(conn, now, months_ahead=2, retention=None).created)
        later = datetime(2029, 5, 15, tzinfo=UTC)
        r = maintain(conn, later, months_ahead=0, retention=timedelta(days=3 * 365))
        assert r.dropped == ["readings_p2026_03"] and r.created == ["readings_p2029_05"]
        names = [p.name for p in existing_partitions(conn)]
        assert "readings_p2026_03" not in names and "readings_p2026_11" in names
        assert conn.execute("SELECT value FROM readings ORDER BY ts").fetchall() == [(4.0,), (3.0,)]
        assert conn.execute("SELECT count(*) FROM readings_daily").fetchone() == daily_before


def test_db_maintain_and_status_commands(backend_db_url: str) -> None:
    """The same commands on both backends, each saying what it has: months made ahead on
    plain PostgreSQL, a retention policy and chunks on TimescaleDB."""
    db_url = backend_db_url
    register(db_url, REGISTRY)
    with psycopg.connect(db_url) as conn:
        with conn.transaction():
            t = datetime.now(UTC) - timedelta(days=2)
            insert_readings(conn, [Reading(t, MN, "a21026", 1.0)], [t])
        timescale = not rollups_maintained(conn)
    env = {**os.environ, "OFFSITE_DATABASE_URL": db_url, "OFFSITE_PARTITION_MONTHS_AHEAD": "1"}

    def offsite(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "offsite.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    out = offsite("db", "maintain")
    if timescale:
        assert "backend: timescaledb" in out
        assert "retention policy added: chunks older than 1096 days dropped" in out
        assert "retention policy unchanged" in offsite("db", "maintain")
    else:
        month = datetime.now(UTC).strftime("readings_p%Y_%m")
        assert "backend: partitioned" in out and month in out
    out = offsite("db", "status")
    if timescale:
        assert "TimescaleDB: active; readings a hypertable" in out
        assert "chunks: 1 of 1 day, 0 compressed" in out
        assert "rollups (hourly, daily): continuous aggregates" in out
        assert "readings_hourly materialised up to - (nothing yet), later: real-time" in out
        assert "refresh readings_hourly every 15 min" in out and "retention every 1 day" in out
        assert "policy in the database: 1096 days" in out
    else:
        assert "partitions: 2 monthly" in out and "0 rows in DEFAULT" in out
        assert "rollups (hourly, daily): hourly table, daily view of it" in out
    assert "retention: 1096 days of raw readings" in out


def test_api_buckets_from_rollups_equal_buckets_from_raw_rows(db_url: str, mqtt_url: str) -> None:
    register(db_url, REGISTRY)
    readings = _series(2 * 24 * 60 + 17)  # two days and a bit, across the month end
    with psycopg.connect(db_url) as conn:
        _store(conn, readings, batch=1000)
    settings = make_settings(db_url, mqtt_url, "x/+/y")
    start, end = T0 - timedelta(hours=22), T0 + timedelta(days=2, hours=2)
    cases = [
        (3600, start, end),
        (7200, start, end),
        (86400, start, end),
        (3 * 3600, T0 + timedelta(hours=1), T0 + timedelta(hours=10)),
        (3600, T0 + timedelta(minutes=30), T0 + timedelta(hours=5)),
    ]  # → raw path
    with (
        serving(settings, db_url) as url,
        httpx.Client(
            base_url=url, timeout=30, headers=bearer(token_for(db_url, "regulator"))
        ) as http,
    ):
        for bucket, lo, hi in cases:
            got = http.get(
                f"/api/devices/{MN}/readings",
                params={"bucket": bucket, "start": lo.isoformat(), "end": hi.isoformat()},
            )
            assert got.status_code == 200, got.text
            api = [
                (
                    datetime.fromisoformat(b["bucket"]),
                    b["pollutant"],
                    b["avg"],
                    b["min"],
                    b["max"],
                    b["count"],
                )
                for b in got.json()["buckets"]
            ]
            with psycopg.connect(db_url) as conn:
                naive = conn.execute(
                    """
                    SELECT date_bin(make_interval(secs => %s), ts, timestamptz 'epoch'),
                           pollutant, avg(value), min(value), max(value), count(*)
                    FROM readings WHERE mn = %s AND kind = 'rtd' AND ts >= %s AND ts < %s
                    GROUP BY 1, 2 ORDER BY 1, 2""",
                    (bucket, MN, lo, hi),
                ).fetchall()
            assert len(api) == len(naive) > 0, (bucket, lo, hi)
            for a, n in zip(api, naive, strict=True):
                assert a[0] == n[0] and a[1] == n[1] and a[3:] == n[3:]
                assert a[2] == pytest.approx(n[2])
        # and the aligned cases really were answered from the rollups: tamper, and see
        tamper_rollups(db_url, "max_value = 1e9")
        maxima = [
            {
                b["max"]
                for b in http.get(
                    f"/api/devices/{MN}/readings",
                    params={"bucket": bucket, "start": lo.isoformat(), "end": hi.isoformat()},
                ).json()["buckets"]
            }
            for bucket, lo, hi in cases
        ]
    assert maxima[:4] == [{1e9}, {1e9}, {1e9}, {1e9}]
    assert max(maxima[4]) < 100  # the unaligned case reads raw rows
    assert scalar(db_url, "SELECT count(*) FROM readings_daily") > 0


def tamper_rollups(db_url: str, assignment: str) -> None:
    """Change every hourly and daily rollup row behind the readers' backs: plain
    PostgreSQL's hourly table (the daily view sums it); on TimescaleDB the aggregates'
    materialisations, once refreshed (buckets not materialised yet would be aggregated
    from raw rows when read)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        if rollups_maintained(conn):
            conn.execute(f"UPDATE readings_hourly SET {assignment}".encode())
            return
        rebuild_rollups(conn)
        for view in ("readings_hourly", "readings_daily"):
            row = conn.execute(
                """SELECT format('%%I.%%I', materialization_hypertable_schema,
                                 materialization_hypertable_name)
                   FROM timescaledb_information.continuous_aggregates WHERE view_name = %s""",
                (view,),
            ).fetchone()
            assert row is not None
            conn.execute(f"UPDATE {row[0]} SET {assignment}".encode())


def test_making_a_month_while_ingest_writes_into_it_loses_nothing(plain_db_url: str) -> None:
    """Readings of a month with no partition keep arriving while the month is made: the
    ones already in DEFAULT move, the ones arriving meanwhile wait for the lock, and
    after it they go straight to the new partition — none lost, none refused."""
    import threading

    db_url = plain_db_url
    register(db_url, REGISTRY)
    dec = datetime(2026, 12, 1, tzinfo=UTC)
    stored: list[int] = []
    errors: list[BaseException] = []
    halfway, stop = threading.Event(), threading.Event()

    def writer() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                i = 0
                while not stop.is_set() or i < 60:
                    batch = [
                        Reading(dec + timedelta(minutes=i * 10 + k), MN, "a21026", float(k))
                        for k in range(10)
                    ]
                    stored.append(_store(conn, batch))
                    i += 1
                    if i == 30:
                        halfway.set()
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            halfway.set()

    t = threading.Thread(target=writer)
    t.start()
    assert halfway.wait(30)
    with psycopg.connect(db_url, autocommit=True) as conn:
        r = maintain(conn, datetime(2026, 11, 26, tzinfo=UTC), months_ahead=1, retention=None)
    stop.set()
    t.join(60)
    assert not errors and not t.is_alive()
    assert r.created == ["readings_p2026_11", "readings_p2026_12"] and r.moved_rows >= 300
    assert scalar(db_url, "SELECT count(*) FROM readings_p2026_12") == sum(stored) >= 600
    assert scalar(db_url, "SELECT count(*) FROM readings_default") == 0
    assert scalar(db_url, "SELECT sum(n) FROM readings_daily") == sum(stored)


def test_migration_turns_an_existing_readings_table_into_the_default_partition(
    plain_admin_url: str,
) -> None:
    """An installation upgraded to 0005 keeps every reading (as the DEFAULT partition,
    without a copy), gets rollups of its history, and maintain then moves the rows."""
    from offsite.store.migrate import available, migrate
    from offsite.store.scratch import scratch_database

    with scratch_database(plain_admin_url, "offsite_t_upgrade") as url:
        with psycopg.connect(url) as conn:  # an installation at schema 4
            conn.execute("""CREATE TABLE schema_migrations (version integer PRIMARY KEY,
                            name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())""")
            for m in available():
                if m.version <= 4:
                    conn.execute(m.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (%s, %s)", (m.version, m.name)
                    )
            conn.commit()
            readings = _series(150)
            for r in readings:  # the pre-0005 way: no rollups
                conn.execute(
                    """INSERT INTO readings (ts, mn, pollutant, kind, value, flag,
                                received_at) VALUES (%s, %s, %s, %s, %s, %s, now())""",
                    (r.ts, r.mn, r.pollutant, r.kind_text, r.value, r.flag),
                )
            conn.commit()
            assert migrate(conn)[0].version == 5
            register(url, REGISTRY)  # (the registry's audit log came with 0007)
            assert conn.execute("SELECT count(*) FROM readings_default").fetchone() == (
                len(readings),
            )
            _same(conn)
            conn.commit()
        with psycopg.connect(url, autocommit=True) as conn:
            r = maintain(conn, T0, months_ahead=1, retention=None)
            assert r.created == ["readings_p2026_10", "readings_p2026_11"]
            assert r.moved_rows == len(readings)
            assert conn.execute("SELECT count(*) FROM readings").fetchone() == (len(readings),)


def test_ingest_does_the_storage_upkeep_at_start(
    backend_db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    """Plain PostgreSQL: this month and the months ahead exist; TimescaleDB: the retention
    policy follows the setting."""
    from offsite.store.status import db_status
    from tests.integration.helpers import running_ingest

    db_url = backend_db_url
    register(db_url, REGISTRY)
    settings = make_settings(
        db_url, mqtt_url, unique_topic, partition_months_ahead=2, retention_days=400
    )
    with running_ingest(settings), psycopg.connect(db_url) as conn:
        st = db_status(conn)
    now = datetime.now(UTC)
    if st.timescaledb:
        assert st.retention_policy == timedelta(days=400) and not st.partitions
    else:
        parts = st.partitions
        assert len(parts) == 3 and parts[0].start <= now < parts[0].end

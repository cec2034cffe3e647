"""offsite.store.rule_inbox on a real PostgreSQL: a slice takes exactly the readings received
before the watermark; the later part of a batch stays queued, with its own series keys,
and the next slice takes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from offsite.core.readings import DataKind, Reading
from offsite.store.rule_inbox import Queued, done, queue_for_rules, take

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
EARLY, LATE = T0 + timedelta(seconds=1), T0 + timedelta(seconds=5)


def _judged(q: Queued) -> list[tuple[str, str, str, float, float, int]]:
    """(mn, pollutant, kind, ts, value, flag) per reading of a slice, sorted."""
    return sorted(
        (*q.keys[int(i)], float(t), float(x), int(f))
        for i, t, x, f in zip(q.sidx, q.t, q.x, q.flag, strict=True)
    )


def test_a_batch_split_by_the_watermark_is_judged_in_two_slices(db_url: str) -> None:
    early = [Reading(T0, "MNA", "a21026", 1.0), Reading(T0, "MNB", "a21002", 2.0, "M")]
    late = [
        Reading(T0 + timedelta(minutes=1), "MNC", "a19001", 3.0),
        Reading(T0 + timedelta(minutes=1), "MNA", "a21026", 4.0, kind=DataKind.MINUTE),
        Reading(T0 + timedelta(minutes=1), "MNA", "a21026", 9.0, kind=DataKind.MINUTE, stat="max"),
    ]  # a statistic beside an average: not queued
    with psycopg.connect(db_url) as conn:
        queue_for_rules(
            conn, early + late, [EARLY] * 2 + [LATE] * 3, {"MNA": LATE, "MNB": EARLY, "MNC": LATE}
        )
        conn.commit()
        first = take(conn, LATE - timedelta(seconds=1))
        done(conn, first)
        conn.commit()
        assert _judged(first) == [
            ("MNA", "a21026", "rtd", T0.timestamp(), 1.0, ord("N")),
            ("MNB", "a21002", "rtd", T0.timestamp(), 2.0, ord("M")),
        ]
        assert first.heard == {"MNA": LATE, "MNB": EARLY, "MNC": LATE}
        # the later part stayed queued, as its own row
        assert conn.execute("SELECT count(*) FROM rule_inbox").fetchone() == (1,)
        second = take(conn, LATE + timedelta(seconds=1))
        done(conn, second)
        conn.commit()
        t1 = (T0 + timedelta(minutes=1)).timestamp()
        assert _judged(second) == [
            ("MNA", "a21026", "min", t1, 4.0, ord("N")),
            ("MNC", "a19001", "rtd", t1, 3.0, ord("N")),
        ]
        assert conn.execute("SELECT count(*) FROM rule_inbox").fetchone() == (0,)


def test_an_older_reading_stamped_just_after_the_cut_goes_with_the_newer_one(db_url: str) -> None:
    """Two workers received one device's consecutive messages with inverted stamps
    (the newer first). A cut between the stamps must not judge the newer reading
    alone: the older one, committed already, is taken with it; what is newer in device
    time, or of a series with nothing taken, stays queued, untouched."""
    t_old, t_new = T0, T0 + timedelta(minutes=1)
    inverted = EARLY + timedelta(milliseconds=100)
    with psycopg.connect(db_url) as conn:
        queue_for_rules(conn, [Reading(t_new, "MNA", "a21026", 2.0)], [EARLY], {})
        queue_for_rules(
            conn,
            [
                Reading(t_old, "MNA", "a21026", 1.0),  # older, stamped later
                Reading(t_new + timedelta(minutes=1), "MNA", "a21026", 3.0),
            ],
            [inverted] * 2,
            {},
        )
        queue_for_rules(conn, [Reading(t_new, "MNB", "a21026", 5.0)], [inverted], {})
        conn.commit()
        # the cut (watermark − reorder) falls between the two stamps
        q = take(conn, EARLY + timedelta(milliseconds=300), timedelta(milliseconds=250))
        done(conn, q)
        conn.commit()
        assert _judged(q) == [
            ("MNA", "a21026", "rtd", t_old.timestamp(), 1.0, ord("N")),
            ("MNA", "a21026", "rtd", t_new.timestamp(), 2.0, ord("N")),
        ]
        assert q.keys == [("MNA", "a21026", "rtd")]  # MNB's row was not taken
        rest = take(conn, inverted + timedelta(seconds=1))
        assert _judged(rest) == [
            ("MNA", "a21026", "rtd", (t_new + timedelta(minutes=1)).timestamp(), 3.0, ord("N")),
            ("MNB", "a21026", "rtd", t_new.timestamp(), 5.0, ord("N")),
        ]


def test_without_a_reorder_window_a_cut_between_inverted_stamps_splits_them(db_url: str) -> None:
    """The same queue with no window: the cut is the watermark, as before."""
    with psycopg.connect(db_url) as conn:
        queue_for_rules(
            conn, [Reading(T0 + timedelta(minutes=1), "MNA", "a21026", 2.0)], [EARLY], {}
        )
        queue_for_rules(
            conn, [Reading(T0, "MNA", "a21026", 1.0)], [EARLY + timedelta(milliseconds=100)], {}
        )
        conn.commit()
        q = take(conn, EARLY + timedelta(milliseconds=50))
        assert [float(x) for x in q.x] == [2.0]


def test_a_split_rolled_back_leaves_the_queue_as_it_was_and_done_is_idempotent(
    db_url: str,
) -> None:
    """``take`` writes nothing: a judging transaction that fails after a split leaves
    the whole batch queued, and the split is written by ``done`` with the alerts; done
    twice (a retry after a commit whose outcome was lost) changes nothing more."""
    with psycopg.connect(db_url) as conn:
        queue_for_rules(
            conn,
            [Reading(T0, "MNA", "a21026", 1.0), Reading(T0, "MNB", "a21026", 2.0)],
            [EARLY, LATE],
            {"MNA": EARLY},
        )
        conn.commit()
        q = take(conn, LATE - timedelta(seconds=1))
        assert [float(x) for x in q.x] == [1.0] and len(q.rest) == 1
        conn.rollback()  # the judging transaction failed
        assert conn.execute("SELECT count(*), sum(length(ts) / 8) FROM rule_inbox").fetchone() == (
            1,
            2,
        )
        q = take(conn, LATE - timedelta(seconds=1))
        done(conn, q)
        done(conn, q)
        conn.commit()
        rest = take(conn, LATE + timedelta(seconds=1))
        assert _judged(rest) == [("MNB", "a21026", "rtd", T0.timestamp(), 2.0, ord("N"))]
        assert rest.heard == {}  # the heard devices went with the judged part


def test_the_queued_arrays_are_compressed_with_lz4_not_pglz(db_url: str) -> None:
    """A batch's arrays are written once, read once and deleted: pglz compressing them
    was a cost on ingest's commit path (migration 0062). Values big enough to be
    compressed come back as lz4, and judged as queued."""
    with psycopg.connect(db_url) as conn:
        try:
            with conn.transaction():
                conn.execute("CREATE TEMP TABLE lz4_probe (a text COMPRESSION lz4)")
        except psycopg.errors.FeatureNotSupported:
            pytest.skip("this PostgreSQL is built without lz4")
        readings = [
            Reading(T0 + timedelta(minutes=m), f"MN{d:03d}", "a21026", float(m))
            for m in range(10)
            for d in range(300)
        ]
        queue_for_rules(conn, readings, [EARLY] * len(readings), {"MN000": EARLY})
        conn.commit()
        methods = conn.execute(
            """SELECT pg_column_compression(sidx), pg_column_compression(ts),
                      pg_column_compression(received), pg_column_compression(s_mn)
               FROM rule_inbox"""
        ).fetchall()
        assert methods == [("lz4",) * 4]
        q = take(conn, LATE)
        assert len(q.ids) == 1 and len(_judged(q)) == len(readings)

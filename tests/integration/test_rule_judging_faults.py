"""At-least-once judging, exactly-once effect: a reading that commits is judged once
whatever fails between, checked on a real PostgreSQL with real faults (a backend
terminated in the middle of the judging transaction), and compared with a fault-free
run of the same data."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from offsite.core.readings import Reading
from offsite.core.registry import registry_from_dict
from offsite.runner import rule_runner
from offsite.runner.rule_runner import RuleRunner, RunnerConfig
from offsite.store.readings import insert_readings
from offsite.store.rule_inbox import queue_for_rules
from tests.integration.helpers import register, scalar, wait_for

pytestmark = pytest.mark.integration

MN = "0400JUDGEONCE00000000001"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E9",
                "name": "Judge Once Works",
                "points": [
                    {
                        "id": "E9-P1",
                        "kind": "flue_gas",
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": MN, "interval_s": 60}],
                    }
                ],
            }
        ]
    }
)
ALERTS = """SELECT rule, mn, pollutant, state, count, first_seen, last_seen, worst_value
            FROM alerts ORDER BY rule, mn, pollutant, first_seen"""
QUEUED_READINGS = "SELECT coalesce(sum(length(ts) / 8), 0) FROM rule_inbox"
WORKER = "test-worker"


def _queue_split_batch(db_url: str, now: datetime) -> None:
    """One batch of 10 readings over limit: 5 received before the watermark, 5 after,
    so the runner's first slice splits it; a live worker's promise sets the watermark."""
    t0 = now.replace(second=0, microsecond=0) - timedelta(minutes=20)
    readings = [Reading(t0 + timedelta(minutes=i), MN, "a21026", 90.0 + i) for i in range(10)]
    early, late = now - timedelta(minutes=10), now - timedelta(minutes=5)
    received = [early] * 5 + [late] * 5
    with psycopg.connect(db_url) as conn:
        new = insert_readings(conn, readings, received)
        queue_for_rules(conn, new, received, {MN: late})
        conn.execute(
            """INSERT INTO ingest_workers (worker, host, pid, started_at, heartbeat_at, inbox,
                   lag_s, messages, readings_stored, dead_letters, db_errors, committed_through)
               VALUES (%s, 'test', 0, now(), now() + interval '1 hour', 0, 0, 0, 0, 0, 0, %s)""",
            (WORKER, now - timedelta(minutes=7)),
        )


def _run(
    db_url: str, fault: Callable[[Any], None] | None, now: datetime
) -> tuple[list[tuple], int, int]:
    """Judge the split batch queued at ``now`` (the first slice under ``fault``), then the
    rest once the watermark moves; (alerts, readings still queued after the first slice,
    judged)."""
    register(db_url, REGISTRY)
    _queue_split_batch(db_url, now)
    stop = threading.Event()
    runner = RuleRunner(db_url, RunnerConfig(retry_s=0.1))
    real_apply = rule_runner.apply_plan
    calls = 0

    def apply_with_fault(conn: Any, plan: Any, reopen: Any) -> Any:
        nonlocal calls
        calls += 1
        if fault is not None and calls == 1:
            fault(conn)
        return real_apply(conn, plan, reopen)

    rule_runner.apply_plan = apply_with_fault  # type: ignore[assignment]
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: scalar(db_url, "SELECT count(*) FROM alerts") > 0, what="the alert")
        # the first slice is committed; the readings received after the watermark wait
        wait_for(lambda: runner.judged >= 5, what="the first slice judged")
        left = int(scalar(db_url, QUEUED_READINGS))
        with psycopg.connect(db_url) as conn:
            conn.execute(
                "UPDATE ingest_workers SET committed_through = now() WHERE worker = %s", (WORKER,)
            )
        wait_for(lambda: scalar(db_url, QUEUED_READINGS) == 0, what="the queue emptied")
        wait_for(lambda: runner.judged >= 10, timeout=5, what="all judged")
    finally:
        stop.set()
        thread.join(30)
        rule_runner.apply_plan = real_apply  # type: ignore[assignment]
    with psycopg.connect(db_url) as conn:
        alerts = conn.execute(ALERTS).fetchall()
    return alerts, left, runner.judged


def _terminate_own_backend(db_url: str) -> Callable[[Any], None]:
    def fault(conn: Any) -> None:
        """The server ends the judging transaction's session (as a crash would)."""
        with psycopg.connect(db_url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))

    return fault


@pytest.fixture
def other_db_url(admin_db_url: str, template_db: str) -> Iterator[str]:
    """A second database, for the fault-free run of the same data."""
    name = f"offsite_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_db_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    try:
        yield urlunsplit(urlsplit(admin_db_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_db_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_a_failed_judging_transaction_after_a_split_loses_no_reading(
    db_url: str, other_db_url: str
) -> None:
    """The first slice splits a batch (5 readings judged now, 5 later), then the
    server ends the session before it commits. Nothing of the batch may be lost:
    the unjudged 5 stay queued, and the alerts equal a fault-free run's."""
    # one clock for both runs: readings are placed on the minute before ``now``, so runs
    # on either side of a minute's turn would compare readings a minute apart
    now = datetime.now(UTC)
    faulty, left, judged = _run(db_url, _terminate_own_backend(db_url), now)
    clean, clean_left, clean_judged = _run(other_db_url, None, now)
    assert (left, clean_left) == (5, 5)
    assert (judged, clean_judged) == (10, 10)
    assert clean and len(faulty) == len(clean)
    # first/last seen are device times of the same readings in both runs
    assert [a[:3] + a[4:] for a in faulty] == [a[:3] + a[4:] for a in clean]


def test_a_standby_runner_takes_over_when_the_leaders_session_ends(db_url: str) -> None:
    """Two runners: the leader's server session is ended (its lock with it); the
    standby, waiting on a session of its own, leads within a retry, and readings
    queued meanwhile are judged once, by one of them."""
    register(db_url, REGISTRY)
    stop = threading.Event()
    runners = [RuleRunner(db_url, RunnerConfig(retry_s=0.2)) for _ in range(2)]
    threads = [threading.Thread(target=r.run, args=(stop,)) for r in runners]
    for t in threads:
        t.start()
    try:
        leader = wait_for(lambda: [r for r in runners if r.leading], what="a leader")[0]
        assert leader.conn is not None
        pid = leader.conn.info.backend_pid
        with psycopg.connect(db_url) as conn:  # a worker storing as the leader goes
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            now = datetime.now(UTC).replace(microsecond=0)
            new = insert_readings(conn, [Reading(now, MN, "a21026", 99.0)], [now])
            queue_for_rules(conn, new, [now] * len(new), {MN: now})
        wait_for(
            lambda: any(r.leading and r.conn and r.conn.info.backend_pid != pid for r in runners),
            timeout=10,
            what="a new leader",
        )
        wait_for(lambda: sum(r.judged for r in runners) == 1, what="the reading judged")
        wait_for(lambda: scalar(db_url, QUEUED_READINGS) == 0, what="the queue emptied")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert sum(r.judged for r in runners) == 1

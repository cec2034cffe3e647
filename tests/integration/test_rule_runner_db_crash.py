"""The rule runners across a database crash (``pg_ctl stop -m immediate`` on a cluster
of the test's own, restarted seconds later), with a writer queueing readings the whole
time as ingest does: every reading is judged exactly once (the runners' committed
counts add up to what was queued, by two competing runners, so nobody judged without
the lock), the alerts equal a fault-free run of the same data, and a runner leads
again within seconds of the server's return (printed)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from offsite.core.readings import Reading
from offsite.core.registry import registry_from_dict
from offsite.runner.rule_runner import RuleRunner, RunnerConfig
from offsite.store.migrate import migrate
from offsite.store.readings import insert_readings
from offsite.store.registry import save_registry
from offsite.store.rule_inbox import queue_for_rules
from tests.integration.helpers import (
    make_settings,
    publish_raw,
    running_ingest,
    topic_for,
    wait_for,
)
from tests.integration.own_postgres import OwnPostgres

pytestmark = pytest.mark.integration

MNS = [f"0600CRASH{i:015d}" for i in range(3)]
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E6",
                "name": "Crash Works",
                "points": [
                    {
                        "id": "E6-P1",
                        "kind": "flue_gas",
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": mn, "interval_s": 60} for mn in MNS],
                    }
                ],
            }
        ]
    }
)
MINUTES = 45
# alerts as judged from device time; 'offline' compares with the wall clock, not the data
ALERTS = """SELECT rule, mn, pollutant, count, first_seen, last_seen, worst_value
            FROM alerts WHERE rule <> 'offline' ORDER BY rule, mn, pollutant, first_seen"""


@pytest.fixture(scope="module")
def own_pg() -> Iterator[tuple[OwnPostgres, str]]:
    """The cluster, and a migrated template database with the registry."""
    pg = OwnPostgres()
    try:
        pg.start()
        url = pg.create_db("tpl")
        with psycopg.connect(url) as conn:
            migrate(conn)
            save_registry(conn, REGISTRY)
        yield pg, "tpl"
    finally:
        pg.close()


def _batches(t0: datetime) -> list[list[Reading]]:
    """One batch per device minute: a wandering SO2 that crosses the limit now and then."""
    return [
        [
            Reading(t0 + timedelta(minutes=m), mn, "a21026", 20.0 + ((m * 7 + i * 3) % 11) * 2.5)
            for i, mn in enumerate(MNS)
        ]
        for m in range(MINUTES)
    ]


class Writer(threading.Thread):
    """Stores and queues batches as an ingest worker does, retrying a batch until it
    commits (what the database never confirmed is sent again; stored twice is not)."""

    def __init__(self, url: str, batches: list[list[Reading]]) -> None:
        super().__init__(daemon=True)
        self.url, self.batches = url, batches
        self.committed = 0
        self.queued = 0  # readings new to the store, so queued

    def run(self) -> None:
        for batch in self.batches:
            while True:
                try:
                    with psycopg.connect(self.url, connect_timeout=2) as conn:
                        now = datetime.now(UTC)
                        new = insert_readings(conn, batch, [now] * len(batch))
                        queue_for_rules(conn, new, [now] * len(new), {r.mn: now for r in batch})
                    self.queued += len(new)
                    break
                except psycopg.Error:
                    time.sleep(0.2)
            self.committed += 1
            time.sleep(0.05)


def _judge_all(
    pg: OwnPostgres, template: str, crash: bool
) -> tuple[list[tuple], int, int, float | None]:
    """(alerts, readings queued, readings judged by all runners, seconds from the
    server's return to a runner leading again)."""
    url = pg.create_db(f"run_{uuid.uuid4().hex[:8]}", template)
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=MINUTES + 5)
    stop = threading.Event()
    runners = [RuleRunner(url, RunnerConfig(retry_s=0.5)) for _ in range(2)]
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in runners]
    for t in threads:
        t.start()
    writer = Writer(url, _batches(t0))
    back: float | None = None
    try:
        wait_for(lambda: any(r.leading for r in runners), what="a runner leading")
        writer.start()
        if crash:
            wait_for(lambda: writer.committed >= MINUTES // 3, what="a third stored")
            pg.crash()
            wait_for(lambda: not any(r.leading for r in runners), what="the lead lost")
            time.sleep(3)
            pg.start()
            up = time.monotonic()
            wait_for(lambda: any(r.leading for r in runners), what="a runner leading again")
            back = time.monotonic() - up
        writer.join(120)
        assert not writer.is_alive()
        wait_for(
            lambda: sum(r.judged for r in runners) >= writer.queued,
            timeout=60,
            what="everything judged",
        )
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    with psycopg.connect(url) as conn:
        alerts = conn.execute(ALERTS).fetchall()
        left = conn.execute("SELECT count(*) FROM rule_inbox").fetchone()
    assert left == (0,)
    return alerts, writer.queued, sum(r.judged for r in runners), back


def test_a_database_crash_loses_no_judging_and_judges_nothing_twice(
    own_pg: tuple[OwnPostgres, str],
) -> None:
    pg, template = own_pg
    clean, clean_queued, clean_judged, _ = _judge_all(pg, template, crash=False)
    faulty, queued, judged, back = _judge_all(pg, template, crash=True)
    print(f"\na runner led again {back:.2f} s after the server accepted connections")
    assert clean_queued == queued == MINUTES * len(MNS)
    assert clean_judged == clean_queued
    assert judged == queued  # once each: none lost, none judged twice
    assert clean and faulty == clean


def test_a_pool_serves_again_within_seconds_of_the_server_returning(
    own_pg: tuple[OwnPostgres, str],
) -> None:
    """psycopg_pool's reconnect delay doubles without a cap: with its defaults, a pool
    asked for connections through a 16 s outage served again only ~15 s after the
    server was back (its next try was due at 31 s). ``open_pool`` ends a reconnect
    round within RECONNECT_TIMEOUT_S; the next request starts a new one."""
    from offsite.store.pool import open_pool

    pg, _ = own_pg
    pool = open_pool(pg.url(), max_size=2, name="crash-test")
    try:
        pg.crash()
        until = time.monotonic() + 16
        while time.monotonic() < until:  # clients keep asking, as ingest's retries do
            try:
                with pool.connection(timeout=0.5) as conn:
                    conn.execute("SELECT 1")
            except Exception:
                pass
            time.sleep(0.2)
        pg.start()
        up = time.monotonic()
        # one request, allowed a few seconds: a pool that waits for its next doubled
        # try does not serve within them
        with pool.connection(timeout=8) as conn:
            conn.execute("SELECT 1")
        print(f"\nthe pool served again {time.monotonic() - up:.2f} s after the server's return")
    finally:
        pool.close()


def test_a_request_for_a_connection_does_not_wait_out_a_server_that_returned(
    own_pg: tuple[OwnPostgres, str],
) -> None:
    """A request made while the server is down waited its whole timeout (30 s by
    default) although the server came back meanwhile: the reconnect round it waited
    for had given up. ``open_pool`` waits CONNECTION_WAIT_S, and asking again (as
    ingest does) starts a new round."""
    from psycopg_pool import PoolTimeout

    from offsite.store.pool import open_pool

    pg, _ = own_pg
    pool = open_pool(pg.url(), max_size=2, name="crash-test-2")
    served: list[float] = []

    def ask_until_served() -> None:  # a writer retrying, with the pool's own wait
        while True:
            try:
                with pool.connection() as conn:
                    conn.execute("SELECT 1")
                served.append(time.monotonic())
                return
            except PoolTimeout:
                continue
            except psycopg.OperationalError:
                time.sleep(0.2)

    try:
        pg.crash()
        asker = threading.Thread(target=ask_until_served, daemon=True)
        asker.start()
        time.sleep(8)
        pg.start()
        up = time.monotonic()
        asker.join(10)
        assert served, "still waiting 10 s after the server returned"
        print(f"\nthe waiting request was served {served[0] - up:.2f} s after the return")
    finally:
        pool.close()


def _through_ingest(
    pg: OwnPostgres, template: str, mqtt_url: str, crash: bool, t0: datetime
) -> tuple[list[tuple], int, int, int]:
    """Publish the data over MQTT to an ingest worker (and its rule runner process) on
    the own cluster, crashing the server a third of the way in when asked; (alerts,
    readings stored, readings judged, rule runner restarts)."""
    url = pg.create_db(f"e2e_{uuid.uuid4().hex[:8]}", template)
    topic = f"offsite-test/{uuid.uuid4().hex[:10]}/devices/+/telemetry"
    messages = [
        (
            topic_for(topic, r.mn),
            json.dumps({"ts": r.ts.isoformat(), "values": {r.pollutant: r.value}}).encode(),
        )
        for batch in _batches(t0)
        for r in batch
    ]
    third = len(messages) // 3
    with running_ingest(make_settings(url, mqtt_url, topic)) as ingest:
        wait_for(lambda: ingest.rules_figures().leading, what="the runner leading")
        publish_raw(mqtt_url, messages[:third])
        if crash:
            wait_for(lambda: ingest.stats.readings_stored > 0, what="some stored")
            pg.crash()
            # published while the database is down: the broker has them, ingest waits
            publish_raw(mqtt_url, messages[third : 2 * third])
            time.sleep(3)
            pg.start()
        else:
            publish_raw(mqtt_url, messages[third : 2 * third])
        publish_raw(mqtt_url, messages[2 * third :])
        wait_for(
            lambda: ingest.stats.readings_stored == len(messages),
            timeout=90,
            what="every reading stored",
        )
        wait_for(
            lambda: ingest.rules_figures().judged >= len(messages),
            timeout=60,
            what="every reading judged",
        )
        figures = ingest.rules_figures()
    with psycopg.connect(url) as conn:
        alerts = conn.execute(ALERTS).fetchall()
        assert conn.execute("SELECT count(*) FROM rule_inbox").fetchone() == (0,)
    return alerts, ingest.stats.readings_stored, figures.judged, figures.restarts


def test_readings_published_through_a_database_crash_are_judged_once(
    own_pg: tuple[OwnPostgres, str], mqtt_url: str
) -> None:
    """End to end: MQTT → ingest → the worker's rule runner process, the server crashed
    and restarted while a third of the data is published. Stored = published, judged =
    stored (none twice), and the alerts equal a fault-free run's."""
    pg, template = own_pg
    # one device time for both runs: each computing its own from the clock, a run that
    # straddles a minute boundary shifted every alert by a minute
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=MINUTES + 5)
    clean, clean_stored, clean_judged, _ = _through_ingest(pg, template, mqtt_url, False, t0)
    faulty, stored, judged, restarts = _through_ingest(pg, template, mqtt_url, True, t0)
    assert clean_stored == stored == MINUTES * len(MNS)
    assert clean_judged == judged == stored
    assert restarts == 0  # the runner process rode the outage out: it reconnected
    assert clean and faulty == clean


def test_sigterm_while_the_database_is_down_ends_the_worker_within_the_grace_period(
    own_pg: tuple[OwnPostgres, str], mqtt_url: str
) -> None:
    """compose gives a worker 40 s between SIGTERM and SIGKILL. With the database down
    and a batch in hand, the worker stops anyway (the broker redelivers what it never
    acknowledged), exit status 0, and its runner with it."""
    import os
    import signal
    import subprocess
    import sys

    pg, template = own_pg
    url = pg.create_db(f"term_{uuid.uuid4().hex[:8]}", template)
    topic = f"offsite-test/{uuid.uuid4().hex[:10]}/devices/+/telemetry"
    env = {
        **os.environ,
        "OFFSITE_DATABASE_URL": url,
        "OFFSITE_MQTT_URL": mqtt_url,
        "OFFSITE_MQTT_TOPIC": topic,
        "OFFSITE_MQTT_CLIENT_ID": f"offsite-test-{uuid.uuid4().hex[:8]}",
        "OFFSITE_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "offsite.cli", "ingest", "--progress", "0.5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        while "messages" not in (line := proc.stdout.readline()):  # a progress line
            assert line, "ingest exited early"
        pg.crash()
        reading = {"ts": datetime.now(UTC).isoformat(), "values": {"a21026": 1.0}}
        publish_raw(mqtt_url, [(topic_for(topic, MNS[0]), json.dumps(reading).encode())])
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        termed = time.monotonic()
        out, err = proc.communicate(timeout=40)
        print(f"\nworker exited {time.monotonic() - termed:.1f} s after SIGTERM, database down")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        pg.start()
    assert proc.returncode == 0, err[-2000:]
    assert "ingest stopped:" in out
    assert "leaked semaphore" not in err

"""Sharded rule runners on a real PostgreSQL: the same alerts as one runner, whatever
happens to the runners. Readings are stored and queued as ingest does, by a writer
thread; runners are ``RuleRunner`` threads, and the one killed is a real process
(SIGKILL, so its connection and locks die as in production). Every reading is judged
exactly once: the queue ends empty, and the alerts (counts, first and last seen, worst
value: a reading judged twice would count twice, one lost would be missing) equal those
of a single runner with one shard over the same readings."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from psycopg import sql

from offsite.core.readings import Reading
from offsite.core.registry import registry_from_dict
from offsite.runner.rule_process import RuleProcess
from offsite.runner.rule_runner import RuleRunner, RunnerConfig, read_holders
from offsite.store.readings import insert_readings
from offsite.store.registry import save_registry
from offsite.store.rule_inbox import queue_for_rules, set_shard_count, shard_of
from tests.conftest import _with_dbname
from tests.integration.helpers import scalar, wait_for

pytestmark = pytest.mark.integration

MNS = [f"0700SHARD{i:015d}" for i in range(12)]
MINUTES = 150  # past flatline's warm-up (120 readings) before the flat stretch
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E7",
                "name": "Shard Works",
                "points": [
                    {
                        "id": "E7-P1",
                        "kind": "flue_gas",
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": mn, "interval_s": 60} for mn in MNS],
                    }
                ],
            }
        ]
    }
)
# alerts as judged from device time; 'offline' compares with the wall clock, not the data
ALERTS = """SELECT rule, mn, pollutant, count, first_seen, last_seen, worst_value
            FROM alerts WHERE rule <> 'offline' ORDER BY rule, mn, pollutant, first_seen"""


def _batches(t0: datetime) -> list[list[Reading]]:
    """One batch per minute of every device: a seeded random SO2 that crosses the limit
    now and then, and on every third device a flat stretch (windows and "N in a row"
    state). Not periodic: a repeating curve is what ``copy_paste`` looks for, and which
    of a series' fingerprints it keeps is staggered by a hash of its device and pollutant, so
    its first match may come a reading later in another engine (any rebuilt one too)."""
    rng = np.random.default_rng(3)
    values = np.round(rng.normal(28.0, 6.0, (MINUTES, len(MNS))), 1)
    out = []
    for m in range(MINUTES):
        batch = []
        for i, mn in enumerate(MNS):
            v = float(values[m, i])
            if i % 3 == 0 and 130 <= m < 142:
                v = 24.0
            batch.append(Reading(t0 + timedelta(minutes=m), mn, "a21026", v))
        out.append(batch)
    return out


class Writer(threading.Thread):
    """Stores and queues batches as an ingest worker does (queue rows split by the
    shard count in the database at that moment)."""

    def __init__(self, url: str, batches: list[list[Reading]], pause_s: float = 0.03) -> None:
        super().__init__(daemon=True)
        self.url, self.batches, self.pause_s = url, batches, pause_s
        self.committed = 0
        self.queued = 0

    def run(self) -> None:
        with psycopg.connect(self.url) as conn:
            for batch in self.batches:
                with conn.transaction():
                    now = datetime.now(UTC)
                    new = insert_readings(conn, batch, [now] * len(batch))
                    queue_for_rules(conn, new, [now] * len(new), {r.mn: now for r in batch})
                self.queued += len(new)
                self.committed += 1
                time.sleep(self.pause_s)


@contextmanager
def runners(url: str, shards: int, n: int) -> Iterator[list[RuleRunner]]:
    """``n`` runner threads with ``shards`` shards, stopped (judging what is queued) on exit."""
    stop = threading.Event()
    rs = [RuleRunner(url, RunnerConfig(retry_s=0.2, shards=shards)) for _ in range(n)]
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in rs]
    for t in threads:
        t.start()
    try:
        yield rs
    finally:
        stop.set()
        for t in threads:
            t.join(30)


# one start for every run of a test session: the runs compared must judge the very same
# readings (a minute boundary passed between two runs shifted every alert by a minute)
T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=MINUTES + 5)


def _prepare(url: str) -> list[list[Reading]]:
    with psycopg.connect(url) as conn:
        save_registry(conn, REGISTRY)
    return _batches(T0)


def _finish(url: str) -> list[tuple]:
    wait_for(
        lambda: scalar(url, "SELECT count(*) FROM rule_inbox") == 0,
        timeout=60,
        what="everything queued judged",
    )
    with psycopg.connect(url) as conn:
        return conn.execute(ALERTS).fetchall()


def _reference(url: str) -> list[tuple]:
    """One runner, one shard, the readings written while it runs."""
    batches = _prepare(url)
    with runners(url, 1, 1) as (r,):
        wait_for(lambda: r.leading, what="the runner leading")
        w = Writer(url, batches)
        w.start()
        w.join(120)
        alerts = _finish(url)
        wait_for(lambda: r.judged == w.queued, timeout=10, what="the runner's count")
    return alerts


@pytest.fixture
def fresh(admin_db_url: str, template_db: str) -> Iterator[Callable[[], str]]:
    """Databases of the test's own from the migrated template (several per test)."""
    names: list[str] = []

    def make() -> str:
        names.append(f"offsite_t_{uuid.uuid4().hex[:12]}")
        with psycopg.connect(admin_db_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(names[-1]), sql.Identifier(template_db)
                )
            )
        return _with_dbname(admin_db_url, names[-1])

    yield make
    with psycopg.connect(admin_db_url, autocommit=True) as conn:
        for n in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(n))
            )


@pytest.fixture
def reference(db_url: str) -> list[tuple]:
    alerts = _reference(db_url)
    assert {a[0] for a in alerts} >= {"exceedance", "flatline"}
    return alerts


def test_devices_spread_over_both_shards() -> None:
    assert {shard_of(mn, 2) for mn in MNS} == {0, 1}
    assert {shard_of(mn, 3) for mn in MNS} == {0, 1, 2}


def test_two_runners_lead_one_shard_each_and_judge_as_one_runner(
    fresh: Callable[[], str], reference: list[tuple]
) -> None:
    url = fresh()
    batches = _prepare(url)
    with runners(url, 2, 2) as rs:
        wait_for(lambda: all(len(r.shards) == 1 for r in rs), what="one shard each")
        assert {k for r in rs for k in r.shards} == {0, 1}
        w = Writer(url, batches)
        w.start()
        w.join(120)
        alerts = _finish(url)
        wait_for(lambda: sum(r.judged for r in rs) == w.queued, timeout=10, what="counts")
        assert all(r.judged > 0 for r in rs)
        assert sum(r.late for r in rs) == 0
    assert alerts == reference


@pytest.mark.parametrize("shards", [2, 3])
def test_a_killed_runners_shard_is_taken_over_within_seconds(
    fresh: Callable[[], str], reference: list[tuple], shards: int
) -> None:
    """``shards`` runners lead one shard each; one (a process) is SIGKILLed mid-stream."""
    url = fresh()
    batches = _prepare(url)
    victim = RuleProcess(url, RunnerConfig(retry_s=0.2, shards=shards))
    victim.start()
    try:
        with runners(url, shards, shards - 1) as survivors:
            conns = [wait_for(lambda r=r: r.conn, what="connected") for r in survivors]
            ours = {c.info.backend_pid for c in conns}

            def one_each() -> bool:
                with psycopg.connect(url) as c:
                    h = read_holders(c)
                return any(pid not in ours for _, _, pid in h.held) and all(
                    len(r.shards) == 1 for r in survivors
                )

            wait_for(one_each, timeout=30, what="one shard each")
            w = Writer(url, batches)
            w.start()
            wait_for(lambda: w.committed >= MINUTES // 3, what="a third stored")
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            killed = time.monotonic()
            wait_for(
                lambda: sum(len(r.shards) for r in survivors) == shards,
                timeout=15,
                what="the shard taken over",
            )
            print(f"shard taken over {time.monotonic() - killed:.2f} s after the SIGKILL")
            w.join(120)
            alerts = _finish(url)
            assert sum(r.late for r in survivors) == 0
    finally:
        victim.stop(5)
    assert alerts == reference


def test_a_new_shard_count_judges_rows_queued_by_the_old_one_once(
    fresh: Callable[[], str], reference: list[tuple]
) -> None:
    """Stop all, restart with another count: rows queued by 1 shard (judged in part
    before the stop, the rest left queued) and by 3 (a worker that read a count nobody
    leads by) are all judged, once, by 2 runners of 2 shards."""
    url = fresh()
    batches = _prepare(url)
    third = MINUTES // 3
    with runners(url, 1, 1) as (r,):
        wait_for(lambda: r.leading, what="the runner leading")
        w = Writer(url, batches[:third])
        w.start()
        w.join(60)
        wait_for(lambda: r.judged == w.queued, what="the first third judged")
    Writer(url, batches[third : 2 * third], pause_s=0).run()  # queued by 1, nobody judging
    with psycopg.connect(url, autocommit=True) as conn:
        set_shard_count(conn, 3)
    Writer(url, batches[2 * third : 2 * third + 5], pause_s=0).run()  # queued by 3
    with psycopg.connect(url) as conn:
        counts = dict(conn.execute("SELECT shards, count(*) FROM rule_inbox GROUP BY 1"))
    assert set(counts) == {1, 3}
    with runners(url, 2, 2) as rs:
        wait_for(lambda: all(len(x.shards) == 1 for x in rs), what="one shard each")
        assert scalar(url, "SELECT count FROM rule_shards") == 2
        w = Writer(url, batches[2 * third + 5 :])
        w.start()
        w.join(120)
        alerts = _finish(url)
        assert sum(x.late for x in rs) == 0
    assert alerts == reference


def test_a_runner_with_another_shard_count_waits_until_the_others_stop(
    fresh: Callable[[], str],
) -> None:
    url = fresh()
    _prepare(url)
    with ExitStack() as two_running:
        (two,) = two_running.enter_context(runners(url, 2, 1))
        wait_for(lambda: len(two.shards) == 2, what="the 2-shard runner leading both")
        with runners(url, 3, 1) as (three,):
            time.sleep(1.0)  # five of its tries
            assert not three.shards
            two_running.close()  # stop the runners of the other count
            wait_for(lambda: len(three.shards) == 3, timeout=10, what="all three led")
            assert scalar(url, "SELECT count FROM rule_shards") == 3

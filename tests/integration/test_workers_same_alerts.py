"""Scale-out keeps the rules right: the same seeded input through 1 and through 3 ingest
workers on a shared subscription raises exactly the same alerts, because every worker
only queues what it stores and one rule runner judges the queue in device-time order."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from offsite.mosquitto import LOSSLESS, OwnMosquitto
from offsite.simulators.faults import FaultKind
from offsite.simulators.publisher import payload_json
from offsite.simulators.scenarios import build_fleet
from offsite.store.rule_inbox import shard_of
from tests import services
from tests.conftest import _with_dbname
from tests.integration.helpers import (
    make_settings,
    publish_raw,
    register,
    running_ingest,
    scalar,
    wait_for,
)

pytestmark = pytest.mark.integration

TICKS = 150  # 2.5 h of 1-minute data


@pytest.fixture
def two_dbs(admin_db_url: str, template_db: str) -> Iterator[tuple[str, str]]:
    names = [f"offsite_t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    with psycopg.connect(admin_db_url, autocommit=True) as conn:
        for n in names:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(n), sql.Identifier(template_db)
                )
            )
    try:
        yield _with_dbname(admin_db_url, names[0]), _with_dbname(admin_db_url, names[1])
    finally:
        with psycopg.connect(admin_db_url, autocommit=True) as conn:
            for n in names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(n))
                )


# the run is minutes long: flatline may fire without its packaged warm-up (120 readings),
# which is not what this test is about (the same alerts from 1 and N workers)
RULES = """base = "default"
[offline]
enabled = false
[[override]]
rule = "flatline"
device_type = "flue_gas"
warm_up = 0
[[override]]
rule = "flatline"
device_type = "wastewater"
warm_up = 0
"""


def _alerts(db_url: str) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute("""SELECT rule, mn, pollutant, first_seen, last_seen, count, state,
                                      severity, reopened
                               FROM alerts ORDER BY rule, mn, pollutant, first_seen""").fetchall()


def _run(
    db_url: str, mqtt_url: str, workers: int, tmp_path: Path, start: datetime, shards: int = 1
) -> list[tuple]:
    fleet = build_fleet(
        8,
        seed=5,
        faults=[FaultKind.EXCEEDANCE, FaultKind.FLATLINE, FaultKind.SPIKE, FaultKind.DRIFT],
        start=start,
        rate_s=60,
        fault_after_s=3600,
        fault_duration_s=1800,
    )
    register(db_url, fleet.registry)
    rules = tmp_path / f"rules-{workers}.toml"  # publishing is bursty: not "offline"
    rules.write_text(RULES)
    topic = f"offsite-test/{uuid.uuid4().hex[:10]}/devices/+/telemetry"
    group = f"g{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        services = [
            stack.enter_context(
                running_ingest(
                    make_settings(
                        db_url,
                        mqtt_url,
                        topic,
                        mqtt_shared_group=group,
                        rules_file=rules,
                        # three workers in one Python process, on a machine busy with the
                        # rest of the suite, share one GIL: a worker's MQTT thread may stamp
                        # a message well after the broker sent it (separate processes need less).
                        rule_reorder_ms=2000,
                        rule_shards=shards,
                    )
                )
            )
            for _ in range(workers)
        ]
        if shards > 1:  # every worker's runner leads its shard before anything is sent
            assert {shard_of(d.mn, shards) for d in fleet.registry.devices} == set(range(shards))
            wait_for(
                lambda: all(s.rules_figures().leading for s in services),
                what="every runner leading a shard",
            )
        expected = 0
        for ts in fleet.timestamps(TICKS * 60):
            msgs = fleet.messages(ts)
            expected += sum(len(m.values) for m in msgs)
            publish_raw(
                mqtt_url,
                [(topic.replace("+", m.mn), payload_json(ts, m.values, m.flags)) for m in msgs],
            )
            time.sleep(0.01)
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM readings") == expected,
            timeout=120,
            what=f"{expected} readings stored",
        )
        if workers > 1:  # the subscription was really shared
            assert sum(1 for s in services if s.stats.messages > 0) == workers
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM rule_inbox") == 0,
            timeout=60,
            what="the rule runner judging everything queued",
        )
        # every reading judged once (the runner's counters reach its worker within
        # REPORT_S), none after a newer one of its series
        wait_for(
            lambda: sum(s.rules_figures().judged for s in services) == expected,
            timeout=5,
            what="the runner's figures",
        )
        leader = [s.rules_figures() for s in services if s.rules_figures().judged]
        if shards == 1:
            assert [(r.judged, r.late) for r in leader] == [(expected, 0)]
        else:  # each runner judged its shard's devices, and nothing late
            assert len(leader) == workers and sum(r.late for r in leader) == 0
    return _alerts(db_url)


@pytest.fixture
def lossless_broker(tmp_path: Path) -> Iterator[str]:
    """The broker as deployed (offsite/mosquitto.py LOSSLESS: a wide in-flight window). With
    the default window of 20, a worker whose window is full gets its next message queued
    while the next one of the same device goes to another worker: receive order across
    workers then no longer follows publish order (see the README)."""
    if services.mosquitto_binary() is None:
        if services.required():
            pytest.fail("OFFSITE_TEST_REQUIRE_SERVICES=1 but no mosquitto binary was found")
        pytest.skip("needs the mosquitto binary (a broker configured as deployed)")
    broker = OwnMosquitto(tmp_path / "broker", LOSSLESS, binary=services.mosquitto_binary())
    broker.start()
    yield broker.url
    broker.stop()


def test_one_and_three_workers_raise_the_same_alerts(
    two_dbs: tuple[str, str], lossless_broker: str, tmp_path: Path
) -> None:
    mqtt_url = lossless_broker
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    one = _run(two_dbs[0], mqtt_url, 1, tmp_path, start)
    three = _run(two_dbs[1], mqtt_url, 3, tmp_path, start)
    assert {a[0] for a in one} >= {"exceedance", "flatline", "spike"}
    assert one == three


def test_two_workers_on_two_rule_shards_raise_the_alerts_of_one(
    two_dbs: tuple[str, str], lossless_broker: str, tmp_path: Path
) -> None:
    """Each worker's runner leads one shard (OFFSITE_RULE_SHARDS=2): judging is split by
    device, and the alerts are those of one worker with one runner."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    one = _run(two_dbs[0], lossless_broker, 1, tmp_path, start)
    two = _run(two_dbs[1], lossless_broker, 2, tmp_path, start, shards=2)
    assert {a[0] for a in one} >= {"exceedance", "flatline", "spike"}
    assert one == two

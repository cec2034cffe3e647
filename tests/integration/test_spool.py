"""The disk spool against real faults: a PostgreSQL cluster of the test's own crashed
with ``pg_ctl stop -m immediate`` while a publisher sends QoS 1, then the test's own
Mosquitto SIGKILLed while it would hold the backlog, and ingest kill -9'd with the
spool full of it. Everything the broker acknowledged to the publisher is stored once.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from offsite.core.registry import registry_from_dict
from offsite.faults import POLLUTANTS, IngestProcess, Stream
from offsite.ingest.spool import decode_records
from offsite.mosquitto import LOSSLESS, OwnMosquitto
from offsite.pgcluster import OwnPostgres, pg_bin
from offsite.store.migrate import migrate
from offsite.store.registry import save_registry
from tests.integration.helpers import wait_for
from tests.services import mosquitto_binary

pytestmark = pytest.mark.skipif(
    mosquitto_binary() is None or pg_bin() is None,
    reason="needs the mosquitto binary and PostgreSQL's initdb/pg_ctl",
)
TOPIC = "spool/devices/+/telemetry"
MNS = [f"5A0000000000000000{i:06X}" for i in range(20)]


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[OwnPostgres]:
    cluster = OwnPostgres(tmp_path / "pg")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.discard()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[OwnMosquitto]:
    # autosave far away: a SIGKILL loses everything the broker accepted since start
    b = OwnMosquitto(tmp_path / "mosquitto", LOSSLESS + "autosave_interval 3600\n")
    b.start()
    try:
        yield b
    finally:
        b.discard()


def _registry() -> object:
    return registry_from_dict(
        {
            "enterprises": [
                {
                    "id": "SP",
                    "name": "Spool Works",
                    "points": [
                        {
                            "id": "SP-P1",
                            "kind": "flue_gas",
                            "limits": {"a21026": 1e9},
                            "devices": [{"mn": mn, "interval_s": 1} for mn in MNS],
                        }
                    ],
                }
            ]
        }
    )


def _counts(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (mn, pollutant, ts)),"
            " (SELECT count(*) FROM dead_letters) FROM readings"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def _spooled(spool_dir: Path) -> int:
    """Records on disk in every segment (read as the drainer would)."""
    return sum(len(decode_records(seg.read_bytes()).records) for seg in spool_dir.rglob("*.seg"))


def test_acknowledged_means_stored_through_db_crash_broker_sigkill_and_ingest_kill9(
    tmp_path: Path, pg: OwnPostgres, broker: OwnMosquitto
) -> None:
    db = pg.url
    with psycopg.connect(db) as conn:
        migrate(conn)
        save_registry(conn, _registry())  # type: ignore[arg-type]
    spool_dir = tmp_path / "spool"
    rules = tmp_path / "rules.toml"
    rules.write_text('base = "default"\n[offline]\nenabled = false\n')
    ingest = IngestProcess(
        {
            "OFFSITE_DATABASE_URL": db,
            "OFFSITE_MQTT_URL": broker.url,
            "OFFSITE_MQTT_TOPIC": TOPIC,
            "OFFSITE_MQTT_CLIENT_ID": f"spool-test-{uuid.uuid4().hex[:6]}",
            "OFFSITE_SPOOL_DIR": str(spool_dir),
            "OFFSITE_RULES_RUNNER": "external",
            "OFFSITE_RULES_FILE": str(rules),
            "OFFSITE_BATCH_MAX_DELAY_MS": "50",
        },
        tmp_path / "ingest.log",
    )
    template = TOPIC.replace("+", "{mn}")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    try:
        ingest.start()
        wait_for(lambda: "MQTT subscribed" in ingest.output(), 60, 0.2, "ingest to subscribe")
        # 1. the database up: stored directly
        before = Stream(broker.url, template, MNS, count=400, rate=400, start=t0).start()
        assert before.wait(60)
        before.close()
        wait_for(lambda: _counts(db)[0] == before.readings, 60, 0.2, "the first stream stored")

        # 2. the database crashes; the publisher goes on; ingest spools and acknowledges
        pg.crash()
        during = Stream(
            broker.url, template, MNS, count=1000, rate=500, start=t0 + timedelta(minutes=30)
        ).start()
        assert during.wait(60), "the broker should acknowledge while the database is away"
        during.close()
        wait_for(
            lambda: _spooled(spool_dir) >= during.count,
            60,
            0.2,
            "every message of the outage in the spool",
        )
        assert "keeping messages in the spool" in ingest.output()

        # 3. the broker dies holding what it would have held (nothing saved since start),
        #    and ingest dies with a full spool
        broker.kill9()
        ingest.kill9()

        # 4. everything back: the spool is replayed at start, once
        pg.start()
        broker.start()
        ingest.start()
        expected = before.readings + during.readings
        wait_for(lambda: _counts(db)[0] >= expected, 90, 0.25, "the spool drained")
        stored, distinct, dead = _counts(db)
        assert (stored, distinct, dead) == (expected, expected, 0)
        with psycopg.connect(db) as conn:
            marks = conn.execute("SELECT count(*) FROM spool_marks").fetchone()
        assert marks is not None and marks[0] == 1
        wait_for(lambda: _spooled(spool_dir) == 0, 30, 0.2, "drained segments removed")
    finally:
        ingest.stop()
        print(ingest.output()[-8000:])  # shown when the test fails
    assert len(POLLUTANTS) * 1400 == _counts(db)[0]
    shutil.rmtree(spool_dir, ignore_errors=True)


def test_a_spool_left_by_a_worker_that_is_gone_is_stored_and_removed(
    tmp_path: Path, db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    """A replica replaced under a new name leaves its spool behind: the next worker to
    start stores it (once) and removes it."""
    from offsite.core.readings import InboundMessage
    from offsite.ingest.spool import Spool
    from tests.integration.helpers import make_settings, register, running_ingest, scalar

    register(db_url, _registry())  # type: ignore[arg-type]
    spool_dir = tmp_path / "spool"
    left = Spool(spool_dir / "replica-that-is-gone", 10**7)
    left.open()
    left.resume(None)
    stream = Stream("mqtt://127.0.0.1:1", unique_topic.replace("+", "{mn}"), MNS, 100, 1.0)
    at = datetime.now(UTC)
    left.append(
        [InboundMessage(*stream.message(i), at, 0, 1) for i in range(100)]  # type: ignore[misc]
    )
    left.close()
    settings = make_settings(db_url, mqtt_url, unique_topic, spool_dir=spool_dir)
    with running_ingest(settings):
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM readings") >= 100 * len(POLLUTANTS),
            30,
            what="the orphan's messages stored",
        )
        wait_for(lambda: not (spool_dir / "replica-that-is-gone").exists(), 10, what="removed")
    assert scalar(db_url, "SELECT count(*) FROM readings") == 100 * len(POLLUTANTS)
    assert scalar(db_url, "SELECT count(*) FROM dead_letters") == 0

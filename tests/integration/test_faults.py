"""Lossless ingest under real faults, proven by counts: kill -9 of the ingest process,
a 60 s database outage (a TCP proxy cuts the link), a broker restart — each in the
middle of a stream. Every published reading must be stored exactly once.

These need Mosquitto itself (a private instance configured for lossless ingest, so the
machine's broker is left alone); they are skipped with that reason only where there is
no mosquitto binary, and never in CI."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from offsite.core.registry import registry_from_dict
from offsite.faultproxy import FaultProxy, proxied_db_url
from offsite.faults import POLLUTANTS, IngestProcess, Stream
from offsite.mosquitto import LOSSLESS, OwnMosquitto
from tests import services
from tests.integration.helpers import register, scalar, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.mosquitto]

MNS = [f"0F0000A8900016F00016{i:04X}" for i in range(4)]
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "EF",
                "name": "Fault Test Works",
                "points": [
                    {
                        "id": "EF-P1",
                        "kind": "flue_gas",
                        "limits": {"a21026": 1000.0},
                        "devices": [{"mn": mn, "interval_s": 1} for mn in MNS],
                    }
                ],
            }
        ]
    }
)
TOPIC = "faults/devices/+/telemetry"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[OwnMosquitto]:
    binary = services.mosquitto_binary()
    if binary is None:
        if services.required():
            pytest.fail("OFFSITE_TEST_REQUIRE_SERVICES=1 but no mosquitto binary was found")
        pytest.skip(
            "needs the mosquitto binary (a private broker configured for lossless "
            "ingest); set OFFSITE_TEST_MOSQUITTO or install mosquitto"
        )
    b = OwnMosquitto(tmp_path / "mosquitto", LOSSLESS, binary=binary)
    b.start()
    yield b
    b.stop()


def _ingest(tmp_path: Path, db_url: str, mqtt_url: str, **extra: str) -> IngestProcess:
    rules = tmp_path / "rules.toml"  # the publisher pauses on purpose: not "offline"
    rules.write_text('base = "default"\n[offline]\nenabled = false\n')
    env = {
        "OFFSITE_DATABASE_URL": db_url,
        "OFFSITE_MQTT_URL": mqtt_url,
        "OFFSITE_MQTT_TOPIC": TOPIC,
        "OFFSITE_MQTT_CLIENT_ID": "offsite-fault-test",
        "OFFSITE_RULES_FILE": str(rules),
        **extra,
    }
    return IngestProcess(env, tmp_path / "ingest.log")


def _start(ingest: IngestProcess, db_url: str) -> None:
    """Start and wait for its first heartbeat: its MQTT session exists from then on."""
    ingest.start()
    wait_for(
        lambda: scalar(db_url, "SELECT count(*) FROM ingest_workers"),
        timeout=30,
        what=f"ingest up\n{ingest.output()}",
    )


def _stored(db_url: str) -> tuple[int, int]:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (mn, pollutant, ts)) FROM readings"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _report(name: str, stream: Stream, db_url: str, catch_up_s: float) -> None:
    rows, distinct = _stored(db_url)
    print(
        f"\n[{name}] published {stream.acked} messages = {stream.readings} readings; "
        f"stored {rows} rows ({distinct} distinct); duplicates {rows - distinct}; "
        f"backlog of the fault stored {catch_up_s:.1f} s after it ended"
    )


def _until_stored(db_url: str, expected: int, ingest: IngestProcess, timeout: float) -> float:
    t0 = time.monotonic()
    wait_for(
        lambda: _stored(db_url)[0] >= expected,
        timeout=timeout,
        what=f"{expected} readings stored\n{ingest.output()[-3000:]}",
    )
    return time.monotonic() - t0


def test_kill_9_mid_stream_then_restart(db_url: str, broker: OwnMosquitto, tmp_path: Path) -> None:
    register(db_url, REGISTRY)
    ingest = _ingest(tmp_path, db_url, broker.url)
    _start(ingest, db_url)
    stream = Stream(broker.url, TOPIC.replace("+", "{mn}"), MNS, count=4000, rate=500).start()
    try:
        wait_for(lambda: _stored(db_url)[0] > 2000, timeout=30, what="stream under way")
        ingest.kill9()
        killed_at = _stored(db_url)[0]
        time.sleep(1.0)
        backlog = stream.readings  # published up to the restart
        ingest.start()
        catch_up = _until_stored(db_url, backlog, ingest, 60)
        assert stream.wait(60), f"broker acknowledged {stream.acked} of 4000"
        _until_stored(db_url, stream.readings, ingest, 60)
        time.sleep(1.0)  # anything extra (a duplicate) would have arrived by now
    finally:
        stream.close()
        assert ingest.stop() == 0, ingest.output()[-3000:]
    _report("kill -9", stream, db_url, catch_up)
    rows, distinct = _stored(db_url)
    assert 0 < killed_at < stream.readings
    assert rows == distinct == stream.readings == 4000 * len(POLLUTANTS)


def test_database_outage_of_60_s_mid_stream(
    db_url: str, broker: OwnMosquitto, tmp_path: Path
) -> None:
    register(db_url, REGISTRY)
    template, host, port = proxied_db_url(db_url)
    proxy = FaultProxy(host, port).start()
    ingest = _ingest(
        tmp_path, template.format(port=proxy.port), broker.url, OFFSITE_QUEUE_MAX_MESSAGES="2000"
    )
    _start(ingest, db_url)
    stream = Stream(broker.url, TOPIC.replace("+", "{mn}"), MNS, count=8000, rate=100).start()
    rss: list[float] = []
    try:
        wait_for(lambda: _stored(db_url)[0] > 1000, timeout=30, what="stream under way")
        proxy.cut()
        before = _stored(db_url)[0]
        t_cut = time.monotonic()
        while time.monotonic() - t_cut < 60:
            rss.append(ingest.rss_mb())
            assert ingest.running, ingest.output()[-3000:]
            time.sleep(1.0)
        during = _stored(db_url)[0]
        backlog = stream.readings  # published up to the end of the outage
        proxy.restore()
        catch_up = _until_stored(db_url, backlog, ingest, 90)
        assert stream.wait(60)
        _until_stored(db_url, stream.readings, ingest, 90)
        time.sleep(1.0)
    finally:
        stream.close()
        assert ingest.stop() == 0, ingest.output()[-3000:]
        proxy.stop()
    _report("database outage 60 s", stream, db_url, catch_up)
    print(
        f"[database outage 60 s] ingest RSS during the outage: {min(rss):.1f} → "
        f"{max(rss):.1f} MB; {proxy.refused} connection attempts refused"
    )
    rows, distinct = _stored(db_url)
    assert during == before  # nothing was written through a cut link
    assert rows == distinct == stream.readings == 8000 * len(POLLUTANTS)
    assert max(rss) - rss[0] < 40, rss  # the backlog stayed with the broker
    assert "database unavailable" in ingest.output()


def test_broker_restart_mid_stream(db_url: str, broker: OwnMosquitto, tmp_path: Path) -> None:
    register(db_url, REGISTRY)
    ingest = _ingest(tmp_path, db_url, broker.url)
    _start(ingest, db_url)
    stream = Stream(broker.url, TOPIC.replace("+", "{mn}"), MNS, count=3000, rate=300).start()
    try:
        wait_for(lambda: _stored(db_url)[0] > 1500, timeout=30, what="stream under way")
        broker.stop()  # SIGTERM: Mosquitto saves its persistence file
        time.sleep(2.0)
        broker.start()
        backlog = stream.readings
        catch_up = _until_stored(db_url, backlog, ingest, 60)
        assert stream.wait(90), f"broker acknowledged {stream.acked} of 3000"
        _until_stored(db_url, stream.readings, ingest, 60)
        time.sleep(1.0)
    finally:
        stream.close()
        assert ingest.stop() == 0, ingest.output()[-3000:]
    _report("broker restart", stream, db_url, catch_up)
    rows, distinct = _stored(db_url)
    assert rows == distinct == stream.readings == 3000 * len(POLLUTANTS)


def test_soak_command_balances_its_books() -> None:
    """``offsite soak`` end to end, short: the clean run and two real faults (a PostgreSQL
    crash, kill -9 of one shared worker), each stored exactly once; the table says how
    the alerts compare with the clean run."""
    from offsite.mosquitto import mosquitto_binary
    from offsite.pgcluster import pg_bin

    if pg_bin() is None or mosquitto_binary() is None:
        pytest.skip("needs PostgreSQL's initdb and pg_ctl (the soak crashes a cluster)")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "offsite.cli",
            "soak",
            "--duration",
            "15",
            "--rate",
            "50",
            "--devices",
            "5",
            "--outage",
            "5",
            "--scenarios",
            "clean,pg_crash,worker_kill9",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode in (0, 1), res.stdout + res.stderr
    rows = {
        line.split()[0]: line.split()
        for line in res.stdout.splitlines()
        if line.split()
        and line.split()[0] in ("clean", "pg_crash", "worker_kill9")
        and len(line.split()) >= 8
        and line.split()[1].isdigit()
    }
    assert set(rows) == {"clean", "pg_crash", "worker_kill9"}, res.stdout
    for name, cols in rows.items():
        expected, stored, missing, twice, dead = (int(c) for c in cols[1:6])
        assert expected == stored == 15 * 50 * len(POLLUTANTS), (name, res.stdout)
        assert (missing, twice, dead) == (0, 0, 0), (name, res.stdout)
    # alerts are compared with the clean run in every row; not yet asserted equal: on this
    # branch copy_paste still depends on batch boundaries and a database crash can make
    # the runner skip readings (issue 18, items 6 and 1, fixed on the runner's branch)
    assert rows["clean"][7] == "-"
    assert all(rows[n][7].isdigit() for n in ("pg_crash", "worker_kill9")), res.stdout

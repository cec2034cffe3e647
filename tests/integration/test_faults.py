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
CLIENT_ID = "offsite-fault-test"


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
    # every packet logged: a failure shows where a missing message went (see _trail)
    b = OwnMosquitto(tmp_path / "mosquitto", LOSSLESS + "log_type all\n", binary=binary)
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
        "OFFSITE_MQTT_CLIENT_ID": CLIENT_ID,
        "OFFSITE_RULES_FILE": str(rules),
        **extra,
    }
    return IngestProcess(env, tmp_path / "ingest.log")


def _subscribed(db_url: str) -> bool:
    """Has ingest's subscription been granted (its heartbeat says so)? Only from then on
    does the broker keep the stream's messages for it: one published to a subscription
    that does not exist yet is acknowledged to the publisher and dropped. A heartbeat alone
    is not enough: the pipeline beats before the subscriber has even connected."""
    return bool(
        scalar(
            db_url,
            "SELECT count(*) FROM ingest_workers WHERE worker = %s AND broker_connected",
            CLIENT_ID,
        )
    )


def _start(ingest: IngestProcess, db_url: str) -> None:
    """Start and wait until its subscription exists (its MQTT session keeps the stream's
    messages from then on)."""
    ingest.start()
    try:
        wait_for(lambda: _subscribed(db_url), timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: ingest subscribed\n{ingest.output()[-3000:]}") from None


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


def _missing(db_url: str, stream: Stream) -> list[int]:
    """The sequence numbers of the published messages with fewer readings stored than
    they carry (each message has its own device and device time)."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT mn, ts, count(*) FROM readings GROUP BY mn, ts").fetchall()
    complete = {stream.sequence(mn, ts) for mn, ts, n in rows if n >= len(POLLUTANTS)}
    return [i for i in range(stream.sent) if i not in complete]


def _trail(log: str, publisher: str, subscriber: str, mid: int) -> list[str]:
    """The broker log's lines about one published message (``log_type all``): received
    from the publisher with packet id ``mid``, sent to the subscriber with its own packet
    id, redelivered, acknowledged; with the broker's restarts for reference."""
    lines = log.splitlines()
    wanted: set[int] = set()
    out_mids: set[int] = set()
    for n, line in enumerate(lines):
        if f"Received PUBLISH from {publisher} (" in line and f", m{mid}, " in line:
            wanted.add(n)
            if n + 1 < len(lines) and f"Sending PUBLISH to {subscriber} (" in lines[n + 1]:
                out_mids.add(int(lines[n + 1].split(", m", 1)[1].split(",", 1)[0]))
    for n, line in enumerate(lines):
        if "mosquitto version" in line or f"as {subscriber} " in line:
            wanted.add(n)
        for out in out_mids:
            if (f"Sending PUBLISH to {subscriber} (" in line and f", m{out}, " in line) or (
                f"from {subscriber} (Mid: {out}," in line
            ):
                wanted.add(n)
    return [f"{n + 1}: {lines[n]}" for n in sorted(wanted)]


def _diagnosis(
    db_url: str, stream: Stream, ingest: IngestProcess, broker: OwnMosquitto | None
) -> str:
    """What to print when readings are missing: which messages (their sequence numbers,
    against when the fault happened), their trail through the broker, ingest's output —
    so a failure says where the messages went."""
    missing = _missing(db_url, stream)
    dead = scalar(db_url, "SELECT count(*) FROM dead_letters")
    shown = ", ".join(str(i) for i in missing[:200])
    text = (
        f"published {stream.sent}, acknowledged by the broker {stream.acked}; dead letters "
        f"{dead}; {len(missing)} messages missing: [{shown}"
        f"{', ...' if len(missing) > 200 else ''}]; stream (event, sent, acked): "
        f"{stream.marks}\n--- ingest ---\n{ingest.output()[-4000:]}"
    )
    if broker is not None:
        log = broker.log()
        for i in missing[:5]:
            trail = _trail(log, stream.client_id, CLIENT_ID, stream.mids[i])
            text += f"\n--- broker log about message {i} (mid {stream.mids[i]}) ---\n"
            text += "\n".join(trail[-60:])
        text += f"\n--- broker log (end) ---\n{log[-3000:]}"
    return text


def _until_stored(
    db_url: str,
    expected: int,
    ingest: IngestProcess,
    timeout: float,
    stream: Stream | None = None,
    broker: OwnMosquitto | None = None,
) -> float:
    t0 = time.monotonic()
    try:
        wait_for(lambda: _stored(db_url)[0] >= expected, timeout=timeout)
    except AssertionError as exc:
        detail = (
            _diagnosis(db_url, stream, ingest, broker)
            if stream is not None
            else ingest.output()[-3000:]
        )
        raise AssertionError(f"{exc}: {expected} readings stored\n{detail}") from None
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
        catch_up = _until_stored(db_url, backlog, ingest, 60, stream, broker)
        assert stream.wait(60), f"broker acknowledged {stream.acked} of 4000"
        _until_stored(db_url, stream.readings, ingest, 60, stream, broker)
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
        catch_up = _until_stored(db_url, backlog, ingest, 90, stream, broker)
        assert stream.wait(60)
        _until_stored(db_url, stream.readings, ingest, 90, stream, broker)
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


def test_ready_means_subscribed(db_url: str, broker: OwnMosquitto, tmp_path: Path) -> None:
    """The fault tests start their stream as soon as ingest is "up". Up must mean
    subscribed: ingest writes its heartbeat before its subscription is granted, and the
    broker acknowledges, then drops, what is published before it exists — on a loaded
    machine the broker-restart test lost the stream's first messages that way. Here the
    broker is away while ingest starts: it beats, and is not subscribed until the broker is
    back; a stream started the moment it is subscribed is stored whole."""
    register(db_url, REGISTRY)
    broker.stop()
    ingest = _ingest(tmp_path, db_url, broker.url)
    ingest.start()
    stream: Stream | None = None
    try:
        wait_for(
            lambda: scalar(
                db_url, "SELECT count(*) FROM ingest_workers WHERE worker = %s", CLIENT_ID
            ),
            timeout=60,
            what="ingest's first heartbeat",
        )
        assert not _subscribed(db_url), "subscribed to a broker that is not running"
        broker.start()
        wait_for(lambda: _subscribed(db_url), timeout=60, what="ingest subscribed")
        stream = Stream(broker.url, TOPIC.replace("+", "{mn}"), MNS, count=40, rate=200).start()
        assert stream.wait(30), f"broker acknowledged {stream.acked} of 40"
        _until_stored(db_url, stream.readings, ingest, 30, stream, broker)
    finally:
        if stream is not None:
            stream.close()
        assert ingest.stop() == 0, ingest.output()[-3000:]
    assert _stored(db_url) == (40 * len(POLLUTANTS), 40 * len(POLLUTANTS))


def test_broker_restart_mid_stream(db_url: str, broker: OwnMosquitto, tmp_path: Path) -> None:
    register(db_url, REGISTRY)
    ingest = _ingest(tmp_path, db_url, broker.url)
    _start(ingest, db_url)
    stream = Stream(broker.url, TOPIC.replace("+", "{mn}"), MNS, count=3000, rate=300).start()
    try:
        wait_for(lambda: _stored(db_url)[0] > 1500, timeout=30, what="stream under way")
        stream.mark("broker stopping")
        broker.stop()  # SIGTERM: Mosquitto saves its persistence file
        stream.mark("broker stopped")
        time.sleep(2.0)
        broker.start()
        stream.mark("broker started")
        backlog = stream.readings
        catch_up = _until_stored(db_url, backlog, ingest, 60, stream, broker)
        assert stream.wait(90), f"broker acknowledged {stream.acked} of 3000"
        _until_stored(db_url, stream.readings, ingest, 60, stream, broker)
        time.sleep(1.0)
    finally:
        stream.close()
        assert ingest.stop() == 0, ingest.output()[-3000:]
    _report("broker restart", stream, db_url, catch_up)
    rows, distinct = _stored(db_url)
    assert rows == distinct == stream.readings == 3000 * len(POLLUTANTS), _diagnosis(
        db_url, stream, ingest, broker
    )


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

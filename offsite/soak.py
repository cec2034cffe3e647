"""``offsite soak``: simulators + ingest for a chosen time, with faults at random
(seeded) moments — ingest killed -9 and restarted, the database link cut, the broker
restarted — then the books are balanced: published = stored, nothing twice.

Runs on a private Mosquitto configured for lossless ingest and a scratch database
(created on OFFSITE_DATABASE_URL's server, or an embedded PostgreSQL), so it can break
things freely.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from offsite.core.errors import OffsiteError
from offsite.core.registry import Registry, registry_from_dict
from offsite.core.secrecy import redact
from offsite.embedded import EmbeddedPostgres
from offsite.faultproxy import FaultProxy, proxied_db_url
from offsite.faults import POLLUTANTS, IngestProcess, Stream
from offsite.mosquitto import LOSSLESS, OwnMosquitto, mosquitto_binary
from offsite.store.migrate import migrate
from offsite.store.registry import save_registry
from offsite.store.scratch import scratch_database

FAULTS = ("kill9", "db_cut", "broker_restart")
TOPIC = "soak/devices/+/telemetry"


@dataclass
class SoakResult:
    published_messages: int = 0
    published_readings: int = 0
    stored: int = 0
    distinct: int = 0
    dead_letters: int = 0
    faults: list[str] = field(default_factory=list)
    catch_up_s: float = 0.0

    @property
    def duplicates(self) -> int:
        return self.stored - self.distinct

    @property
    def balanced(self) -> bool:
        return self.stored == self.distinct == self.published_readings and self.dead_letters == 0


def run_soak(
    database_url: str | None,
    *,
    duration_s: float,
    devices: int,
    rate: float,
    seed: int,
    stop: threading.Event,
    out: Callable[[str], None],
    faults: tuple[str, ...] = FAULTS,
    keep_db: bool = False,
) -> SoakResult:
    binary = mosquitto_binary()
    if binary is None:
        raise OffsiteError("offsite soak needs the mosquitto binary (it restarts a broker)")
    rng = random.Random(seed)
    out(f"soak: seed {seed}")
    work = Path(tempfile.mkdtemp(prefix="offsite-soak-"))
    mns = [f"50A400000000000000{i:06X}" for i in range(devices)]
    registry = registry_from_dict(
        {
            "enterprises": [
                {
                    "id": "SOAK",
                    "name": "Soak Works",
                    "points": [
                        {
                            "id": "SOAK-P1",
                            "kind": "flue_gas",
                            "limits": {"a21026": 1e9},
                            "devices": [{"mn": mn, "interval_s": 1} for mn in mns],
                        }
                    ],
                }
            ]
        }
    )
    pg = None
    admin = database_url
    if admin is None:
        pg = EmbeddedPostgres(work / "pg", delete_on_stop=True)
        admin = pg.start()
    try:
        with scratch_database(admin, "offsite_soak", keep=keep_db) as db:
            if keep_db:
                out(f"soak: database kept: {redact(db)}")
            return _soak(
                db,
                registry,
                mns,
                binary,
                work,
                rng,
                duration_s=duration_s,
                rate=rate,
                faults=faults,
                stop=stop,
                out=out,
            )
    finally:
        if pg is not None:
            pg.stop()


def _soak(
    db: str,
    registry: Registry,
    mns: list[str],
    binary: str,
    work: Path,
    rng: random.Random,
    *,
    duration_s: float,
    rate: float,
    faults: tuple[str, ...],
    stop: threading.Event,
    out: Callable[[str], None],
) -> SoakResult:
    broker = OwnMosquitto(work / "mosquitto", LOSSLESS, binary=binary)
    template, host, port = proxied_db_url(db)
    proxy = FaultProxy(host, port)
    result = SoakResult()
    ingest: IngestProcess | None = None
    stream: Stream | None = None
    try:
        with psycopg.connect(db) as conn:
            migrate(conn)
            save_registry(conn, registry)
        broker.start()
        proxy.start()
        rules = work / "rules.toml"  # outages are injected on purpose: not "offline"
        rules.write_text('base = "default"\n[offline]\nenabled = false\n')
        ingest = IngestProcess(
            {
                "OFFSITE_DATABASE_URL": template.format(port=proxy.port),
                "OFFSITE_MQTT_URL": broker.url,
                "OFFSITE_MQTT_TOPIC": TOPIC,
                "OFFSITE_MQTT_CLIENT_ID": "offsite-soak",
                "OFFSITE_RULES_FILE": str(rules),
            },
            work / "ingest.log",
        )
        ingest.start()
        # Its persistent session must exist before the first publish: MQTT queues messages
        # only for subscriptions that exist (a deployment's session exists from day one).
        deadline = time.monotonic() + 60
        while not _worker_connected(db):
            if time.monotonic() > deadline or not ingest.running:
                raise OffsiteError(f"ingest did not start:\n{ingest.output()[-2000:]}")
            time.sleep(0.2)
        stream = Stream(
            broker.url, TOPIC.replace("+", "{mn}"), mns, count=int(duration_s * rate), rate=rate
        ).start()
        out(
            f"soak: {len(mns)} devices, {rate:g} msg/s for {duration_s:g} s "
            f"({stream.count} messages × {len(POLLUTANTS)} readings); logs in {work}"
        )
        t0 = time.monotonic()
        next_fault = t0 + rng.uniform(5, 15)
        while time.monotonic() - t0 < duration_s and not stop.is_set():
            if time.monotonic() >= next_fault and time.monotonic() - t0 < duration_s - 10:
                kind = rng.choice(faults)
                length = rng.uniform(1, 3) if kind != "db_cut" else rng.uniform(5, 20)
                out(
                    f"[{time.monotonic() - t0:6.1f}s] fault: {kind} for {length:.1f} s "
                    f"(published {stream.acked}, stored {_count(db)[0]})"
                )
                result.faults.append(kind)
                _inject(kind, length, ingest, broker, proxy, stop)
                next_fault = time.monotonic() + rng.uniform(10, 30)
            stop.wait(0.5)
        stream.wait(120)
        stream.close()
        t1 = time.monotonic()
        expected = stream.readings
        while time.monotonic() - t1 < 180 and _count(db)[0] < expected and not stop.is_set():
            time.sleep(0.5)
        result.catch_up_s = time.monotonic() - t1
        time.sleep(1.0)
        result.published_messages, result.published_readings = stream.acked, expected
        result.stored, result.distinct = _count(db)
        with psycopg.connect(db) as conn:
            row = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
            result.dead_letters = int(row[0]) if row else 0
        return result
    finally:
        if stream is not None:
            stream.close()
        if ingest is not None:
            ingest.stop()
        proxy.stop()
        broker.stop()


def _inject(
    kind: str,
    length: float,
    ingest: IngestProcess,
    broker: OwnMosquitto,
    proxy: FaultProxy,
    stop: threading.Event,
) -> None:
    if kind == "kill9":
        ingest.kill9()
        stop.wait(length)
        ingest.start()
    elif kind == "db_cut":
        proxy.cut()
        stop.wait(length)
        proxy.restore()
    else:
        broker.stop()
        stop.wait(length)
        broker.start()


def _count(db: str) -> tuple[int, int]:
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (mn, pollutant, ts)) FROM readings"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _worker_connected(db: str) -> bool:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT bool_or(broker_connected) FROM ingest_workers").fetchone()
    return bool(row and row[0])

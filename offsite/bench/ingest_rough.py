"""A first, rough ingest throughput figure: simulated fleet replayed at full speed over
MQTT into a running ingest worker (full path: decode, validate, COPY, rules, ack).

    python -m offsite.bench.ingest_rough [--devices 200] [--minutes 60] [--rate 60] [--own-broker]
                                 [--json]

Uses OFFSITE_DATABASE_URL's server (a scratch database is created and dropped) and
OFFSITE_MQTT_URL, or with --own-broker a private Mosquitto configured for lossless
ingest. Prints messages/s and readings/s from first publish to last commit, and checks
that every published reading was stored (reports any loss: a default Mosquitto drops
QoS 1 messages beyond max_queued_messages for a slow subscriber).
The full benchmark suite (ratio to a bare subscriber, latency, queries) is issue #7.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta

import psycopg

from offsite.bench.report import emit
from offsite.core.settings import load_settings
from offsite.ingest.service import IngestService
from offsite.mosquitto import LOSSLESS, OwnMosquitto
from offsite.simulators.publisher import publish_fleet
from offsite.simulators.scenarios import build_fleet
from offsite.store.migrate import migrate
from offsite.store.registry import save_registry
from offsite.store.scratch import scratch_database


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=60.0, help="device time replayed")
    ap.add_argument("--rate", type=float, default=60.0, help="seconds between readings")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--own-broker",
        action="store_true",
        help="run a private Mosquitto configured for lossless ingest",
    )
    args = ap.parse_args()
    admin = os.environ.get("OFFSITE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    mqtt_url = os.environ.get("OFFSITE_MQTT_URL", "mqtt://127.0.0.1:1883")
    broker = None
    if args.own_broker:
        broker = OwnMosquitto.scratch(LOSSLESS)
        broker.start()
        mqtt_url = broker.url
    try:
        with scratch_database(admin, "offsite_bench") as db:
            emit(_run(args, db, mqtt_url), args.json)
    finally:
        if broker is not None:
            broker.discard()


def _run(args: argparse.Namespace, db: str, mqtt_url: str) -> dict[str, object]:
    tag = db.rsplit("/", 1)[-1]
    topic = f"bench/{tag}/devices/+/telemetry"
    start = datetime.now(UTC) - timedelta(minutes=args.minutes)
    fleet = build_fleet(args.devices, seed=1, start=start, rate_s=args.rate, faults=())
    with psycopg.connect(db) as conn:
        migrate(conn)
        save_registry(conn, fleet.registry)
    settings = load_settings(
        database_url=db, mqtt_url=mqtt_url, mqtt_topic=topic, mqtt_client_id=f"bench-{tag}"
    )
    svc = IngestService(settings, db, mqtt_url)
    svc.start()
    t0 = time.perf_counter()
    wall0 = time.time()
    stats = publish_fleet(
        fleet,
        mqtt_url,
        duration_s=args.minutes * 60,
        start=start,
        realtime=False,
        topic_template=topic.replace("+", "{mn}"),
        client_id=f"bench-pub-{tag}",
    )
    t_pub = time.perf_counter() - t0
    last, last_change = -1, time.perf_counter()
    while svc.stats.readings_stored < stats.readings:
        if svc.stats.readings_stored != last:
            last, last_change = svc.stats.readings_stored, time.perf_counter()
        elif time.perf_counter() - last_change > 5:
            break  # nothing more is coming: report the loss
        time.sleep(0.02)
    elapsed = svc.stats.last_commit_at - wall0
    svc.stop()
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
    stored = int(row[0]) if row else 0
    return {
        "devices": args.devices,
        "messages": stats.messages,
        "readings": stats.readings,
        "stored": stored,
        "lost": stats.readings - stored,
        "publish_s": round(t_pub, 2),
        "ingest_s": round(elapsed, 2),
        "messages_per_s": round(stats.messages / elapsed),
        "readings_per_s": round(stored / elapsed),
        "batches": svc.stats.batches,
    }


if __name__ == "__main__":
    main()

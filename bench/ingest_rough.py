"""A first, rough ingest throughput figure: simulated fleet replayed at full speed over
MQTT into a running ingest worker (full path: decode, validate, COPY, rules, ack).

    python -m bench.ingest_rough [--devices 200] [--minutes 60] [--rate 60] [--json]

Uses OFFSITE_DATABASE_URL (a scratch database is created and dropped) and
OFFSITE_MQTT_URL. Prints messages/s and readings/s from first publish to last commit,
and checks that every published reading was stored (reports any loss: a default
Mosquitto drops QoS 1 messages beyond max_queued_messages for a slow subscriber).
The full benchmark suite (ratio to a bare subscriber, latency, queries) is issue #7.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from ingest.service import IngestService
from offsite.mosquitto import LOSSLESS, OwnMosquitto
from offsite.settings import load_settings
from simulators.publisher import publish_fleet
from simulators.scenarios import build_fleet
from store.migrate import migrate
from store.registry import save_registry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=60.0, help="device time replayed")
    ap.add_argument("--rate", type=float, default=60.0, help="seconds between readings")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--own-broker", action="store_true",
                    help="run a private Mosquitto configured for lossless ingest")
    args = ap.parse_args()
    admin = os.environ.get("OFFSITE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    mqtt_url = os.environ.get("OFFSITE_MQTT_URL", "mqtt://127.0.0.1:1883")
    broker = None
    if args.own_broker:
        broker = OwnMosquitto(Path(tempfile.mkdtemp(prefix="offsite-bench-")), LOSSLESS)
        broker.start()
        mqtt_url = broker.url
    name = f"offsite_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    db = urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    topic = f"bench/{name}/devices/+/telemetry"
    try:
        start = datetime.now(UTC) - timedelta(minutes=args.minutes)
        fleet = build_fleet(args.devices, seed=1, start=start, rate_s=args.rate, faults=())
        with psycopg.connect(db) as conn:
            migrate(conn)
            save_registry(conn, fleet.registry)
        settings = load_settings(database_url=db, mqtt_url=mqtt_url, mqtt_topic=topic,
                                 mqtt_client_id=f"bench-{name}")
        svc = IngestService(settings, db, mqtt_url)
        svc.start()
        t0 = time.perf_counter()
        stats = publish_fleet(fleet, mqtt_url, duration_s=args.minutes * 60, start=start,
                              realtime=False, topic_template=topic.replace("+", "{mn}"),
                              client_id=f"bench-pub-{name}")
        t_pub = time.perf_counter() - t0
        last, last_change = -1, time.perf_counter()
        while svc.stats.readings_stored < stats.readings:
            if svc.stats.readings_stored != last:
                last, last_change = svc.stats.readings_stored, time.perf_counter()
            elif time.perf_counter() - last_change > 5:
                break  # nothing more is coming: report the loss
            time.sleep(0.02)
        elapsed = svc.stats.last_commit_at - (time.time() - (time.perf_counter() - t0))
        svc.stop()
        with psycopg.connect(db) as conn:
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
        stored = int(row[0]) if row else 0
        result = {
            "devices": args.devices, "messages": stats.messages, "readings": stats.readings,
            "stored": stored, "lost": stats.readings - stored,
            "publish_s": round(t_pub, 2), "ingest_s": round(elapsed, 2),
            "messages_per_s": round(stats.messages / elapsed),
            "readings_per_s": round(stored / elapsed), "batches": svc.stats.batches,
        }
    finally:
        if broker is not None:
            broker.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>15}: {v}")


if __name__ == "__main__":
    main()

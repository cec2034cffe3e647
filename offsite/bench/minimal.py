"""The minimal lossless ingest: what a careful engineer writes in a page when asked only
"store every reading once, lose nothing". ``offsite bench ingest`` runs it beside Offsite
in the same run, as the comparator that means something to a user.

- paho with manual acknowledgements (nothing is acknowledged before it is durable);
- one writer thread: COPY a batch into a temporary staging table, then
  ``INSERT … ON CONFLICT DO NOTHING`` into a table with the primary key;
- commit, then PUBACK every message of the batch.

No validation, dead letters, rules, rollups or status: Offsite does all of that and is
measured against this.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from datetime import datetime
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event

import psycopg

from offsite.bench.harness import Queue, message_key, peak_rss_mb, sampled

BATCH_MESSAGES = 2000  # up to this many messages per commit
BATCH_WAIT_S = 0.05  # or whatever arrived within this long

# made once by the bench before the subscribers start (they would race to create it)
SCHEMA = """CREATE TABLE IF NOT EXISTS minimal_readings (
    mn text NOT NULL, code text NOT NULL, ts timestamptz NOT NULL, value double precision,
    PRIMARY KEY (mn, code, ts))"""


def rows_of(topic: str, payload: bytes | bytearray) -> list[tuple[str, str, datetime, float]]:
    """The readings of one JSON message: device from the topic (``…/devices/<mn>/…``)."""
    parts = topic.split("/")
    mn = parts[parts.index("devices") + 1]
    doc = json.loads(payload)
    out = []
    for rec in doc if isinstance(doc, list) else [doc]:
        ts = datetime.fromisoformat(rec["ts"])
        for code, v in rec["values"].items():
            out.append((mn, code, ts, float(v["value"] if isinstance(v, dict) else v)))
    return out


def minimal_process(
    url: str,
    topic: str,
    group: str | None,
    client_id: str,
    ready: Event,
    stop: Event,
    counter: Synchronized[int],
    results: Queue,
    *,
    db: str,
) -> None:
    """One minimal lossless subscriber (the bench's phase target; counts readings stored)."""
    import paho.mqtt.client as mqtt

    from offsite.ingest.subscriber import parse_mqtt_url

    host, port, _, _ = parse_mqtt_url(url)
    inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    samples: list[tuple[int, float]] = []
    counts = {"messages": 0, "stored": 0}
    t_last = [0.0]
    error: list[str] = []

    if group:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        sub = f"$share/{group}/{topic}"
    else:
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        sub = topic
    c.manual_ack_set(True)
    c.on_message = lambda _c, _u, m: inbox.put(m)
    c.on_subscribe = lambda *_a: ready.set()
    c.on_connect = lambda cl, *_a: cl.subscribe(sub, qos=1)

    def writer() -> None:
        with psycopg.connect(db) as conn:
            while not (stop.is_set() and inbox.empty()):
                try:
                    batch = [inbox.get(timeout=0.1)]
                except queue.Empty:
                    continue
                deadline = time.monotonic() + BATCH_WAIT_S
                while len(batch) < BATCH_MESSAGES:
                    try:
                        batch.append(inbox.get(timeout=max(0.0, deadline - time.monotonic())))
                    except queue.Empty:
                        break
                rows = [r for m in batch for r in rows_of(m.topic, m.payload)]
                with conn.cursor() as cur:
                    cur.execute(
                        "CREATE TEMP TABLE IF NOT EXISTS stage (LIKE minimal_readings) "
                        "ON COMMIT DELETE ROWS"
                    )
                    with cur.copy("COPY stage (mn, code, ts, value) FROM STDIN") as cp:
                        for r in rows:
                            cp.write_row(r)
                    cur.execute(
                        "INSERT INTO minimal_readings SELECT * FROM stage ON CONFLICT DO NOTHING"
                    )
                conn.commit()
                now = time.time()
                for m in batch:
                    c.ack(m.mid, m.qos)
                    k = message_key(m.topic, m.payload)
                    if sampled(k):
                        samples.append((k, now))
                counts["messages"] += len(batch)
                counts["stored"] += len(rows)
                t_last[0] = now
                counter.value = counts["stored"]

    c.connect(host, port, 60)
    c0 = os.times()
    c.loop_start()
    w = threading.Thread(target=writer, name="minimal-writer")
    w.start()
    try:
        stop.wait()
        w.join(60)
    except BaseException as exc:  # report, never hang the bench
        error.append(repr(exc))
    c.disconnect()
    c.loop_stop()
    t = os.times()
    results.put(
        {
            "messages": counts["messages"],
            "t_last": t_last[0],
            "samples": samples,
            "peak_rss_mb": peak_rss_mb(),
            "cpu_s": {"subscriber": t.user + t.system - c0.user - c0.system},
            "error": error[0] if error else None,
        }
    )

"""``offsite bench latency``: publish → alert on the SSE feed, under steady load.

A background fleet publishes in real time (device time ≈ wall time) at a steady rate
of readings/s from a paced publisher process. Probe devices, silent otherwise, each
publish one value at three times their permit limit at known moments; an SSE client on
``/api/alerts/stream`` notes when each probe's ``exceedance`` alert is *opened* there.
``offsite ingest`` and ``offsite serve`` run as the real commands, in their own
processes, with default settings. Afterwards every background reading must be stored.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from offsite.bench.harness import (
    ProbePublisher,
    build_messages,
    percentile,
    publish_process,
    readings_in,
)
from offsite.embedded import free_port
from offsite.mosquitto import LOSSLESS, OwnMosquitto
from offsite.simulators.publisher import payload_json
from offsite.simulators.scenarios import build_fleet
from offsite.store.migrate import migrate
from offsite.store.registry import save_registry
from offsite.store.scratch import scratch_database
from offsite.store.users import create_user, issue_token

WARMUP_S = 5.0
TAIL_S = 5.0


@dataclass(frozen=True, slots=True)
class LatencyBenchArgs:
    readings_per_s: int = 10_000
    probes: int = 100
    probe_every_s: float = 0.25
    seed: int = 1


def run_latency_bench(
    args: LatencyBenchArgs, admin_url: str, out: Callable[[str], None] = print
) -> dict[str, object]:
    ctx = mp.get_context("fork")
    duration = WARMUP_S + args.probes * args.probe_every_s + TAIL_S
    # background devices (1 s interval) until their channels make the rate, then probes
    size = args.readings_per_s // 4 + args.probes + 1
    # device time starts once messages are prepared (~20,000/s) and services are up
    lead_s = 5 + args.readings_per_s / 4 * duration / 20_000
    t_start = datetime.fromtimestamp(math.ceil(time.time() + lead_s), UTC)
    fleet = build_fleet(size, seed=args.seed, start=t_start, rate_s=1.0, faults=())
    background, total = [], 0
    for d in fleet.devices:
        if total >= args.readings_per_s:
            break
        background.append(d.mn)
        total += len(d.profile.channels)
    probes = [d for d in fleet.devices if d.mn not in set(background)][: args.probes]
    tag = uuid.uuid4().hex[:6]
    sub = f"bench/{tag}/devices/+/telemetry"
    out(
        f"preparing {len(background)} background devices ({total} readings/s) for "
        f"{duration:.0f} s and {len(probes)} probes …"
    )
    msgs = build_messages(
        fleet,
        fleet.timestamps(duration, t_start),
        sub.replace("+", "{mn}"),
        1,
        skip={d.mn for d in probes},
    )[0]
    n_readings = readings_in(msgs)
    broker = OwnMosquitto.scratch(LOSSLESS)
    broker.start()
    procs: list[subprocess.Popen[str]] = []
    try:
        with scratch_database(admin_url, "offsite_bench") as db:
            with psycopg.connect(db) as conn:
                migrate(conn)
                save_registry(conn, fleet.registry)
                # the feed is for signed-in users: a regulator's API key
                create_user(conn, "bench-regulator", "regulator", None)
                token = issue_token(conn, "bench-regulator")
            port = free_port()
            env = {
                **os.environ,
                "OFFSITE_DATABASE_URL": db,
                "OFFSITE_MQTT_URL": broker.url,
                "OFFSITE_MQTT_TOPIC": sub,
                "OFFSITE_MQTT_CLIENT_ID": f"bench-{tag}",
                "OFFSITE_HTTP_PORT": str(port),
                "OFFSITE_LOG_LEVEL": "WARNING",
            }
            procs.append(_start(["ingest"], env, "ingest consuming"))
            procs.append(_start(["serve"], env, None))
            feed = _Feed(
                f"http://127.0.0.1:{port}/api/alerts/stream", {d.mn for d in probes}, token
            )
            feed.start()
            if not feed.connected.wait(30):
                raise RuntimeError("the SSE feed did not answer within 30 s")
            # wait for the device clock: published timestamps must be near the wall clock
            time.sleep(max(0.0, t_start.timestamp() - time.time()))
            go = ctx.Event()
            pubq: Any = ctx.Queue()
            rate = len(background)  # messages/s: one per device per second
            pub = ctx.Process(
                target=publish_process, args=(broker.url, msgs, f"bg-{tag}", go, pubq, float(rate))
            )
            pub.start()
            go.set()
            time.sleep(WARMUP_S)
            probe = ProbePublisher(broker.url, f"probe-{tag}")
            sent: dict[str, float] = {}
            for d in probes:
                code = d.profile.fault_pollutant
                point = fleet.registry.point_of(d.mn)
                limit = point.limits[code] if point else 100.0
                ts = datetime.fromtimestamp(math.floor(time.time()), UTC)
                sent[d.mn] = probe.publish(
                    sub.replace("+", d.mn), payload_json(ts, {code: 3 * float(limit)})
                )
                time.sleep(args.probe_every_s)
            probe.close()
            bg = pubq.get(timeout=duration + 60)
            pub.join(10)
            deadline = time.time() + 15
            while len(feed.opened) < len(sent) and time.time() < deadline:
                time.sleep(0.1)
            feed.stop()
            stored = _stored(db, n_readings + len(sent), timeout_s=30)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.discard()
    lat = sorted(feed.opened[mn] - t for mn, t in sent.items() if mn in feed.opened)
    bg_rate = bg["messages"] / (bg["t_acked"] - bg["t_first"])
    return {
        "background_readings_per_s": round(bg_rate * n_readings / len(msgs)),
        "background_messages_per_s": round(bg_rate),
        "probes": len(sent),
        "alerts_seen": len(lat),
        "p50_ms": round(percentile(lat, 50) * 1000, 1),
        "p99_ms": round(percentile(lat, 99) * 1000, 1),
        "max_ms": round(lat[-1] * 1000, 1) if lat else float("nan"),
        "background_readings": n_readings,
        "stored": stored - len(sent),
        "lost": n_readings - (stored - len(sent)),
    }


def _stored(db: str, expected: int, timeout_s: float) -> int:
    """Readings stored, once ``expected`` are (the last batch may still be committing)
    or ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(db, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
            n = int(row[0]) if row else 0
            if n >= expected or time.monotonic() > deadline:
                return n
            time.sleep(0.2)


def _start(command: list[str], env: dict[str, str], ready: str | None) -> subprocess.Popen[str]:
    """Run ``offsite <command>``; with ``ready``, wait for that line on its output."""
    p = subprocess.Popen(
        [sys.executable, "-m", "offsite.cli", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if ready is None:
        threading.Thread(target=_drain, args=(p,), daemon=True).start()
        return p
    assert p.stdout is not None
    for line in p.stdout:
        if ready in line:
            threading.Thread(target=_drain, args=(p,), daemon=True).start()
            return p
    raise RuntimeError(f"offsite {' '.join(command)} exited with {p.wait()}")


def _drain(p: subprocess.Popen[str]) -> None:
    assert p.stdout is not None
    for _ in p.stdout:
        pass


class _Feed(threading.Thread):
    """SSE client: when each watched device's exceedance alert was opened on the feed."""

    def __init__(self, url: str, watch: set[str], token: str) -> None:
        super().__init__(daemon=True, name="bench-feed")
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.watch = watch
        self.opened: dict[str, float] = {}
        self.connected = threading.Event()
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                with httpx.stream(
                    "GET", self.url, headers=self.headers, timeout=httpx.Timeout(5, read=None)
                ) as r:
                    r.raise_for_status()
                    self.connected.set()
                    for line in r.iter_lines():
                        if self._halt.is_set():
                            return
                        if line.startswith("data:"):
                            self._event(json.loads(line[5:]), time.time())
            except httpx.HTTPError:
                time.sleep(0.2)  # the API is still starting

    def _event(self, ev: dict[str, Any], at: float) -> None:
        if (
            ev.get("event") == "opened"
            and str(ev.get("rule", "")).startswith("exceedance")
            and ev.get("mn") in self.watch
        ):
            self.opened.setdefault(ev["mn"], at)

    def stop(self) -> None:
        self._halt.set()

"""``offsite bench runners``: 1 against N sharded rule runners, side by side in one run.

Each trial gets a scratch database with ``devices`` CEMS stacks (6 channels, 3 limited)
and the shard count of its runners (1 runner: 1 shard; N runners: N shards), and
measures two things with the runners as processes (``RuleProcess``, as a worker starts
them):

* **drain** — a backlog of ``backlog`` rounds (one reading of every series each) is
  stored and queued as ingest does while no runner runs; then the runners start, and
  once every one of them leads, the rest of the queue is timed: readings judged per
  second by the runners alone (the warm-up before leading is reported apart);
* **stream** — with the runners leading, the same writer stores and queues ``stream``
  more rounds as fast as it can: readings judged per second from its first commit to an
  empty queue, and the runners' **lag after the last commit** (last commit → queue
  empty). The writer shares the machine with the runners and the database.

Trials alternate (1, N, 1, N, …) and medians are reported. No broker, no ingest: the
writer is ``insert_readings`` + ``queue_for_rules`` in one transaction per batch.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from offsite.core.readings import Reading
from offsite.core.registry import Registry, registry_from_dict
from offsite.runner.rule_process import RuleProcess
from offsite.runner.rule_runner import RunnerConfig
from offsite.store.migrate import migrate
from offsite.store.readings import insert_readings
from offsite.store.registry import save_registry
from offsite.store.rule_inbox import queue_for_rules, set_shard_count
from offsite.store.scratch import scratch_database

CODES = ("a21026", "a21002", "a34013", "a19001", "a01012", "a01011")
BASE = np.array([15.0, 30.0, 4.0, 8.0, 120.0, 12.0])
LIMITS = {"a21026": 35.0, "a21002": 50.0, "a34013": 10.0}
BATCH_DEVICES = 1000  # devices per stored batch: 6,000 readings, an ingest-sized batch
HOLD = """INSERT INTO ingest_workers (worker, host, pid, started_at, heartbeat_at, inbox, lag_s,
              messages, readings_stored, dead_letters, db_errors, committed_through)
          VALUES ('bench-hold', '', 0, now(), now() + interval '1 day', 0, 0, 0, 0, 0, 0,
                  'epoch')"""


@dataclass(frozen=True, slots=True)
class RunnersBenchArgs:
    devices: int = 10_000
    runners: int = 2  # compared with 1
    backlog: int = 4  # rounds queued before the runners start
    stream: int = 4  # rounds written while they lead
    rounds: int = 3  # alternating pairs of trials (medians)


class Interrupted(Exception):
    """Ctrl-C during a trial: its runners were stopped and its database dropped."""


def registry(devices: int) -> Registry:
    return registry_from_dict(
        {
            "enterprises": [
                {
                    "id": f"BE{e}",
                    "name": f"Bench {e}",
                    "points": [
                        {
                            "id": f"BP{i}",
                            "kind": "flue_gas",
                            "limits": LIMITS,
                            "devices": [{"mn": mn(i), "interval_s": 60}],
                        }
                        for i in range(e * 100, min(devices, (e + 1) * 100))
                    ],
                }
                for e in range((devices + 99) // 100)
            ]
        }
    )


def mn(i: int) -> str:
    return f"BR{i:012d}"


class Writer:
    """Stores and queues whole rounds (a reading of every series) as ingest does."""

    def __init__(self, db: str, devices: int, t0: datetime, seed: int = 7) -> None:
        self.db, self.devices, self.t0 = db, devices, t0
        self.rng = np.random.default_rng(seed)
        self.level = np.tile(BASE, devices)
        self.wander = np.zeros(devices * len(CODES))
        self.round = 0
        self.readings = 0
        self.first_commit: float | None = None
        self.last_commit = 0.0

    def write(self, rounds: int, stop: threading.Event) -> None:
        mns = [mn(i) for i in range(self.devices)]
        with psycopg.connect(self.db) as conn:
            for _ in range(rounds):
                ts = self.t0 + timedelta(minutes=self.round)
                self.round += 1
                self.wander = 0.98 * self.wander + self.rng.normal(0, 0.004, self.wander.shape)
                noise = self.rng.normal(0, 0.02, self.wander.shape)
                values = np.round(self.level * (1 + self.wander + noise), 3).tolist()
                for lo in range(0, self.devices, BATCH_DEVICES):
                    if stop.is_set():
                        raise Interrupted
                    hi = min(self.devices, lo + BATCH_DEVICES)
                    batch = [
                        Reading(ts, mns[d], code, values[d * len(CODES) + c])
                        for d in range(lo, hi)
                        for c, code in enumerate(CODES)
                    ]
                    now = datetime.now(UTC)
                    with conn.transaction():
                        new = insert_readings(conn, batch, [now] * len(batch))
                        queue_for_rules(conn, new, [now] * len(new), dict.fromkeys(mns[lo:hi], now))
                    self.readings += len(new)
                    self.last_commit = time.monotonic()
                    if self.first_commit is None:
                        self.first_commit = self.last_commit


def _queue_empty(db: str, stop: threading.Event, timeout_s: float = 600.0) -> float:
    """When the rule queue is empty (monotonic), polled every 20 ms."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(db, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if stop.is_set():
                raise Interrupted
            row = conn.execute("SELECT count(*) FROM rule_inbox").fetchone()
            if row is not None and row[0] == 0:
                return time.monotonic()
            time.sleep(0.02)
    raise TimeoutError(f"the rule queue was not empty after {timeout_s:.0f} s")


def trial(
    admin_url: str, runners: int, args: RunnersBenchArgs, stop: threading.Event
) -> dict[str, float]:
    """One trial with ``runners`` runners leading ``runners`` shards (see the module doc)."""
    with scratch_database(admin_url, "offsite_bench_runners") as db:
        with psycopg.connect(db, autocommit=True) as conn:
            migrate(conn)
            save_registry(conn, registry(args.devices))
            set_shard_count(conn, runners)  # what the runners will set: rows split for them
        t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(
            minutes=args.backlog + args.stream + 5
        )
        writer = Writer(db, args.devices, t0)
        writer.write(1, stop)  # a first round: every series known before anything is timed
        cfg = RunnerConfig(shards=runners, retry_s=0.2)
        procs = [RuleProcess(db, cfg, log_level="WARNING") for _ in range(runners)]
        started = time.monotonic()
        for p in procs:
            p.start()
        try:
            while not all(p.figures().leading for p in procs):
                if stop.is_set():
                    raise Interrupted
                if not all(p.alive for p in procs):
                    raise RuntimeError("a rule runner died during the benchmark")
                time.sleep(0.01)
            led = time.monotonic()
            _queue_empty(db, stop)
            # the backlog is held back as a live ingest worker that has promised nothing
            # holds it (store.rule_inbox.watermark), then released at once: every runner
            # is leading, with its series, when the timed drain starts
            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute(HOLD)
            before = writer.readings
            writer.write(args.backlog, stop)
            backlog = writer.readings - before
            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute("DELETE FROM ingest_workers WHERE worker = 'bench-hold'")
                released = time.monotonic()
            empty = _queue_empty(db, stop)
            drain_rate = backlog / max(empty - released, 1e-9)
            writer.first_commit = None
            before = writer.readings
            writer.write(args.stream, stop)
            done = _queue_empty(db, stop)
            assert writer.first_commit is not None
            streamed = writer.readings - before
            # the runners' counters reach us every REPORT_S: the last slice a moment later
            deadline = time.monotonic() + 2.0
            while (judged := sum(p.figures().judged for p in procs)) < writer.readings:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        finally:
            for p in procs:
                p.stop(30)
        return {
            "to_lead_s": led - started,
            "drain_readings_per_s": drain_rate,
            "drain_readings": float(backlog),
            "stream_written_per_s": streamed / max(writer.last_commit - writer.first_commit, 1e-9),
            "stream_judged_per_s": streamed / max(done - writer.first_commit, 1e-9),
            "lag_after_last_commit_s": done - writer.last_commit,
            "judged": float(judged),
            "written": float(writer.readings),
        }


def run_runners_bench(
    args: RunnersBenchArgs, admin_url: str, out: Callable[[str], None]
) -> dict[str, Any]:
    """Alternating trials of 1 and ``args.runners`` runners; medians side by side."""
    if args.runners < 2:
        raise ValueError("compare at least 2 runners with 1")
    stop = threading.Event()
    runs: dict[int, list[dict[str, float]]] = {1: [], args.runners: []}
    series = args.devices * len(CODES)
    out(
        f"rule runners: 1 vs {args.runners} at {args.devices:,} devices ({series:,} series), "
        f"{args.rounds} alternating pairs; {os.cpu_count()} CPUs, shared with the writer "
        "and PostgreSQL"
    )
    try:
        for i in range(args.rounds):
            for n in (1, args.runners):
                r = trial(admin_url, n, args, stop)
                if r["judged"] != r["written"]:
                    raise RuntimeError(f"judged {r['judged']:.0f} of {r['written']:.0f} readings")
                runs[n].append(r)
                out(
                    f"  pair {i + 1}/{args.rounds}, {n} runner{'s' if n > 1 else ''}: drain "
                    f"{r['drain_readings_per_s']:,.0f} readings/s, stream "
                    f"{r['stream_judged_per_s']:,.0f} judged/s (written "
                    f"{r['stream_written_per_s']:,.0f}/s), lag after last commit "
                    f"{r['lag_after_last_commit_s']:.2f} s, leading after {r['to_lead_s']:.1f} s"
                )
    except KeyboardInterrupt:
        stop.set()
        out("interrupted: the trial's runners were stopped and its database dropped")
        raise
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    one, many = med[1], med[args.runners]
    n = args.runners
    out(f"medians of {args.rounds}:            1 runner   {n} runners   ratio")
    for key, label in (
        ("drain_readings_per_s", "drain, readings/s"),
        ("stream_judged_per_s", "stream, judged/s"),
        ("lag_after_last_commit_s", "lag after last commit, s"),
        ("to_lead_s", "start to leading, s"),
    ):
        ratio = many[key] / one[key] if one[key] else float("nan")
        out(f"  {label:<26} {one[key]:>10,.2f} {many[key]:>12,.2f} {ratio:>7.2f}")
    return {
        "devices": args.devices,
        "series": series,
        "runners": n,
        "cpus": os.cpu_count(),
        "median_1": one,
        f"median_{n}": many,
        "drain_ratio": many["drain_readings_per_s"] / one["drain_readings_per_s"],
        "runs": {str(k): v for k, v in runs.items()},
    }

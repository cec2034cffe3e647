"""``offsite bench ingest``: Offsite's ingest against a bare subscriber, in one run.

Rounds of bare, then a minimal/offsite pair in alternating order; medians are
reported, and the ratio to the minimal ingest is the median of the pairs' ratios.

Every phase sees the same prepared messages from the same publisher processes, on a
private Mosquitto configured for lossless ingest:

1. **bare**: N paho subscribers (QoS 1, automatic acks) that only count messages;
2. **minimal**: the minimal lossless ingest (``bench/minimal.py``: manual acks, COPY into a
   stage, ``INSERT … ON CONFLICT DO NOTHING``, commit, then PUBACK), the limit that
   means something to a user;
3. **offsite**: N ingest workers with every guarantee on (decode, validate, COPY,
   commit then acknowledge, dedup, rules), each in its own process; with N > 1 they
   share the stream through an MQTT 5 shared subscription.

Throughput is messages (and readings) from the first publish to the last count or
commit; latency is publish → receive (bare) or publish → commit (offsite, taken at the
acknowledgement, which follows the commit) over sampled messages; peak RSS is each
ingest process's VmHWM, and its rule runner's apart; the rules' lag is how long after
the last commit the rule queue is empty. CPU is counted per group of processes (the
worker, its rule runner, PostgreSQL, the broker, the publishers: ``bench/cpu.py``), per
message, so the ratio can be read against what each side spends. The run fails loudly
if a published reading is not stored.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any

import psycopg

from offsite.bench import cpu
from offsite.bench.harness import (
    Queue,
    build_messages,
    latency,
    message_key,
    peak_rss_mb,
    publish_process,
    readings_in,
    sampled,
)
from offsite.bench.minimal import SCHEMA as MINIMAL_SCHEMA
from offsite.bench.minimal import minimal_process
from offsite.mosquitto import LOSSLESS, OwnMosquitto
from offsite.simulators.scenarios import build_fleet
from offsite.store.migrate import migrate
from offsite.store.registry import save_registry
from offsite.store.scratch import scratch_database

STALL_S = 20.0  # no progress for this long: stop and report what is missing


@dataclass(frozen=True, slots=True)
class IngestBenchArgs:
    devices: int = 1000
    ticks: int = 60
    rate_s: float = 60.0
    publishers: int = 2
    workers: int = 1
    seed: int = 1
    rounds: int = 3  # alternating minimal/offsite pairs; medians reported


def run_ingest_bench(
    args: IngestBenchArgs, admin_url: str, out: Callable[[str], None] = print
) -> dict[str, object]:
    # spawned, not forked: a forked child's peak RSS would count the parent's prepared
    # messages, and the ingest process should start as clean as ``offsite ingest`` does
    ctx = mp.get_context("spawn")
    start = (datetime.now(UTC) - timedelta(seconds=args.ticks * args.rate_s + 60)).replace(
        second=0, microsecond=0
    )
    fleet = build_fleet(args.devices, seed=args.seed, start=start, rate_s=args.rate_s, faults=())
    ticks = list(fleet.timestamps(args.ticks * args.rate_s))
    tag = uuid.uuid4().hex[:6]
    out(f"preparing {args.devices} devices × {args.ticks} ticks …")
    t = time.perf_counter()
    template = f"bench/{tag}/{{phase}}/devices/{{{{mn}}}}/telemetry"
    phases = ("bare", "minimal", "offsite")
    msgs = {
        phase: build_messages(fleet, ticks, template.format(phase=phase), args.publishers)
        for phase in phases
    }
    n_msgs = sum(len(m) for m in msgs["bare"])
    n_readings = sum(readings_in(m) for m in msgs["bare"])
    out(f"  {n_msgs} messages, {n_readings} readings in {time.perf_counter() - t:.1f} s")
    load_before = os.getloadavg()[0]
    broker = OwnMosquitto.scratch(LOSSLESS)
    broker.start()
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in phases}
    stored: list[int] = []
    try:
        assert broker.proc is not None
        with psycopg.connect(admin_url) as conn:
            pg = cpu.postmaster_pid(conn)
        procs = {"broker": broker.proc.pid, **({"postgres": pg} if pg else {})}

        def topic(phase: str) -> str:
            return f"bench/{tag}/{phase}/devices/+/telemetry"

        for r in range(args.rounds):
            out(f"round {r + 1} of {args.rounds}")
            runs["bare"].append(
                _phase(
                    ctx, broker.url, msgs["bare"], topic("bare"), args, n_msgs,
                    _bare_process, {}, procs, out,
                )
            )  # fmt: skip
            # the pair alternates its order round by round, so neither side always runs
            # on a warmer (or more tired) machine
            pair = ("minimal", "offsite") if r % 2 == 0 else ("offsite", "minimal")
            with scratch_database(admin_url, "offsite_bench") as db:
                with psycopg.connect(db) as conn:
                    migrate(conn)
                    save_registry(conn, fleet.registry)
                    conn.execute(MINIMAL_SCHEMA)
                for phase in pair:
                    target = minimal_process if phase == "minimal" else _offsite_process
                    runs[phase].append(
                        _phase(
                            ctx, broker.url, msgs[phase], topic(phase), args, n_readings,
                            target, {"db": db}, procs, out,
                        )
                    )  # fmt: skip
                with psycopg.connect(db) as conn:
                    row = conn.execute("SELECT count(*) FROM readings").fetchone()
                    stored.append(int(row[0]) if row else 0)
                    row = conn.execute("SELECT count(*) FROM minimal_readings").fetchone()
                    if row is None or int(row[0]) != n_readings:
                        raise RuntimeError(f"minimal ingest stored {row} of {n_readings}")
    finally:
        broker.discard()

    def rate(phase: str) -> list[float]:
        return [float(x["messages_per_s"]) for x in runs[phase]]

    to_minimal = [o / m for o, m in zip(rate("offsite"), rate("minimal"), strict=True) if m]
    bare, minimal = _median_run(runs["bare"]), _median_run(runs["minimal"])
    off = _median_run(runs["offsite"])
    ratio = off["messages_per_s"] / bare["messages_per_s"] if bare["messages_per_s"] else 0
    return {
        "devices": args.devices,
        "workers": args.workers,
        "publishers": args.publishers,
        "rounds": args.rounds,
        "messages": n_msgs,
        "readings": n_readings,
        "readings_per_message": round(n_readings / n_msgs, 2),
        "bare_messages_per_s": bare["messages_per_s"],
        "bare_p50_ms": bare["p50_ms"],
        "bare_p99_ms": bare["p99_ms"],
        "minimal_messages_per_s": minimal["messages_per_s"],
        "minimal_p99_ms": minimal["p99_ms"],
        "offsite_messages_per_s": off["messages_per_s"],
        "offsite_readings_per_s": round(off["messages_per_s"] * n_readings / n_msgs),
        "ratio_offsite_bare": round(ratio, 3),
        "ratio_offsite_minimal": round(statistics.median(to_minimal), 3) if to_minimal else 0,
        "ratio_offsite_minimal_range": [round(min(to_minimal), 3), round(max(to_minimal), 3)]
        if to_minimal
        else None,
        "rates_per_round": {p: rate(p) for p in phases},
        "offsite_p50_ms": off["p50_ms"],
        "offsite_p99_ms": off["p99_ms"],
        "rules_lag_s": off["rules_lag_s"],
        "latency_samples": off["samples"],
        "publish_messages_per_s": off["publish_messages_per_s"],
        "peak_rss_mb": off["peak_rss_mb"],
        "rules_peak_rss_mb": off["rules_peak_rss_mb"],
        "worker_messages": off["worker_messages"],
        "worker_cpu_shares": off["cpu"],
        "offsite_batches": off["batches"],
        "offsite_writer_wait_s": off["writer_wait_s"],
        "cpu_us_per_message": {
            "bare": bare["cpu_us_per_message"],
            "minimal": minimal["cpu_us_per_message"],
            "offsite": off["cpu_us_per_message"],
        },
        "machine_busy": {
            "bare": bare["machine_busy"],
            "minimal": minimal["machine_busy"],
            "offsite": off["machine_busy"],
        },
        "stored": min(stored),
        "lost": n_readings - min(stored),
        "loadavg_1m_before": load_before,
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round whose rate is the median (its other figures come with it)."""
    ordered = sorted(runs, key=lambda r: r["messages_per_s"])
    return ordered[(len(ordered) - 1) // 2]


def _phase(
    ctx: Any,
    url: str,
    messages: list[list[tuple[str, bytes]]],
    topic: str,
    args: IngestBenchArgs,
    expected: int,
    target: Callable[..., None],
    extra: dict[str, Any],
    procs: dict[str, int],
    out: Callable[[str], None],
) -> dict[str, Any]:
    """Start the subscribers, then the publishers; wait until ``expected`` units
    (messages or readings) are counted or progress stalls; collect the figures, with
    the CPU each group of processes spent (``procs``: long-running ones by pid)."""
    name = target.__name__.strip("_").split("_")[0]
    results: Any = ctx.Queue()
    stop = ctx.Event()
    ready = [ctx.Event() for _ in range(args.workers)]
    counters = [ctx.Value("q", 0) for _ in range(args.workers)]
    group = f"bench{uuid.uuid4().hex[:6]}" if args.workers > 1 else None
    subs = [
        ctx.Process(
            target=target,
            kwargs=extra,
            name=f"{name}-{i}",
            args=(
                url,
                topic,
                group,
                f"{name}-{i}-{uuid.uuid4().hex[:6]}",
                ready[i],
                stop,
                counters[i],
                results,
            ),
        )
        for i in range(args.workers)
    ]
    for p in subs:
        p.start()
    for r, p in zip(ready, subs, strict=True):
        while not r.wait(0.2):
            if not p.is_alive():
                raise RuntimeError(f"{p.name} exited before it was ready")
    go = ctx.Event()
    pubq: Any = ctx.Queue()
    pubs = [
        ctx.Process(
            target=publish_process,
            args=(url, m, f"pub-{i}-{uuid.uuid4().hex[:6]}", go, pubq),
            name=f"pub-{i}",
        )
        for i, m in enumerate(messages)
    ]
    for p in pubs:
        p.start()
    time.sleep(0.5)  # publishers connected
    cpu0 = {k: cpu.tree_cpu_s(pid) for k, pid in procs.items()}
    go.set()
    last, last_change = -1, time.monotonic()
    while True:
        done = sum(c.value for c in counters)
        if done >= expected:
            break
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > STALL_S:
            out(f"  {name}: stalled at {done} of {expected}")
            break
        time.sleep(0.05)
    t_drained = _drain_rules(extra["db"]) if "db" in extra else time.time()
    cpu1 = {k: cpu.tree_cpu_s(pid) for k, pid in procs.items()}
    stop.set()
    pub_results = [pubq.get(timeout=60) for _ in pubs]
    sub_results = [results.get(timeout=120) for _ in subs]
    for p in (*pubs, *subs):
        p.join(30)
    failed = [r["error"] for r in sub_results if r.get("error")]
    if failed:
        raise RuntimeError(f"{name} worker failed: {'; '.join(failed)}")
    t_first = min(r["t_first"] for r in pub_results)
    t_end = max(r["t_last"] for r in sub_results)
    published = {k: t for r in pub_results for k, t in r["samples"]}
    lat = latency(published, (s for r in sub_results for s in r["samples"]))
    n = sum(r["messages"] for r in pub_results)
    spent = {
        "publishers": sum(r["cpu_s"] for r in pub_results),
        **{k: sum(r["cpu_s"].get(k, 0.0) for r in sub_results) for k in sub_results[0]["cpu_s"]},
        **{k: cpu1[k] - cpu0[k] for k in procs},
    }
    per_msg = {k: round(v / n * 1e6, 1) for k, v in spent.items()}
    per_msg["total"] = round(sum(per_msg.values()), 1)
    res = {
        "messages_per_s": round(n / (t_end - t_first)),
        "publish_messages_per_s": round(n / (max(r["t_acked"] for r in pub_results) - t_first)),
        "p50_ms": lat.p50_ms,
        "p99_ms": lat.p99_ms,
        "samples": lat.count,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in sub_results),
        "rules_peak_rss_mb": max((r.get("rules_peak_rss_mb") or 0.0) for r in sub_results),
        "cpu": [r.get("cpu") for r in sub_results],
        "cpu_us_per_message": per_msg,
        # the rule runner may still be judging when the last batch is stored: its lag
        "rules_lag_s": round(max(0.0, t_drained - t_end), 2) if "db" in extra else None,
        "machine_busy": round(
            sum(spent.values()) / (max(t_end, t_drained) - t_first) / (os.cpu_count() or 1), 2
        ),
        "worker_messages": [r["messages"] for r in sub_results],
        # offsite only: batches committed, and how long the pipeline waited for the writer
        "batches": sum(r.get("batches", 0) for r in sub_results),
        "writer_wait_s": round(sum(r.get("writer_wait_s", 0.0) for r in sub_results), 2),
    }
    out(
        f"  {name}: {res['messages_per_s']} messages/s, p50 {lat.p50_ms} ms, "
        f"p99 {lat.p99_ms} ms, per worker {res['worker_messages']}"
    )
    out(
        f"  {name}: CPU µs per message "
        + ", ".join(f"{k} {v}" for k, v in per_msg.items())
        + f"; machine {res['machine_busy']:.0%} busy"
    )
    return res


def _drain_rules(db: str, timeout_s: float = 300.0) -> float:
    """When the rule queue is empty (every stored reading judged), as a wall time."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(db, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM rule_inbox").fetchone()
            if row is not None and row[0] == 0:
                break
            time.sleep(0.02)
    return time.time()


def _bare_process(
    url: str,
    topic: str,
    group: str | None,
    client_id: str,
    ready: Event,
    stop: Event,
    counter: Synchronized[int],
    results: Queue,
) -> None:
    """Count messages, nothing else (paho acknowledges each when the callback returns)."""
    import paho.mqtt.client as mqtt

    from offsite.ingest.subscriber import parse_mqtt_url

    host, port, _, _ = parse_mqtt_url(url)
    samples: list[tuple[int, float]] = []
    state = {"n": 0, "t_last": 0.0}

    def on_message(_c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        now = time.time()
        state["n"] += 1
        state["t_last"] = now
        counter.value = int(state["n"])
        k = message_key(m.topic, m.payload)
        if sampled(k):
            samples.append((k, now))

    def on_subscribe(*_a: object) -> None:
        ready.set()

    if group:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        sub = f"$share/{group}/{topic}"
    else:
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        sub = topic
    c.on_message = on_message
    c.on_subscribe = on_subscribe
    c.on_connect = lambda cl, *_a: cl.subscribe(sub, qos=1)
    c.connect(host, port, 60)
    c0 = os.times()
    c.loop_start()
    stop.wait()
    c.disconnect()
    c.loop_stop()
    t = os.times()
    results.put(
        {
            "messages": state["n"],
            "t_last": state["t_last"],
            "samples": samples,
            "peak_rss_mb": peak_rss_mb(),
            "cpu_s": {"subscriber": t.user + t.system - c0.user - c0.system},
        }
    )


def _offsite_process(
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
    """One ingest worker, as ``offsite ingest`` runs it; its acknowledgements (which
    follow the commit) are timed for the latency samples."""
    from offsite.core.logs import setup_logging
    from offsite.core.readings import InboundMessage
    from offsite.core.settings import load_settings
    from offsite.ingest.service import IngestService

    setup_logging("WARNING")
    settings = load_settings(
        database_url=db,
        mqtt_url=url,
        mqtt_topic=topic,
        mqtt_client_id=client_id,
        mqtt_shared_group=group,
    )
    svc = IngestService(settings, db, url)
    svc.start()
    samples: list[tuple[int, float]] = []
    inner = svc.pipeline.ack

    def timed_ack(m: InboundMessage) -> None:
        inner(m)
        k = message_key(m.topic, m.payload)
        if sampled(k):
            samples.append((k, time.time()))

    svc.pipeline.ack = timed_ack
    cpu = _cpu_meter(svc)
    ready.set()

    def publish_progress() -> None:
        while not stop.wait(0.05):
            counter.value = svc.stats.readings_stored

    progress = threading.Thread(target=publish_progress, daemon=True)
    progress.start()
    stop.wait()
    shares = cpu()
    rules_pid = svc.runner.pid if svc.runner is not None else None
    rules_rss = peak_rss_mb(rules_pid) if rules_pid else None  # before it exits
    svc.stop()
    results.put(
        {
            "messages": svc.stats.messages,
            "t_last": svc.stats.last_commit_at,
            "samples": samples,
            "peak_rss_mb": peak_rss_mb(),
            "rules_peak_rss_mb": rules_rss,
            "cpu_s": shares.pop("cpu_s"),
            "cpu": shares,
            "batches": svc.stats.batches,
            "writer_wait_s": svc.stats.writer_wait_s,
            "error": repr(svc.error) if svc.error else None,
        }
    )


def _cpu_meter(svc: Any) -> Callable[[], dict[str, Any]]:
    """Where the worker's CPU goes from now on: its own process (decoding with validation
    timed apart, by the CPU clock of the thread running it) and the rule runner's process
    beside it. Returns a function giving the CPU seconds and shares so far."""
    spent = {"decode": 0.0}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.thread_time() - t

        return wrapper

    p = svc.pipeline
    p._process = timed("decode", p._process)
    rules_pid = svc.runner.pid if svc.runner is not None else None
    r0 = cpu.tree_cpu_s(rules_pid) if rules_pid else 0.0
    t0 = os.times()

    def shares() -> dict[str, Any]:
        t1 = os.times()
        own = (t1.user - t0.user) + (t1.system - t0.system)
        rules = (cpu.tree_cpu_s(rules_pid) - r0) if rules_pid else 0.0
        both = own + rules
        return {
            "cpu_s": {"worker": round(own, 2), "rules": round(rules, 2)},
            "rules": round(rules / both, 3) if both else 0.0,
            **{k: round(v / both, 3) if both else 0.0 for k, v in spent.items()},
        }

    return shares

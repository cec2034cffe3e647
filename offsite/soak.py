"""``offsite soak``: the same stream through the ingest path once without faults and once
per fault, each on services of its own, then the books: readings published = stored,
once each, **and** alerts the same as the fault-free run of the same data.

The faults are the real thing, not imitations:

- ``pg_crash``: the PostgreSQL cluster (one of the soak's own) stopped with
  ``pg_ctl stop -m immediate`` for a while, then started (crash recovery);
- ``broker_kill``: the database away long enough for a backlog to build, then back, and
  at that moment the broker SIGKILLed (what it accepted since its last autosave is gone
  unless ingest holds it), then restarted;
- ``runner_kill9``: kill -9 of the rule runner processes beside the workers;
- ``control``: a second fault-free run, the noise floor of the comparison;
- ``worker_kill9``: kill -9 of one of the two shared-subscription workers, restarted
  later (its share must not wait for it);
- ``ingest_kill9``: kill -9 of both workers at once, restarted.

Every scenario runs two ingest workers on a shared subscription with a disk spool each,
a private Mosquitto configured as deploy/mosquitto (lossless) but with
``autosave_interval 3600`` (a SIGKILL loses all it accepted since start: the worst
case of the deployed 30 s), and a fresh database on the soak's own PostgreSQL cluster,
so it can break things freely.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from offsite.core.errors import OffsiteError
from offsite.core.registry import Registry, registry_from_dict
from offsite.faults import POLLUTANTS, IngestProcess, Stream
from offsite.mosquitto import LOSSLESS, OwnMosquitto, mosquitto_binary
from offsite.pgcluster import OwnPostgres, pg_bin
from offsite.store.migrate import migrate
from offsite.store.registry import save_registry

SCENARIOS = (
    "clean",
    "control",
    "pg_crash",
    "broker_kill",
    "runner_kill9",
    "worker_kill9",
    "ingest_kill9",
)
TOPIC = "soak/devices/+/telemetry"
GROUP = "soak"
# compared between runs: what an alert says, not when the runner wrote it
ALERT_KEY = """SELECT rule, mn, pollutant, first_seen, last_seen, count,
                      round(worst_value::numeric, 6)
               FROM alerts"""


@dataclass
class ScenarioResult:
    name: str
    expected: int = 0  # readings the broker acknowledged to the publisher
    stored: int = 0
    distinct: int = 0
    dead_letters: int = 0
    alerts: int = 0
    alerts_differing: int | None = None  # against the clean run; None for the clean run
    drain_s: float | None = None  # fault over → everything acknowledged by then stored
    note: str = ""
    alert_keys: set[tuple[object, ...]] = field(default_factory=set, repr=False)

    @property
    def missing(self) -> int:
        return self.expected - self.distinct

    @property
    def duplicates(self) -> int:
        return self.stored - self.distinct

    @property
    def ok(self) -> bool:
        return (
            self.missing == 0
            and self.duplicates == 0
            and self.dead_letters == 0
            and not self.alerts_differing
        )


@dataclass
class SoakResult:
    scenarios: list[ScenarioResult] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return bool(self.scenarios) and all(s.ok for s in self.scenarios)

    def table(self) -> list[str]:
        head = (
            f"{'scenario':<14}{'expected':>10}{'stored':>10}{'missing':>9}{'twice':>7}"
            f"{'dead':>6}{'alerts':>8}{'≠clean':>8}{'drain s':>9}  note"
        )
        lines = [head, "-" * len(head)]
        for s in self.scenarios:
            differing = "-" if s.alerts_differing is None else str(s.alerts_differing)
            drain = "-" if s.drain_s is None else f"{s.drain_s:.1f}"
            lines.append(
                f"{s.name:<14}{s.expected:>10}{s.distinct:>10}{s.missing:>9}{s.duplicates:>7}"
                f"{s.dead_letters:>6}{s.alerts:>8}{differing:>8}{drain:>9}  {s.note}"
            )
        return lines


@dataclass(frozen=True)
class SoakPlan:
    devices: int
    rate: float
    duration_s: float
    outage_s: float
    start: datetime  # device time of the first message: the same data in every scenario
    spool: bool = True  # ingest's disk buffer on (off: the broker holds the backlog)

    @property
    def count(self) -> int:
        return int(self.duration_s * self.rate)


def run_soak(
    *,
    duration_s: float,
    devices: int,
    rate: float,
    stop: threading.Event,
    out: Callable[[str], None],
    scenarios: tuple[str, ...] = SCENARIOS,
    outage_s: float | None = None,
    keep: bool = False,
    spool: bool = True,
) -> SoakResult:
    """Run ``clean`` first (the reference), then each fault scenario; print the table."""
    binary = mosquitto_binary()
    if binary is None:
        raise OffsiteError("offsite soak needs the mosquitto binary (it kills a broker)")
    if pg_bin() is None:
        raise OffsiteError("offsite soak needs PostgreSQL's initdb and pg_ctl (it crashes one)")
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        raise OffsiteError(f"unknown soak scenarios {sorted(unknown)}; known: {SCENARIOS}")
    order = ["clean", *[s for s in scenarios if s != "clean"]]
    work = Path(tempfile.mkdtemp(prefix="offsite-soak-"))
    mns = [f"50A400000000000000{i:06X}" for i in range(devices)]
    n_per_device = int(duration_s * rate) // max(1, devices) + 1
    plan = SoakPlan(
        devices,
        rate,
        duration_s,
        outage_s if outage_s is not None else max(3.0, min(20.0, duration_s / 3)),
        datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=n_per_device + 120),
        spool,
    )
    out(
        f"soak: {len(order)} scenarios × {plan.count} messages "
        f"({devices} devices, {rate:g} msg/s, {duration_s:g} s, outages {plan.outage_s:g} s, "
        f"spool {'on' if spool else 'off'}); "
        f"work in {work}"
    )
    pg = OwnPostgres(work / "pg")
    pg.start()
    result = SoakResult()
    try:
        for name in order:
            if stop.is_set():
                break
            out(f"soak: scenario {name} …")
            t0 = time.monotonic()
            r = _scenario(name, plan, mns, pg, binary, work / name, stop, out)
            if name == "clean":
                reference = r.alert_keys
            else:
                r.alerts_differing = len(r.alert_keys ^ reference)
                if r.alerts_differing:
                    r.note = "; ".join(x for x in (r.note, _by_rule(reference, r.alert_keys)) if x)
            result.scenarios.append(r)
            out(
                f"soak: {name}: {r.distinct} of {r.expected} readings stored, "
                f"{r.duplicates} twice, {r.alerts} alerts"
                + ("" if r.alerts_differing is None else f" ({r.alerts_differing} ≠ clean)")
                + f" in {time.monotonic() - t0:.0f} s"
            )
    finally:
        pg.stop() if keep else pg.discard()
    for line in result.table():
        out(line)
    return result


def _registry(mns: list[str]) -> Registry:
    # a limit some values cross (10 … 45.5 mg/m³ by design of the stream): exceedance
    # alerts to compare, not only readings
    return registry_from_dict(
        {
            "enterprises": [
                {
                    "id": "SOAK",
                    "name": "Soak Works",
                    "points": [
                        {
                            "id": "SOAK-P1",
                            "kind": "flue_gas",
                            "limits": {"a21026": 40.0},
                            "devices": [{"mn": mn, "interval_s": 1} for mn in mns],
                        }
                    ],
                }
            ]
        }
    )


def _scenario(
    name: str,
    plan: SoakPlan,
    mns: list[str],
    pg: OwnPostgres,
    binary: str,
    work: Path,
    stop: threading.Event,
    out: Callable[[str], None],
) -> ScenarioResult:
    work.mkdir(parents=True, exist_ok=True)
    dbname = f"soak_{name}"
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    db = pg.url.rsplit("/", 1)[0] + f"/{dbname}"
    with psycopg.connect(db) as conn:
        migrate(conn)
        save_registry(conn, _registry(mns))
    # autosave far away: a SIGKILL loses everything accepted since start, the worst case
    # of deploy/mosquitto (autosave_interval 30: killed just before a save)
    broker = OwnMosquitto(work / "mosquitto", LOSSLESS + "autosave_interval 3600\n", binary=binary)
    rules = work / "rules.toml"  # outages are injected on purpose: not "offline"
    rules.write_text('base = "default"\n[offline]\nenabled = false\n')
    workers = [
        IngestProcess(
            {
                "OFFSITE_DATABASE_URL": db,
                "OFFSITE_MQTT_URL": broker.url,
                "OFFSITE_MQTT_TOPIC": TOPIC,
                "OFFSITE_MQTT_CLIENT_ID": f"soak-{i}",
                "OFFSITE_MQTT_SHARED_GROUP": GROUP,
                "OFFSITE_RULES_FILE": str(rules),
                **({"OFFSITE_SPOOL_DIR": str(work / "spool")} if plan.spool else {}),
            },
            work / f"ingest-{i}.log",
        )
        for i in range(2)
    ]
    result = ScenarioResult(name)
    stream: Stream | None = None
    try:
        broker.start()
        for w in workers:
            w.start()
        # the persistent sessions must exist before the first publish (MQTT queues only
        # for subscriptions that exist; a deployment's exist from day one)
        deadline = time.monotonic() + 60
        while _workers_connected(db) < len(workers):
            if time.monotonic() > deadline or not all(w.running for w in workers):
                raise OffsiteError(
                    "ingest did not start:\n" + "\n".join(w.output()[-1500:] for w in workers)
                )
            time.sleep(0.2)
        # a graceful restart saves the sessions (as autosave would within 30 s of their
        # creation in a deployment): the SIGKILL later loses the backlog, not the sessions
        broker.stop()
        broker.start()
        time.sleep(4.0)  # paho reconnects within 1 s, then resubscribes
        stream = Stream(
            broker.url, TOPIC.replace("+", "{mn}"), mns, plan.count, plan.rate, start=plan.start
        ).start()
        stop.wait(plan.duration_s * 0.3)
        fault_over, note = _inject(name, plan, pg, broker, workers, stop, out)
        acked_by_then = stream.readings
        if not stream.wait(plan.duration_s + 120):
            note += f"; broker acknowledged only {stream.acked} of {plan.count}"
        stream.close()
        result.expected = stream.readings
        # drained: everything acknowledged when the fault was over, stored
        deadline = time.monotonic() + 180
        drained_at = None
        while time.monotonic() < deadline and not stop.is_set():
            stored = _count(db)[1]
            if drained_at is None and stored >= acked_by_then:
                drained_at = time.monotonic()
            if stored >= result.expected:
                break
            time.sleep(0.25)
        if fault_over is not None and drained_at is not None:
            result.drain_s = max(0.0, drained_at - fault_over)
        _judged(db, stop)
        for w in workers:
            w.stop()
        result.stored, result.distinct = _count(db)
        with psycopg.connect(db) as conn:
            row = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
            result.dead_letters = int(row[0]) if row else 0
            result.alert_keys = {tuple(r) for r in conn.execute(ALERT_KEY).fetchall()}
        result.alerts = len(result.alert_keys)
        result.note = note.strip("; ")
        return result
    finally:
        if stream is not None:
            stream.close()
        for w in workers:
            w.stop()
        broker.stop()


def _inject(
    name: str,
    plan: SoakPlan,
    pg: OwnPostgres,
    broker: OwnMosquitto,
    workers: list[IngestProcess],
    stop: threading.Event,
    out: Callable[[str], None],
) -> tuple[float | None, str]:
    """Inject the scenario's fault; return when it was over (monotonic) and a note."""
    if name in ("clean", "control"):  # control: a second fault-free run (the noise floor)
        return None, ""
    if name == "pg_crash":
        out("  fault: PostgreSQL stopped -m immediate")
        pg.crash()
        stop.wait(plan.outage_s)
        pg.start()
        return time.monotonic(), f"database down {plan.outage_s:g} s"
    if name == "broker_kill":
        out("  fault: PostgreSQL crashed; back; then the broker SIGKILLed")
        pg.crash()
        stop.wait(plan.outage_s)
        pg.start()
        broker.kill9()
        stop.wait(2.0)
        broker.start()
        return time.monotonic(), f"database down {plan.outage_s:g} s, then broker SIGKILL"
    if name == "runner_kill9":
        pids = [p for w in workers if w.proc is not None for p in _runner_pids(w.proc.pid)]
        out(f"  fault: kill -9 of the rule runners {pids}")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        stop.wait(plan.outage_s)
        back = [p for w in workers if w.proc is not None for p in _runner_pids(w.proc.pid)]
        return time.monotonic(), (
            f"{len(pids)} runners killed; {len(back)} running {plan.outage_s:g} s later"
        )
    if name == "worker_kill9":
        out("  fault: kill -9 of one of the two workers")
        workers[0].kill9()
        stop.wait(plan.outage_s)
        workers[0].start()
        return time.monotonic(), f"worker away {plan.outage_s:g} s"
    if name == "ingest_kill9":
        out("  fault: kill -9 of both workers")
        for w in workers:
            w.kill9()
        stop.wait(min(plan.outage_s, 5.0))
        for w in workers:
            w.start()
        return time.monotonic(), "both workers killed"
    raise OffsiteError(f"unknown scenario {name}")


def _by_rule(reference: set[tuple[object, ...]], got: set[tuple[object, ...]]) -> str:
    """Which rules' alerts differ from the clean run: "capture +3/-2" (extra/missing)."""
    extra = Counter(str(k[0]) for k in got - reference)
    missing = Counter(str(k[0]) for k in reference - got)
    return "alerts " + ", ".join(
        f"{rule} +{extra[rule]}/-{missing[rule]}" for rule in sorted(set(extra) | set(missing))
    )


def _runner_pids(pid: int) -> list[int]:
    """The rule runner processes (multiprocessing spawn children) of an ingest worker."""
    found: list[int] = []
    children: list[str] = []
    # every thread's children: a runner restarted by the supervisor thread is listed
    # under that thread's task, not the main one's
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += (task / "children").read_text().split()
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return found


def _judged(db: str, stop: threading.Event, timeout: float = 90.0) -> None:
    """Wait until the rule queue is empty (everything stored has been judged)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and not stop.is_set():
        with psycopg.connect(db) as conn:
            row = conn.execute("SELECT count(*) FROM rule_inbox").fetchone()
        quiet = quiet + 1 if row and row[0] == 0 else 0
        if quiet >= 4:
            return
        time.sleep(0.5)


def _count(db: str) -> tuple[int, int]:
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (mn, pollutant, ts)) FROM readings"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _workers_connected(db: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM ingest_workers WHERE broker_connected").fetchone()
    return int(row[0]) if row else 0


__all__ = ["POLLUTANTS", "SCENARIOS", "ScenarioResult", "SoakResult", "run_soak"]

"""The rule runner: judges what every ingest worker stored, in one place.

With several workers on a shared subscription, one device's messages reach different
workers, but detectors keep per-series state (windows, EWMAs, averages, "N in a row").
So workers only *queue* the readings they store (``store.rule_inbox``, in the same
transaction), and every worker runs a ``RuleRunner`` that competes for a PostgreSQL
advisory lock: the holder builds the engine (rebuilding its state from the store, minus
what is still queued), judges the queue in device-time order and writes the alerts and
the queue's removal in one transaction. If it dies, its lock goes with its connection and
another worker's runner takes over within ``retry_s``. The offline timer runs here too.

This also closes the gap between storing readings and judging them: a crash in between
leaves them queued, not forgotten.

Leadership is provable, not assumed: every judging transaction runs on the very
connection (server session) that holds the session lock. A database restart ends that
session and its lock together, so the next write fails instead of landing on a new
server without the lock; the runner then drops its in-memory state, reconnects within
seconds (short connect timeouts, TCP keepalives, no pool to wait on), re-takes the lock
and rebuilds from the store. A slice whose transaction failed is judged again from the
queue by the rebuilt engine: judged at least once, with its effect written once.

Sharded (``shards`` > 1, OFFSITE_RULE_SHARDS): a device belongs to shard crc32(MN) mod
N, ingest queues each shard's readings in rows of their own, and each shard is led
through an advisory lock of its own, by whichever runner holds it. A runner leads up
to a fair share of the shards, ceil(N / runners present), and gives back what it holds
beyond that when another runner arrives; every second it takes free shards up to its
share, so a dead runner's shards are led again within seconds. Each shard led has its
own engine and alert book (per-device state, so a device's state lives in one runner),
its own slices and its own transactions. Who takes or gives back a shard decides it
under one transaction-scoped lock (the gate), which also keeps runners configured with
another count from leading beside them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil
from pathlib import Path

import psycopg

from offsite.rules.alerts import AlertBook, Plan
from offsite.rules.config import RuleSet
from offsite.rules.engine import DeviceMeta, Evaluation, RuleEngine
from offsite.rules.registry_view import device_meta
from offsite.rules.rewritten import NEVER, Rewrite
from offsite.rules.rewritten import RULE as REWRITTEN
from offsite.rules.rewritten import findings as rewrite_findings
from offsite.rules.rules_file import load_rules
from offsite.store.alerts import apply_plan, load_active
from offsite.store.audit import append_sync
from offsite.store.cases import open_cases_for
from offsite.store.conflicts import mark_alerted
from offsite.store.conflicts import take as take_rewrites
from offsite.store.errors import unavailable as transient
from offsite.store.pool import KEEPALIVES
from offsite.store.readings import day_lag_readings, recent_readings
from offsite.store.registry import load_registry
from offsite.store.rule_inbox import (
    NOTIFY_CHANNEL,
    Queued,
    done,
    queued_keys,
    reshard,
    set_shard_count,
    shard_of,
    take,
    watermark,
)

log = logging.getLogger(__name__)
RULES_LOCK = 0x0FF5174  # "offsite rule runner": the one shard's lock when there is one
# Sharded runners' advisory locks use the two-int key space (apart from the bigint keys
# of migrations, upkeep, the audit log and RULES_LOCK): (SHARD_CLASS, 0) the gate,
# (SHARD_CLASS, N) held shared by every runner present with N shards, and
# (SHARD_CLASS, N << 16 | k) shard k of N.
SHARD_CLASS = 0x0FF5
GATE = 0
MAX_SHARDS = 1024
IDLE_POLL_S = 0.2
SLICE_ROWS = 16  # queue rows a slice takes at most, per shard of the count
MISMATCH_LOG_S = 30.0  # how often a runner kept out by another shard count says so


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    rules_file: Path | None = None
    warm_s: float = 14400.0
    warm_max: int = 240
    clear_s: float = 300.0
    reopen_s: float = 21600.0
    stale_s: float = 10.0  # a worker silent this long no longer holds the runner back
    reorder_s: float = 0.25
    offline_check_s: float = 5.0
    registry_refresh_s: float = 30.0
    retry_s: float = 1.0  # between tries to lead (the database away, or another leads)
    drain_s: float = 20.0  # stopping: the queue judged for at most this long
    case_response_s: float = 259200.0  # an engine-opened case asks for an answer within
    # copy-paste's memory: at a takeover, the same time of day on each of the last
    # ``copy_days`` days, from ``copy_before_s`` before to ``copy_after_s`` after it
    copy_days: int = 7
    copy_before_s: float = 3600.0
    copy_after_s: float = 7200.0
    shards: int = 1  # rule shards: devices spread by crc32(MN) mod shards (see module doc)

    def __post_init__(self) -> None:
        if not 1 <= self.shards <= MAX_SHARDS:
            raise ValueError(f"rule shards must be 1 to {MAX_SHARDS}, not {self.shards}")


def shard_lock(shards: int, k: int) -> tuple[int, ...]:
    """The advisory lock key of shard ``k`` of ``shards`` (one shard: RULES_LOCK, as
    before there were shards)."""
    return (RULES_LOCK,) if shards == 1 else (SHARD_CLASS, shards << 16 | k)


def fair_share(shards: int, runners: int) -> int:
    """How many shards one of ``runners`` runners present should lead."""
    return ceil(shards / max(1, runners))


@dataclass(frozen=True, slots=True)
class Holders:
    """Who leads what, from pg_locks: (shard count, shard, backend pid) per shard lock
    held, and how many runners of each count are present."""

    held: list[tuple[int, int, int]]
    present: dict[int, int]


def balance(
    shards: int, mine: set[int], holders: Holders, me: int, start: int = 0
) -> tuple[list[int], list[int], set[int]]:
    """(shards to try to take, shards to give back, other counts leading): a runner
    leads up to its fair share; it takes only free shards, from ``start`` round, and
    gives back the highest beyond its share. Nothing at all while runners with another
    shard count lead (their devices overlap ours). Pure."""
    others = {c for c, _, pid in holders.held if pid != me and c != shards}
    if others:
        return [], [], others
    share = fair_share(shards, holders.present.get(shards, 0))
    if len(mine) > share:
        return [], sorted(mine)[share:], set()
    busy = mine | {k for c, k, pid in holders.held if c == shards}
    free = [k % shards for k in range(start, start + shards) if k % shards not in busy]
    return free[: share - len(mine)], [], set()


def read_holders(conn: psycopg.Connection) -> Holders:
    """The rule runners' advisory locks in this database (see ``SHARD_CLASS``)."""
    rows = conn.execute(
        """SELECT objsubid, classid::bigint, objid::bigint, mode, pid FROM pg_locks
           WHERE locktype = 'advisory' AND granted
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND ((objsubid = 2 AND classid::bigint = %s::bigint)
                  OR (objsubid = 1 AND classid::bigint = %s::bigint
                      AND objid::bigint = %s::bigint))""",
        (SHARD_CLASS, RULES_LOCK >> 32, RULES_LOCK & 0xFFFFFFFF),
    ).fetchall()
    held: list[tuple[int, int, int]] = []
    present: dict[int, int] = {}
    for sub, _, objid, mode, pid in rows:
        if sub == 1:
            held.append((1, 0, pid))
        elif objid >= 1 << 16:
            held.append((objid >> 16, objid & 0xFFFF, pid))
        elif objid != GATE and mode == "ShareLock":
            present[objid] = present.get(objid, 0) + 1
    return Holders(held, present)


@dataclass(slots=True)
class Shard:
    """What a runner keeps for one shard it leads: the engine and the alert book."""

    k: int
    engine: RuleEngine
    book: AlertBook


def _audit_rules(conn: psycopg.Connection, rules: RuleSet) -> None:
    """Rule changes are on the audit record: the rules file in force, by digest, written
    when it differs from the last one recorded."""
    row = conn.execute("""SELECT data FROM audit_log WHERE action = 'rules.loaded'
                          ORDER BY seq DESC LIMIT 1""").fetchone()
    if row is not None and json.loads(row[0]).get("digest") == rules.digest:
        return
    append_sync(
        conn,
        "engine",
        "rules.loaded",
        f"rules:{rules.source}",
        {
            "version": rules.version,
            "digest": rules.digest,
            "rules": rules.names,
            "silences": len(rules.silences),
        },
    )
    log.info("rules %s (%s) in force, recorded in the audit log", rules.version, rules.digest[:12])


class RuleRunner:
    def __init__(
        self,
        database_url: str,
        config: RunnerConfig,
        on_events: Callable[[list[tuple[int, str]]], None] = lambda ev: None,
        unavailable: Callable[[BaseException], bool] = transient,
    ) -> None:
        self.database_url = database_url
        self.cfg = config
        self.on_events = on_events
        self.unavailable = unavailable
        self.shards: dict[int, Shard] = {}  # the shards this runner leads
        self.judged = 0  # readings judged while leading, counted once committed
        self._late = 0  # late readings of shards no longer led
        # the leader's connection: it holds the locks, and every write goes through it
        self.conn: psycopg.Connection | None = None
        self._mismatch_logged = -MISMATCH_LOG_S

    @property
    def leading(self) -> bool:
        return bool(self.shards)

    @property
    def engine(self) -> RuleEngine | None:
        """The engine of the first shard led (the only one, unsharded)."""
        return next(iter(self.shards.values())).engine if self.shards else None

    @property
    def book(self) -> AlertBook | None:
        return next(iter(self.shards.values())).book if self.shards else None

    @property
    def late(self) -> int:
        """Readings judged after a newer one of their series, over every shard led."""
        return self._late + sum(sh.engine.late for sh in self.shards.values())

    def connect(self) -> psycopg.Connection:
        """A connection that notices a dead server within seconds (see KEEPALIVES)."""
        return psycopg.connect(
            self.database_url, autocommit=True, application_name="offsite-rules", **KEEPALIVES
        )

    # -- leadership -----------------------------------------------------------------
    def run(self, stop: threading.Event, hurry: threading.Event | None = None) -> None:
        """Until ``stop``: lead what shards it can; judge them.

        At least one try, even when stopped before it: a worker stopped while its
        runner was still starting has queued what it stored, and if no other runner
        leads, this one judges it before exiting rather than leave it to the next start.
        ``hurry`` (the worker is gone) ends it at once: no final judging, and the locks
        are released with the connection.
        """
        hurry = hurry or threading.Event()
        tried = False
        lost_at: float | None = None  # when the database went away, for one log line
        while not (tried and stop.is_set()) and not hurry.is_set():
            tried = True
            try:
                with self.connect() as conn:
                    if lost_at is not None:
                        log.info(
                            "rule runner: database back after %.1f s", time.monotonic() - lost_at
                        )
                        lost_at = None
                    self.conn = conn
                    # present, for the others' fair share, as long as this session lives
                    conn.execute(
                        "SELECT pg_advisory_lock_shared(%s, %s)", (SHARD_CLASS, self.cfg.shards)
                    )
                    self._lead(stop, hurry)
            except Exception as exc:
                if not self.unavailable(exc):
                    log.exception("rule runner stopped leading on an unexpected error")
                elif lost_at is None:
                    lost_at = time.monotonic()
                    log.warning(
                        "rule runner lost the database (%s); retrying every %.1f s",
                        str(exc).strip()[:200],
                        self.cfg.retry_s,
                    )
            finally:
                self.conn = None
                if self.shards:
                    log.info("rule runner: no longer leading")
                self._drop(list(self.shards))  # the locks went with the connection
            if hurry.wait(self.cfg.retry_s):
                break

    def _try_lock(self, conn: psycopg.Connection, k: int = 0) -> bool:
        key = shard_lock(self.cfg.shards, k)
        row = conn.execute(
            f"SELECT pg_try_advisory_lock({', '.join(['%s'] * len(key))})", key
        ).fetchone()
        return bool(row and row[0])

    def _balance(self) -> None:
        """Take free shards up to this runner's fair share, give back what is beyond
        it, under the gate (see the module doc); build the state of what it took."""
        conn = self.conn
        assert conn is not None
        n = self.cfg.shards
        me = conn.info.backend_pid
        taken: list[int] = []
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (SHARD_CLASS, GATE))
            want, give, others = balance(n, set(self.shards), read_holders(conn), me, me % n)
            if others:
                if time.monotonic() - self._mismatch_logged > MISMATCH_LOG_S:
                    self._mismatch_logged = time.monotonic()
                    log.warning(
                        "rule runner (%d shards) waits: runners with %s shards lead; stop "
                        "them all to change OFFSITE_RULE_SHARDS",
                        n,
                        "/".join(map(str, sorted(others))),
                    )
                return
            for k in give:
                self._drop([k])
                key = shard_lock(n, k)
                conn.execute(f"SELECT pg_advisory_unlock({', '.join(['%s'] * len(key))})", key)
                log.info("rule runner: gave back shard %d of %d (another runner is here)", k, n)
            taken = [k for k in want if self._try_lock(conn, k)]
            if taken:
                was = set_shard_count(conn, n)
                if was is not None:
                    log.warning(
                        "rule shards: %d, was %d; rows queued by %d are split again as they "
                        "are judged",
                        n,
                        was,
                        was,
                    )
        if taken:
            listening = bool(self.shards)
            self._start(taken)
            if not listening:
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        elif give and not self.shards:
            conn.execute(f"UNLISTEN {NOTIFY_CHANNEL}")

    def _drop(self, ks: list[int]) -> None:
        for k in ks:
            sh = self.shards.pop(k, None)
            if sh is not None:
                self._late += sh.engine.late

    def _start(self, ks: list[int] | None = None) -> None:
        """Build the engines and alert books of shards ``ks`` (all of them by default)
        from the store."""
        conn = self.conn
        assert conn is not None
        n = self.cfg.shards
        ks = list(range(n)) if ks is None else ks
        now = datetime.now(UTC)
        with conn.transaction():
            # one snapshot for all of it: read in two, a batch committed between reading
            # the queue and reading the history would be in the history but not seen as
            # queued, so warmed from the store and then judged again from the queue,
            # after newer readings of its series ("late"; seen on a takeover mid-stream)
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            registry = load_registry(conn)
            active = load_active(conn)
            heard: dict[str, datetime] = dict(
                conn.execute("SELECT mn, last_received_at FROM device_status").fetchall()
            )
            queued = queued_keys(conn)
            history = recent_readings(
                conn, self.cfg.warm_max, now - timedelta(seconds=self.cfg.warm_s)
            )
            # a series replayed up to the cap has older history: not a new series
            per_series = Counter((r.mn, r.pollutant, r.kind) for r in history if not r.stat)
            older = {key for key, c in per_series.items() if c >= self.cfg.warm_max}
            rules = load_rules(self.cfg.rules_file)
            # which pollutants a long memory needs (each shard remembers its own devices)
            probe = RuleEngine(rules, device_meta(registry), started_at=now)
            long_ago = day_lag_readings(
                conn,
                sorted(probe.long_memory_pollutants()),
                now,
                self.cfg.copy_days,
                timedelta(seconds=self.cfg.copy_before_s),
                timedelta(seconds=self.cfg.copy_after_s),
            )
        with conn.transaction():
            _audit_rules(conn, rules)
        meta = self._split(device_meta(registry))
        for k in ks:
            mine = meta.get(k, {})
            engine = RuleEngine(rules, mine, started_at=now)
            engine.note_received({m: t for m, t in heard.items() if shard_of(m, n) == k})
            remembered = engine.remember([r for r in long_ago if shard_of(r.mn, n) == k])
            # what is still queued is judged from the queue, not replayed as history
            warmed = engine.warm(
                [
                    r
                    for r in history
                    if shard_of(r.mn, n) == k
                    and (r.mn, r.pollutant, r.kind.value, r.ts.timestamp()) not in queued
                ],
                older=older,
            )
            book = engine.alert_book(
                timedelta(seconds=self.cfg.clear_s),
                {REWRITTEN: NEVER},  # a person closes those
            )
            mine_active = [a for a in active if shard_of(a[0][1], n) == k]
            book.load(mine_active)
            self.shards[k] = Shard(k, engine, book)
            log.info(
                "rule runner: leading%s (%d rules, state rebuilt from %d stored values, "
                "long memories from %d, %d alerts active)",
                f" shard {k} of {n}" if n > 1 else "",
                len(engine.rules.rules),
                warmed,
                remembered,
                len(mine_active),
            )

    def _split(self, meta: dict[str, DeviceMeta]) -> dict[int, dict[str, DeviceMeta]]:
        out: dict[int, dict[str, DeviceMeta]] = {}
        for mn, m in meta.items():
            out.setdefault(shard_of(mn, self.cfg.shards), {})[mn] = m
        return out

    def _lead(self, stop: threading.Event, hurry: threading.Event) -> None:
        conn = self.conn
        assert conn is not None
        n = self.cfg.shards
        next_balance = next_offline = time.monotonic()
        next_registry = next_offline + self.cfg.registry_refresh_s  # loaded by _start
        while True:
            now = time.monotonic()
            if now >= next_balance:  # once even when stopped already (see ``run``)
                self._balance()
                next_balance = now + self.cfg.retry_s
            if stop.is_set() or hurry.is_set():
                break
            if not self.shards:  # standing by on one session: no new connection per try
                hurry.wait(max(0.0, next_balance - time.monotonic()))
                next_offline = time.monotonic()
                next_registry = next_offline + self.cfg.registry_refresh_s
                continue
            if now >= next_registry:
                meta = self._split(device_meta(load_registry(conn)))
                for sh in self.shards.values():
                    sh.engine.update_registry(meta.get(sh.k, {}))
                    sh.book.intervals = sh.engine.intervals()
                next_registry = now + self.cfg.registry_refresh_s
            if now >= next_offline:
                heard: dict[str, datetime] = dict(
                    conn.execute("SELECT mn, last_received_at FROM device_status").fetchall()
                )
                for sh in list(self.shards.values()):
                    sh.engine.note_received(
                        {m: t for m, t in heard.items() if shard_of(m, n) == sh.k}
                    )
                    self._write(sh, sh.engine.check_offline(datetime.now(UTC)))
                next_offline = now + self.cfg.offline_check_s
            rewrites = self._judge_rewrites()
            if self._judge() or rewrites:
                continue  # more may be queued: no waiting
            wait = max(0.0, min(next_offline, next_registry, next_balance) - time.monotonic())
            # a commit notifies; a slower worker's promise moves without one: poll too
            list(conn.notifies(timeout=min(wait, IDLE_POLL_S), stop_after=1))
        # stopping: what was queued before the stop is judged before the lead goes, for
        # a bounded time (the stop has a grace period), and not at all in a hurry
        deadline = time.monotonic() + self.cfg.drain_s
        while (
            not hurry.is_set()
            and time.monotonic() < deadline
            and (self._judge() or self._judge_rewrites())
        ):
            pass

    # -- judging --------------------------------------------------------------------
    def _judge(self) -> bool:
        """Judge one slice of each shard led; True if there was something to judge."""
        busy = False
        for sh in list(self.shards.values()):
            busy = self._judge_shard(sh) or busy
        return busy

    def _judge_shard(self, sh: Shard) -> bool:
        """Judge one slice of a shard's queue; True if there was something to judge.

        The slice, its alerts and its removal from the queue commit together on the
        lock's own connection. If the database fails meanwhile, the error goes up and
        the lead with it: the transaction rolled back, the queue is as it was, and the
        next leader (this runner, rebuilt from the store) judges the slice again."""
        assert self.conn is not None
        conn = self.conn
        plan: Plan | None = None
        try:
            with conn.transaction():
                mark = watermark(conn, timedelta(seconds=self.cfg.stale_s))
                # rows split by another shard count first, in their place in the queue
                reshard(conn, self.cfg.shards, mark)
                # readings received within ``reorder_s`` of each other by different
                # workers may carry inverted receive times: judged in device-time order
                q = take(
                    conn,
                    mark,
                    timedelta(seconds=self.cfg.reorder_s),
                    # a shard's rows hold about 1/N of a batch: as many readings a slice
                    limit=SLICE_ROWS * self.cfg.shards,
                    shards=self.cfg.shards,
                    shard=sh.k,
                )
                if not q.ids:
                    return False
                ev = sh.engine.evaluate_arrays(q.keys, q.sidx, q.t, q.x, q.flag, q.heard)
                plan = sh.book.plan(ev.findings, ev.seen, ev.judged)
                events = apply_plan(conn, plan, timedelta(seconds=self.cfg.reopen_s))
                self._open_cases(sh, conn, events)
                done(conn, q)
        except psycopg.DatabaseError as exc:
            if plan is None or self.unavailable(exc) or conn.broken or conn.closed:
                raise
            # refused for what it holds (an alert for a device deleted meanwhile): the
            # readings are stored; drop these alert changes rather than loop on them
            log.error(
                "database refused %d alert changes (%s); dropped",
                len(plan.upserts) + len(plan.clears),
                exc,
            )
            self._commit(sh, Plan(), q)
            return True
        self.judged += q.n
        self._applied(sh, plan, events)
        return True

    def _judge_rewrites(self) -> bool:
        """Alert on rewritten history the store kept (``store.conflicts``) for the devices
        of the shards led, marking it alerted in the alert's transaction, on the lock's
        own connection; True if there was any. Not device-ordered and stateless, so apart
        from the queue: a rewrite changes no detector state. (Another shard's rewrites
        stay for its leader.)"""
        assert self.conn is not None
        conn = self.conn
        n = self.cfg.shards
        found = False
        with conn.transaction():
            mine: dict[int, list[Rewrite]] = {}
            for r in take_rewrites(conn):
                if shard_of(r.mn, n) in self.shards:
                    mine.setdefault(shard_of(r.mn, n), []).append(r)
            for k, rewrites in mine.items():
                sh = self.shards[k]
                plan = sh.book.plan(rewrite_findings(rewrites), {})
                try:
                    with conn.transaction():
                        events = apply_plan(conn, plan, timedelta(seconds=self.cfg.reopen_s))
                        self._open_cases(sh, conn, events)
                except psycopg.DatabaseError as exc:
                    if self.unavailable(exc) or conn.broken or conn.closed:
                        raise
                    # refused for what it holds (a device deleted meanwhile): the rewrites
                    # stay on record; the alert is dropped rather than retried forever
                    log.error(
                        "database refused %d rewritten-history alerts (%s)", len(rewrites), exc
                    )
                    plan, events = Plan(), []
                mark_alerted(conn, [r.id for r in rewrites])
                log.warning(
                    "rewritten history: %d resent values differ from the stored ones",
                    len(rewrites),
                )
                self._applied(sh, plan, events)
                found = True
        return found

    def _open_cases(
        self, sh: Shard, conn: psycopg.Connection, events: list[tuple[int, str]]
    ) -> None:
        """Cases for critical alerts, in the alerts' own transaction (rules file [cases])."""
        open_cases_for(
            conn,
            events,
            sh.engine.rules.case_open_severity,
            timedelta(seconds=self.cfg.case_response_s),
            datetime.now(UTC),
        )

    def _write(self, sh: Shard, ev: Evaluation) -> None:
        plan = sh.book.plan(ev.findings, ev.seen, ev.judged)
        if plan:
            self._commit(sh, plan, None)

    def _commit(self, sh: Shard, plan: Plan, taken: Queued | None) -> None:
        """Write a plan (and a slice's removal) on the lock's connection, or raise."""
        assert self.conn is not None
        with self.conn.transaction():
            events = apply_plan(self.conn, plan, timedelta(seconds=self.cfg.reopen_s))
            self._open_cases(sh, self.conn, events)
            if taken is not None:
                done(self.conn, taken)
        self.judged += taken.n if taken is not None else 0
        self._applied(sh, plan, events)

    def _applied(self, sh: Shard, plan: Plan, events: list[tuple[int, str]]) -> None:
        sh.book.applied(plan)
        self.on_events(events)

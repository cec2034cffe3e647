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
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from offsite.rules.alerts import AlertBook, Plan
from offsite.rules.config import RuleSet, load_rules
from offsite.rules.engine import Evaluation, RuleEngine
from offsite.rules.registry_view import device_meta
from offsite.rules.rewritten import NEVER
from offsite.rules.rewritten import RULE as REWRITTEN
from offsite.rules.rewritten import findings as rewrite_findings
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
    take,
    watermark,
)

log = logging.getLogger(__name__)
RULES_LOCK = 0x0FF5174  # "offsite rule runner"
IDLE_POLL_S = 0.2


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
        self.leading = False
        self.judged = 0  # readings judged while leading, counted once committed
        self.engine: RuleEngine | None = None
        self.book: AlertBook | None = None
        # the leader's connection: it holds the lock, and every write goes through it
        self.conn: psycopg.Connection | None = None

    def connect(self) -> psycopg.Connection:
        """A connection that notices a dead server within seconds (see KEEPALIVES)."""
        return psycopg.connect(
            self.database_url, autocommit=True, application_name="offsite-rules", **KEEPALIVES
        )

    # -- leadership -----------------------------------------------------------------
    def run(self, stop: threading.Event, hurry: threading.Event | None = None) -> None:
        """Until ``stop``: try to lead; while leading, judge the queue.

        At least one try, even when stopped before it: a worker stopped while its
        runner was still starting has queued what it stored, and if no other runner
        leads, this one judges it before exiting rather than leave it to the next start.
        ``hurry`` (the worker is gone) ends it at once: no final judging, and the lock
        is released with the connection.
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
                    # standing by on one session: no new connection per try
                    while not self._try_lock(conn):
                        if stop.is_set() or hurry.wait(self.cfg.retry_s):
                            break
                    else:
                        conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                        self.conn = conn
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
                if self.leading:
                    log.info("rule runner: no longer leading")
                self.leading = False
            if hurry.wait(self.cfg.retry_s):
                break

    @staticmethod
    def _try_lock(conn: psycopg.Connection) -> bool:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (RULES_LOCK,)).fetchone()
        return bool(row and row[0])

    def _start(self) -> None:
        """Build the engine and the alert book from the store."""
        conn = self.conn
        assert conn is not None
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
            rules = load_rules(self.cfg.rules_file)
            engine = RuleEngine(rules, device_meta(registry), started_at=now)
            long_ago = day_lag_readings(
                conn,
                sorted(engine.long_memory_pollutants()),
                now,
                self.cfg.copy_days,
                timedelta(seconds=self.cfg.copy_before_s),
                timedelta(seconds=self.cfg.copy_after_s),
            )
        with conn.transaction():
            _audit_rules(conn, rules)
        engine.note_received(heard)
        remembered = engine.remember(long_ago)
        # what is still queued is judged from the queue, not replayed as history
        warmed = engine.warm(
            [
                r
                for r in history
                if (r.mn, r.pollutant, r.kind.value, r.ts.timestamp()) not in queued
            ]
        )
        book = AlertBook(
            {**engine.clear_after(), REWRITTEN: NEVER},  # a person closes those
            default_clear_after=timedelta(seconds=self.cfg.clear_s),
            cooldown=engine.cooldowns(),
            intervals=engine.intervals(),
        )
        book.load(active)
        self.engine, self.book = engine, book
        log.info(
            "rule runner: leading (%d rules, state rebuilt from %d stored values, "
            "long memories from %d, %d alerts active)",
            len(engine.rules.rules),
            warmed,
            remembered,
            len(active),
        )

    def _lead(self, stop: threading.Event, hurry: threading.Event) -> None:
        conn = self.conn
        assert conn is not None
        self._start()
        self.leading = True
        assert self.engine is not None
        next_offline = time.monotonic()
        next_registry = next_offline + self.cfg.registry_refresh_s  # just loaded by _start
        while not stop.is_set() and not hurry.is_set():
            now = time.monotonic()
            if now >= next_registry:
                self.engine.update_registry(device_meta(load_registry(conn)))
                if self.book is not None:
                    self.book.intervals = self.engine.intervals()
                next_registry = now + self.cfg.registry_refresh_s
            if now >= next_offline:
                self.engine.note_received(
                    dict(conn.execute("SELECT mn, last_received_at FROM device_status").fetchall())
                )
                self._write(self.engine.check_offline(datetime.now(UTC)))
                next_offline = now + self.cfg.offline_check_s
            rewrites = self._judge_rewrites()
            if self._judge() or rewrites:
                continue  # more may be queued: no waiting
            wait = max(0.0, min(next_offline, next_registry) - time.monotonic())
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
        """Judge one slice of the queue; True if there was something to judge.

        The slice, its alerts and its removal from the queue commit together on the
        lock's own connection. If the database fails meanwhile, the error goes up and
        the lead with it: the transaction rolled back, the queue is as it was, and the
        next leader (this runner, rebuilt from the store) judges the slice again."""
        assert self.engine is not None and self.book is not None and self.conn is not None
        conn = self.conn
        plan: Plan | None = None
        try:
            with conn.transaction():
                # readings received within ``reorder_s`` of each other by different
                # workers may carry inverted receive times: judged in device-time order
                q = take(
                    conn,
                    watermark(conn, timedelta(seconds=self.cfg.stale_s)),
                    timedelta(seconds=self.cfg.reorder_s),
                )
                if not q.ids:
                    return False
                ev = self.engine.evaluate_arrays(q.keys, q.sidx, q.t, q.x, q.flag, q.heard)
                plan = self.book.plan(ev.findings, ev.seen)
                events = apply_plan(conn, plan, timedelta(seconds=self.cfg.reopen_s))
                self._open_cases(conn, events)
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
            self._commit(Plan(), q)
            return True
        self.judged += q.n
        self._applied(plan, events)
        return True

    def _judge_rewrites(self) -> bool:
        """Alert on rewritten history the store kept (``store.conflicts``), marking it
        alerted in the alert's transaction, on the lock's own connection; True if there
        was any. Not device-ordered and stateless, so apart from the queue: a rewrite
        changes no detector state."""
        assert self.book is not None and self.conn is not None
        conn = self.conn
        with conn.transaction():
            rewrites = take_rewrites(conn)
            if not rewrites:
                return False
            plan = self.book.plan(rewrite_findings(rewrites), {})
            try:
                with conn.transaction():
                    events = apply_plan(conn, plan, timedelta(seconds=self.cfg.reopen_s))
                    self._open_cases(conn, events)
            except psycopg.DatabaseError as exc:
                if self.unavailable(exc) or conn.broken or conn.closed:
                    raise
                # refused for what it holds (a device deleted meanwhile): the rewrites
                # stay on record; the alert is dropped rather than retried forever
                log.error("database refused %d rewritten-history alerts (%s)", len(rewrites), exc)
                plan, events = Plan(), []
            mark_alerted(conn, [r.id for r in rewrites])
        log.warning(
            "rewritten history: %d resent values differ from the stored ones", len(rewrites)
        )
        self._applied(plan, events)
        return True

    def _open_cases(self, conn: psycopg.Connection, events: list[tuple[int, str]]) -> None:
        """Cases for critical alerts, in the alerts' own transaction (rules file [cases])."""
        assert self.engine is not None
        open_cases_for(
            conn,
            events,
            self.engine.rules.case_open_severity,
            timedelta(seconds=self.cfg.case_response_s),
            datetime.now(UTC),
        )

    def _write(self, ev: Evaluation) -> None:
        assert self.book is not None
        plan = self.book.plan(ev.findings, ev.seen)
        if plan:
            self._commit(plan, None)

    def _commit(self, plan: Plan, taken: Queued | None) -> None:
        """Write a plan (and a slice's removal) on the lock's connection, or raise."""
        assert self.conn is not None
        with self.conn.transaction():
            events = apply_plan(self.conn, plan, timedelta(seconds=self.cfg.reopen_s))
            self._open_cases(self.conn, events)
            if taken is not None:
                done(self.conn, taken)
        self.judged += taken.n if taken is not None else 0
        self._applied(plan, events)

    def _applied(self, plan: Plan, events: list[tuple[int, str]]) -> None:
        assert self.book is not None
        self.book.applied(plan)
        self.on_events(events)

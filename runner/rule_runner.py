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
from psycopg_pool import ConnectionPool

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
from offsite.store.readings import recent_readings
from offsite.store.registry import load_registry
from offsite.store.rule_inbox import NOTIFY_CHANNEL, done, queued_keys, take, watermark

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
    retry_s: float = 2.0
    case_response_s: float = 259200.0  # an engine-opened case asks for an answer within


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
        pool: ConnectionPool,
        config: RunnerConfig,
        on_events: Callable[[list[tuple[int, str]]], None] = lambda ev: None,
        unavailable: Callable[[BaseException], bool] = lambda exc: False,
    ) -> None:
        self.database_url = database_url
        self.pool = pool
        self.cfg = config
        self.on_events = on_events
        self.unavailable = unavailable
        self.leading = False
        self.judged = 0  # readings judged while leading
        self.engine: RuleEngine | None = None
        self.book: AlertBook | None = None

    # -- leadership -----------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: try to lead; while leading, judge the queue.

        At least one try, even when stopped before it: a worker stopped while its
        runner was still starting has queued what it stored, and if no other runner
        leads, this one judges it before exiting rather than leave it to the next start.
        """
        tried = False
        while not (tried and stop.is_set()):
            tried = True
            try:
                with psycopg.connect(
                    self.database_url, autocommit=True, application_name="offsite-rules"
                ) as lock_conn:
                    row = lock_conn.execute(
                        "SELECT pg_try_advisory_lock(%s)", (RULES_LOCK,)
                    ).fetchone()
                    if row and row[0]:
                        lock_conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                        self._lead(lock_conn, stop)
            except Exception as exc:
                if not self.unavailable(exc):
                    log.exception("rule runner stopped leading on an unexpected error")
                else:
                    log.warning(
                        "rule runner lost the database (%s); will retry", str(exc).strip()[:200]
                    )
            finally:
                if self.leading:
                    log.info("rule runner: no longer leading")
                self.leading = False
            stop.wait(self.cfg.retry_s)

    def _start(self) -> None:
        """Build the engine and the alert book from the store."""
        now = datetime.now(UTC)
        with self.pool.connection() as conn, conn.transaction():
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
        with self.pool.connection() as conn, conn.transaction():
            _audit_rules(conn, rules)
        engine = RuleEngine(rules, device_meta(registry), started_at=now)
        engine.note_received(heard)
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
        )
        book.load(active)
        self.engine, self.book = engine, book
        log.info(
            "rule runner: leading (%d rules, state rebuilt from %d stored values, "
            "%d alerts active)",
            len(engine.rules.rules),
            warmed,
            len(active),
        )

    def _lead(self, lock_conn: psycopg.Connection, stop: threading.Event) -> None:
        self._start()
        self.leading = True
        assert self.engine is not None
        next_offline = time.monotonic()
        next_registry = next_offline + self.cfg.registry_refresh_s  # just loaded by _start
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_registry:
                with self.pool.connection() as conn:
                    self.engine.update_registry(device_meta(load_registry(conn)))
                next_registry = now + self.cfg.registry_refresh_s
            if now >= next_offline:
                with self.pool.connection() as conn:
                    self.engine.note_received(
                        dict(
                            conn.execute(
                                "SELECT mn, last_received_at FROM device_status"
                            ).fetchall()
                        )
                    )
                self._write(self.engine.check_offline(datetime.now(UTC)), [], stop)
                next_offline = now + self.cfg.offline_check_s
            rewrites = self._judge_rewrites()
            if self._judge(stop) or rewrites:
                continue  # more may be queued: no waiting
            wait = max(0.0, min(next_offline, next_registry) - time.monotonic())
            # a commit notifies; a slower worker's promise moves without one: poll too
            list(lock_conn.notifies(timeout=min(wait, IDLE_POLL_S), stop_after=1))
        # stopping: what was queued before the stop is judged before the lead goes
        while self._judge(threading.Event()) or self._judge_rewrites():
            pass

    # -- judging --------------------------------------------------------------------
    def _judge(self, stop: threading.Event) -> bool:
        """Judge one slice of the queue; True if there was something to judge."""
        assert self.engine is not None and self.book is not None
        plan: Plan | None = None
        ids: list[int] = []
        try:
            with self.pool.connection() as conn, conn.transaction():
                # readings received within ``reorder_s`` of each other by different
                # workers may carry inverted receive times: judged in device-time order
                q = take(
                    conn,
                    watermark(conn, timedelta(seconds=self.cfg.stale_s)),
                    timedelta(seconds=self.cfg.reorder_s),
                )
                if not q.ids:
                    return False
                ids = q.ids
                ev = self.engine.evaluate_arrays(q.keys, q.sidx, q.t, q.x, q.flag, q.heard)
                self.judged += q.n
                plan = self.book.plan(ev.findings, ev.seen)
                events = apply_plan(conn, plan, timedelta(seconds=self.cfg.reopen_s))
                self._open_cases(conn, events)
                done(conn, ids)
        except psycopg.DatabaseError as exc:
            if plan is None:
                raise
            if self.unavailable(exc):
                # judged, but not written: write the same plan again, not judge twice
                self._retry_write(plan, ids, stop)
                return True
            # refused for what it holds (an alert for a device deleted meanwhile): the
            # readings are stored; drop these alert changes rather than loop on them
            log.error(
                "database refused %d alert changes (%s); dropped",
                len(plan.upserts) + len(plan.clears),
                exc,
            )
            self._retry_write(Plan(), ids, stop)
            return True
        self.book.applied(plan)
        self.on_events(events)
        return True

    def _judge_rewrites(self) -> bool:
        """Alert on rewritten history the store kept (``store.conflicts``), marking it
        alerted in the alert's transaction; True if there was any. Not device-ordered
        and stateless, so apart from the queue: a rewrite changes no detector state."""
        assert self.book is not None
        with self.pool.connection() as conn, conn.transaction():
            rewrites = take_rewrites(conn)
            if not rewrites:
                return False
            plan = self.book.plan(rewrite_findings(rewrites), {})
            try:
                with conn.transaction():
                    events = apply_plan(conn, plan, timedelta(seconds=self.cfg.reopen_s))
                    self._open_cases(conn, events)
            except psycopg.DatabaseError as exc:
                if self.unavailable(exc):
                    raise
                # refused for what it holds (a device deleted meanwhile): the rewrites
                # stay on record; the alert is dropped rather than retried forever
                log.error("database refused %d rewritten-history alerts (%s)", len(rewrites), exc)
                plan, events = Plan(), []
            mark_alerted(conn, [r.id for r in rewrites])
        log.warning(
            "rewritten history: %d resent values differ from the stored ones", len(rewrites)
        )
        self.book.applied(plan)
        self.on_events(events)
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

    def _write(self, ev: Evaluation, ids: list[int], stop: threading.Event) -> None:
        assert self.book is not None
        plan = self.book.plan(ev.findings, ev.seen)
        if plan or ids:
            self._retry_write(plan, ids, stop)

    def _retry_write(self, plan: Plan, ids: list[int], stop: threading.Event) -> None:
        assert self.book is not None
        delay = 0.5
        while True:
            try:
                with self.pool.connection() as conn, conn.transaction():
                    events = apply_plan(conn, plan, timedelta(seconds=self.cfg.reopen_s))
                    self._open_cases(conn, events)
                    done(conn, ids)
                break
            except Exception as exc:
                if not self.unavailable(exc):
                    raise
                log.warning(
                    "rule runner: database unavailable (%s); retrying in %.1f s",
                    str(exc).strip()[:200],
                    delay,
                )
            if stop.wait(delay):
                raise RuntimeError(
                    "stopped before the alerts could be written; the "
                    "next runner judges the queue again"
                )
            delay = min(delay * 2, 30.0)
        self.book.applied(plan)
        self.on_events(events)

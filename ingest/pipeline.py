"""The ingest loop: inbox → validate → batch → commit → acknowledge → rules.

A batch closes when it is full, when its oldest message has waited the maximum delay,
or as soon as the inbox goes idle for a few milliseconds: the broker only sends a
bounded number of unacknowledged messages (Mosquitto's ``max_inflight_messages``, 20 by
default), so once they are in hand nothing more arrives until we commit and ack.

Order matters for the guarantees: a batch's readings and dead letters are committed
in one transaction, *then* its messages are acknowledged, *then* the rules see the
readings that were new to the store. A crash before the commit loses nothing (the
broker redelivers); a crash between commit and ack stores nothing twice (the primary
key); a redelivered reading is not judged twice (only newly inserted rows reach the
rules). When the database is down the batch is retried with backoff and, as the inbox
fills, the subscriber stops reading: the broker keeps the backlog.

A batch's transaction, its acknowledgements and its counts run in a writer thread while
this thread decodes and validates the next batch: the transaction is mostly waiting for
PostgreSQL, and until it ends nothing of the next batch got done. The writer takes one
batch at a time, in order, so the order above holds batch by batch; a batch is handed
over only once the one before it is settled, so at most two batches are in hand. That
needs a broker in-flight window of two batches (``max_inflight_messages 6000`` for
batches of 20,000 readings of ~7 values per message); with a window of one batch the
broker sends nothing while a batch is written, and the overlap is lost, not the data.
While the writer is busy the open batch is not closed on time or on an idle inbox, only
on size: closed early it would only wait for the writer, and the next transaction would
store fewer readings for the same cost per batch (the rollup and device-status upserts,
the commit). Under load, batches used to be cut by the timer at ~60 % of the size limit.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg_pool import ConnectionPool

from offsite.core.errors import RegistryError, RetryError
from offsite.core.readings import DeadLetter, DeadReason, InboundMessage, Outcome, Reading
from offsite.core.registry import Device
from offsite.core.retry import plain_sleep, retry
from offsite.ingest.batcher import Batch, Batcher
from offsite.ingest.histogram import BATCH_SIZE_BOUNDS, COMMIT_SECONDS_BOUNDS, Counts
from offsite.ingest.reassembly import assemble, complete, expired_letter, part_of
from offsite.ingest.spool import Position, Spool, discard, is_skip
from offsite.ingest.validate import Policy, process
from offsite.store.dead_letters import insert_dead_letters
from offsite.store.errors import DB_BACKOFF, unavailable
from offsite.store.packets import insert_packets
from offsite.store.readings import insert_readings
from offsite.store.registry import load_registry, load_revoked
from offsite.store.rule_inbox import queue_for_rules
from offsite.store.split_parts import expire as expire_parts
from offsite.store.split_parts import hold as hold_parts
from offsite.store.spool_marks import mark_drained
from offsite.store.workers import Heartbeat, beat, committed_through

log = logging.getLogger("offsite.ingest")
SHUTDOWN_RETRY_S = 10.0
UNKNOWN_RELOAD_S = 0.05


@dataclass(slots=True)
class IngestStats:
    """Counters for progress lines, summaries and /healthz. ``messages`` and
    ``writer_wait_s`` are written by the pipeline thread, ``db_errors`` by both threads
    (retries happen in each), the rest by the writer thread."""

    messages: int = 0
    readings_stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    batches: int = 0
    db_errors: int = 0
    last_commit_at: float = 0.0
    dead_by_reason: dict[str, int] = field(default_factory=dict)
    # seconds the pipeline thread waited to hand a closed batch to the writer, still busy
    # with the one before: growing with the clock, the database (the writer) is the limit
    writer_wait_s: float = 0.0
    spooled: int = 0  # messages acknowledged once on disk (the database away)
    drained: int = 0  # … and later stored from the spool
    batch_readings: Counts = field(default_factory=lambda: Counts(BATCH_SIZE_BOUNDS))
    commit_seconds: Counts = field(default_factory=lambda: Counts(COMMIT_SECONDS_BOUNDS))


class Pipeline:
    def __init__(
        self,
        pool: ConnectionPool,
        policy: Policy,
        batcher: Batcher,
        ack: Callable[[InboundMessage], None],
        *,
        registry_refresh_s: float = 30.0,
        idle_flush_s: float = 0.005,
        split_timeout_s: float = 60.0,
        stats: IngestStats | None = None,
        worker: str = "ingest",
        heartbeat_s: float = 2.0,
        revoked_check_s: float = 5.0,
        in_transit: Callable[[], datetime | None] = lambda: None,
        links: Callable[[], tuple[bool | None, int | None]] = lambda: (None, None),
        spool: Spool | None = None,
        drain_messages: int = 2000,
        orphans: list[Spool] | None = None,
    ) -> None:
        self.pool = pool
        self.policy = policy
        self.batcher = batcher
        self.ack = ack
        self.registry_refresh_s = registry_refresh_s
        self.idle_flush_s = idle_flush_s
        self.stats = stats or IngestStats()
        self.known: dict[str, Device] = {}
        self.revoked: dict[str, str] = {}
        self.split_timeout_s = split_timeout_s
        self._next_split_sweep = 0.0
        self._next_registry = 0.0
        self._last_registry_load = -1e9
        self._registry_as_of = datetime.min.replace(tzinfo=UTC)
        self.worker = worker
        self.heartbeat_s = heartbeat_s
        self.links = links
        self.started_at = datetime.now(UTC)
        self._next_beat = 0.0
        self._next_mark = 0.0
        self._next_revoked = 0.0
        self.revoked_check_s = revoked_check_s
        self.in_transit = in_transit
        self._inbox: queue.Queue[InboundMessage] | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="offsite-writer")
        # batches handed to the writer and not yet reaped here (at most two)
        self._writing: deque[tuple[Batch, Future[None]]] = deque()
        # the disk buffer (None: off): batches go there while the database is away
        self.spool = spool
        self.drain_messages = drain_messages
        self.orphans = list(orphans or [])  # spools of workers that are gone: drained too
        # with a spool, a dead database must not hold a thread for the pool's 30 s
        # default: the writer turns to the spool, the lookups to the registry in hand
        self._db_wait: float | None = SPOOL_DB_WAIT_S if spool is not None else None
        self._drainer: threading.Thread | None = None
        self._drain_conn: psycopg.Connection | None = None

    # -- registry -----------------------------------------------------------------------
    def _refresh_revoked(self) -> None:
        """Revocations take effect within ``revoked_check_s`` (one small query), not the
        full registry refresh: a revoked device should stop being stored soon."""
        with self.pool.connection(timeout=self._db_wait) as conn:
            self.revoked = load_revoked(conn)

    def refresh_registry(self) -> None:
        self._last_registry_load = time.monotonic()
        self._registry_as_of = datetime.now(UTC)
        try:
            with self.pool.connection(timeout=self._db_wait) as conn:
                reg = load_registry(conn)
                revoked = load_revoked(conn)
        except RegistryError as exc:  # edited by hand into something we refuse
            log.error("registry not reloaded, keeping the previous one: %s", exc)
            return
        self.known = {d.mn: d for d in reg.devices}
        self.revoked = revoked

    # -- main loop ----------------------------------------------------------------------
    def run(self, inbox: queue.Queue[InboundMessage], stop: threading.Event) -> None:
        """Run until ``stop`` is set; then commit and acknowledge what is in hand."""
        self._inbox = inbox
        if self.spool is not None:
            self._drainer = threading.Thread(
                target=self._drain_loop, args=(stop,), name="offsite-drain", daemon=True
            )
            self._drainer.start()
        while not stop.is_set():
            self._reap()
            now = time.monotonic()
            if now >= self._next_registry:
                self._lookup(self.refresh_registry, stop)
                self._next_registry = now + self.registry_refresh_s
            if now >= self._next_revoked:
                self._lookup(self._refresh_revoked, stop)
                self._next_revoked = now + self.revoked_check_s
            if now >= self._next_split_sweep:
                self._sweep_splits()
                self._next_split_sweep = now + min(5.0, self.split_timeout_s / 4)
            if now >= self._next_beat:
                self._beat()
                self._next_beat = now + self.heartbeat_s
            deadline = self.batcher.deadline()
            if deadline is None:
                timeout = 0.25
            elif self._writer_busy():  # look again soon: the batch goes when the writer is free
                timeout = self.idle_flush_s
            else:
                timeout = max(0.0, min(self.idle_flush_s, deadline - now))
            try:
                msg = inbox.get(timeout=timeout)
            except queue.Empty:
                # Idle inbox: the broker is waiting for our acks (its in-flight window is
                # full) or nothing is coming. Either way, waiting longer only adds latency,
                # unless the writer is still busy with the batch before: then this one
                # could not be written sooner, and it stays open for what comes meanwhile.
                if self._writer_busy():
                    continue
                batch = self.batcher.flush()
                if batch is not None:
                    self._commit(batch, stop)
                elif self._in_hand_since() is None:
                    self._mark_idle()
            else:
                self._take(msg, stop)
        # drain what was already taken from the broker, then the final partial batch
        while True:
            try:
                msg = inbox.get_nowait()
            except queue.Empty:
                break
            self._take(msg, None)
        last = self.batcher.flush()
        if last is not None:
            self._commit(last, None)
        self._reap(keep=0)
        self._writer.shutdown()
        if self._drainer is not None:
            self._drainer.join()
        # stopped: hold no one back (what is left in hand the broker redelivers), except
        # for what waits in the spool: it is ours to store when we are back
        waiting = self.spool.pending_since if self.spool is not None else None
        try:
            with self.pool.connection(timeout=2.0) as conn:
                committed_through(conn, self.worker, waiting or datetime.max.replace(tzinfo=UTC))
        except Exception as exc:
            log.debug("final watermark not written: %s", exc)

    # -- steps --------------------------------------------------------------------------
    def _take(self, msg: InboundMessage, stop: threading.Event | None) -> None:
        self.stats.messages += 1
        outcome = self._process(msg, stop)  # a split part is kept in the store with its batch
        # while the writer is busy, only the size closes the batch: closed on time it
        # would wait for the writer all the same, and commit fewer readings at once
        batch = self.batcher.add(msg, outcome, time.monotonic(), hold=self._writer_busy())
        if batch is not None:
            self._commit(batch, stop)

    def _sweep_splits(self) -> None:
        """Housekeeping, tried once: with the database away it waits for the next sweep
        rather than hold the pipeline thread (and the spool's live messages) in retries."""
        try:
            self._expire_splits()
        except Exception as exc:
            if not unavailable(exc):
                raise
            log.debug("split packets not swept (database unavailable): %s", exc)

    def _expire_splits(self) -> None:
        """Dead-letter split packets still incomplete ``split_timeout_s`` after their first
        part (kept in the store, so this holds across restarts and workers)."""
        with self.pool.connection(timeout=SWEEP_DB_WAIT_S) as conn, conn.transaction():
            dead = [
                expired_letter(parts, self.split_timeout_s)
                for parts in expire_parts(conn, timedelta(seconds=self.split_timeout_s))
            ]
            insert_dead_letters(conn, dead)
        for d in dead:
            log.info(
                "dead letter: %s", d.reason.value, extra={"reason": d.reason.value, "mn": d.mn}
            )
        self.stats.dead_letters += len(dead)

    def _process(self, msg: InboundMessage, stop: threading.Event | None) -> Outcome:
        """Validate; a device unknown to a copy of the registry older than the message
        triggers a reload first, so a freshly registered device is never dead-lettered.

        A flood of unknown devices cannot turn into a query per message: reloads are at
        least ``UNKNOWN_RELOAD_S`` apart (we wait out the rest of that gap), and the
        messages that queued up meanwhile arrived before the reload, so trigger none.
        """
        outcome = process(msg, self.known, self.policy, self.revoked)
        if (
            outcome.dead is not None
            and outcome.dead.reason is DeadReason.UNKNOWN_DEVICE
            and msg.received_at >= self._registry_as_of
        ):
            wait = UNKNOWN_RELOAD_S - (time.monotonic() - self._last_registry_load)
            if wait > 0:
                time.sleep(wait)
            self._lookup(self.refresh_registry, stop)
            outcome = process(msg, self.known, self.policy, self.revoked)
        return outcome

    def _in_hand_since(self, writing: bool = True, spool: bool = True) -> datetime | None:
        """When the oldest message still in hand (not committed) was received; with
        ``writing`` False, leaving out the batches with the writer, with ``spool`` False
        what waits in the spool."""
        times = [m.received_at for m in self.batcher.pending()[:1]]
        if writing:
            times += [
                b.messages[0].received_at
                for b, f in list(self._writing)
                if not f.done() and b.messages
            ]
        handing = self.in_transit()  # stamped by the subscriber, not yet in the inbox
        if handing is not None:
            times.append(handing)
        inbox = self._inbox
        if inbox is not None:
            with inbox.mutex:
                if inbox.queue:
                    times.append(inbox.queue[0].received_at)
        spooled = self.spool.pending_since if self.spool is not None and spool else None
        if spooled is not None:  # acknowledged, on disk, not yet stored
            times.append(spooled)
        return min(times, default=None)

    def _through(self) -> datetime:
        """This worker's promise, made by the transaction of the batch being closed:
        everything it received before it is committed (see store.rule_inbox.watermark).
        A little behind the clock, for a message being handed over by the subscriber
        right now. The batches with the writer are left out: they commit before this
        one.

        The clock is read before what is in hand: a message the subscriber stamps after
        that read is stamped later than the promise, however long this thread is
        descheduled in between (read after, a message stamped meanwhile could fall
        before the promise and still be committed later: seen with three workers in one
        process, where one thread can wait for the GIL longer than the margin)."""
        now = datetime.now(UTC)
        since = self._in_hand_since(writing=False)
        return since if since is not None else now - WATERMARK_MARGIN

    def _mark_idle(self) -> None:
        """Idle: move the promise on, so the rule runner does not wait for us."""
        now = time.monotonic()
        if now < self._next_mark or self._spooling():
            return
        self._next_mark = now + IDLE_MARK_S
        try:
            with self.pool.connection(timeout=1.0) as conn:
                committed_through(conn, self.worker, self._through())
        except Exception as exc:  # like the heartbeat: never stops ingest
            log.debug("watermark not written: %s", exc)

    def _commit(self, batch: Batch, stop: threading.Event | None) -> None:
        """Hand ``batch`` to the writer once the batch before it is settled."""
        heard: dict[str, datetime] = {}  # duplicates too: the device is talking
        for at, r in zip(batch.received, batch.readings, strict=True):
            if r.mn not in heard or at > heard[r.mn]:
                heard[r.mn] = at
        through = self._through()
        if self._writing:
            waiting = time.perf_counter()
            self._reap(keep=0)
            self.stats.writer_wait_s += time.perf_counter() - waiting
        self._writing.append((batch, self._writer.submit(self._write, batch, heard, through, stop)))

    def _writer_busy(self) -> bool:
        """Is the writer still on a batch (committing, or retrying an absent database)?"""
        return any(not f.done() for _, f in self._writing)

    def _reap(self, keep: int | None = None) -> None:
        """Forget settled batches; with ``keep``, first wait until at most that many are
        with the writer. A bug in the writer is raised here, in the pipeline thread."""
        while self._writing and (
            self._writing[0][1].done() or (keep is not None and len(self._writing) > keep)
        ):
            _, done = self._writing.popleft()
            done.result()

    def _store(
        self,
        conn: psycopg.Connection,
        batch: Batch,
        heard: dict[str, datetime],
        through: datetime,
    ) -> tuple[list[Reading], Batch]:
        """One batch's transaction body: readings, dead letters, packets, the split
        packets its parts complete, the rule queue and this worker's promise, all or
        nothing. Returns the new readings and the batch as stored (splits included)."""
        full = self._with_splits(conn, batch)
        new = insert_readings(conn, full.readings, full.received)
        insert_dead_letters(conn, full.dead)
        insert_packets(conn, full.packets)
        # judged by the rule runner, whichever worker leads it (rule_runner.py)
        queue_for_rules(conn, new, _received_of(new, full), heard)
        committed_through(conn, self.worker, through)
        return new, full

    def _write(
        self,
        batch: Batch,
        heard: dict[str, datetime],
        through: datetime,
        stop: threading.Event | None,
    ) -> None:
        """The writer thread: commit the batch (or, the database away, put it in the
        spool), then acknowledge it and count it."""
        t0 = time.perf_counter()  # commit latency, database retries included
        behind = self._spool_behind(batch, stop)
        if behind is None:
            log.warning(
                "shutdown with %d messages the full spool could not take; "
                "the broker will redeliver them",
                len(batch),
            )
            return
        if behind:
            self._settle(batch, [], t0, spooled=True)
            return

        written = [batch]  # with the split packets this batch completed, once committed

        def write() -> list:
            with self.pool.connection(timeout=self._db_wait) as conn, conn.transaction():
                new, written[0] = self._store(conn, batch, heard, through)
                return new

        def to_spool() -> bool:
            assert self.spool is not None
            return self.spool.append(batch.messages)

        try:
            new = self._guard(write, stop, fallback=to_spool if self.spool else None)
        except psycopg.DatabaseError as exc:  # refused for what it holds: this batch
            written[0] = batch
            new = self._quarantine(batch, exc, stop)
        if new is None:  # stopped while the database was down: nothing acknowledged
            log.warning(
                "shutdown with an uncommitted batch of %d messages; the broker will redeliver them",
                len(batch),
            )
            return
        if new is SPOOLED:
            log.warning(
                "database unavailable: keeping messages in the spool %s and acknowledging "
                "them once on disk; they are stored when it returns",
                self.spool.dir if self.spool else "",
            )
            self._settle(batch, [], t0, spooled=True)
            return
        self._settle(batch, new, t0, full=written[0])

    def _spool_behind(self, batch: Batch, stop: threading.Event | None) -> bool | None:
        """While the spool holds anything, a batch joins it (the spool drains in arrival
        order). True: spooled; False: the spool is empty, commit directly; None: stopped
        while the spool was full. A full spool holds the batch unacknowledged until the
        drainer frees room, so the broker keeps the rest, as without a spool."""
        spool = self.spool
        if spool is None or not batch.messages:
            return False
        warned = False
        while True:
            with spool.lock:
                if not spool.pending:
                    return False
                if spool.append(batch.messages):
                    return True
            if not warned:
                log.warning(
                    "spool full (%d bytes): no longer acknowledging; the broker holds the rest",
                    spool.max_bytes,
                )
                warned = True
            if stop is None or stop.wait(0.2):
                return None

    def _settle(
        self,
        batch: Batch,
        new: list[Reading],
        t0: float,
        *,
        spooled: bool = False,
        full: Batch | None = None,
    ) -> None:
        """Acknowledge a committed (or spooled) batch and count it (``full``: the batch as
        stored, with the split packets it completed)."""
        for m, accepted in zip(batch.messages, batch.accepted, strict=True):
            if m.on_commit is not None:
                m.on_commit(accepted)
            elif m.transport == "mqtt":
                self.ack(m)
        s = self.stats
        if spooled:
            s.spooled += len(batch)
            return
        s.commit_seconds.observe(time.perf_counter() - t0)
        s.batch_readings.observe(len(batch.readings))
        s.batches += 1
        full = full or batch
        s.readings_stored += len(new)
        s.duplicates += len(full.readings) - len(new)
        s.dead_letters += len(full.dead)
        for d in full.dead:
            s.dead_by_reason[d.reason.value] = s.dead_by_reason.get(d.reason.value, 0) + 1
            # no payload at info level: the reason and who sent it; the detail (which may
            # quote the payload) at debug, and in the dead_letters table
            log.info(
                "dead letter: %s",
                d.reason.value,
                extra={"reason": d.reason.value, "mn": d.mn, "topic": d.topic},
            )
            log.debug("dead letter detail: %s", d.detail[:200])
        s.last_commit_at = time.time()

    def _with_splits(self, conn: psycopg.Connection, batch: Batch) -> Batch:
        """The batch, plus the split packets its parts complete: each part is kept in the
        store in this transaction (and so answered after it); a set whose last part is
        here is assembled from the store and stored with it. A copy, so a retried
        transaction starts again from the batch as it came."""
        if not batch.parts:
            return batch
        sets = hold_parts(conn, [part_of(m, p) for m, p in batch.parts], complete)
        if not sets:
            return batch
        full = Batch(
            batch.messages,
            list(batch.readings),
            list(batch.received),
            list(batch.dead),
            list(batch.packets),
            batch.accepted,
        )
        for parts in sets:
            outcome, strays, at = assemble(parts, self.policy)
            full.readings.extend(outcome.readings)
            full.received.extend([at] * len(outcome.readings))
            full.packets.extend(outcome.packets)
            if outcome.dead is not None:
                full.dead.append(outcome.dead)
            full.dead.extend(strays)
        return full

    def _spooling(self) -> bool:
        """Is the spool holding anything? (Then the database was lately away: the
        pipeline thread does not wait on it; the drainer does.)"""
        return self.spool is not None and self.spool.pending

    def _lookup(self, fn: Callable[[], None], stop: threading.Event | None) -> None:
        """A registry read for the pipeline thread. With a spool it is tried once: the
        database away, the copy in hand serves (the spool re-validates on drain), and
        live messages keep flowing to the spool. Without one, retried as before."""
        if self.spool is None or not self.known:
            self._guard(fn, stop)
            return
        if self._spooling():  # the database was lately away; the drainer re-validates
            return
        try:
            fn()
        except Exception as exc:
            if not unavailable(exc):
                raise
            log.debug("registry not refreshed (database unavailable): %s", exc)

    # -- the spool's drainer (its own thread) --------------------------------------------
    def _drain_loop(self, stop: threading.Event) -> None:
        """Store what the spool holds, oldest first, through the same validate/store
        path; each batch commits with the spool position it reaches."""
        spool = self.spool
        assert spool is not None
        delay = DRAIN_RETRY_MIN_S
        try:
            self._drain_loop_body(spool, stop, delay)
        finally:
            if self._drain_conn is not None:
                self._drain_conn.close()

    def _drain_loop_body(self, spool: Spool, stop: threading.Event, delay: float) -> None:
        while not stop.is_set():
            current = spool
            if not spool.pending:
                while self.orphans and not self.orphans[0].pending:
                    done = self.orphans.pop(0)
                    log.info("spool %s of a worker that is gone: drained, removed", done.dir)
                    discard(done)
                if not self.orphans:
                    stop.wait(0.05)
                    delay = DRAIN_RETRY_MIN_S
                    continue
                current = self.orphans[0]
            try:
                self._drain_once(current)
            except Exception as exc:
                if self._drain_conn is not None:
                    self._drain_conn.close()
                    self._drain_conn = None
                if not unavailable(exc):
                    log.exception("spool drain failed; retrying")
                else:
                    log.info("spool: database still unavailable (%s)", str(exc).strip()[:120])
                self.stats.db_errors += 1
                stop.wait(delay)
                delay = min(delay * 2, DRAIN_RETRY_MAX_S)
                continue
            delay = DRAIN_RETRY_MIN_S
            if not spool.pending:
                log.info("spool drained: %d messages stored from disk", spool.figures.drained)

    def _drain_once(self, spool: Spool) -> int:
        """Read a chunk from the spool's mark, store it, advance the mark. Returns how
        many records it consumed."""
        mark = spool.mark
        chunk = spool.read(mark, self.drain_messages)
        if not chunk:
            return 0
        builder = Batcher(10**9, 1e9, 10**9)
        for raw, _end in chunk:
            if is_skip(raw):
                continue
            msg = replace(raw, on_commit=_already_acknowledged)
            # a split part goes with the batch into the store, where its set is kept and
            # assembled when complete (``_with_splits``), as on the live path
            builder.add(msg, process(msg, self.known, self.policy, self.revoked), 0.0)
        reach = chunk[-1][1]
        consumed = len(chunk)
        batch = builder.flush() or Batch()
        nxt = spool.read(reach, 1)
        next_since = nxt[0][0].received_at if nxt else None
        live = self._in_hand_since(spool=False)
        through = min(
            (t for t in (next_since, live) if t is not None),
            default=datetime.now(UTC) - WATERMARK_MARGIN,
        )
        heard: dict[str, datetime] = {}
        for at, r in zip(batch.received, batch.readings, strict=True):
            if r.mn not in heard or at > heard[r.mn]:
                heard[r.mn] = at
        t0 = time.perf_counter()
        conn = self._drain_connection()
        try:
            with conn.transaction():
                new, full = self._store(conn, batch, heard, through)
                mark_drained(conn, spool.id, self.worker, reach)
                # alive in the same breath: a worker silent through the outage would not
                # hold the rule runner back, and its spooled readings would come late
                beat(conn, self._heartbeat())
        except psycopg.DatabaseError as exc:
            if unavailable(exc):
                raise
            kept = self._quarantine(batch, exc, None, mark=(spool, reach))
            if kept is None:
                raise
            new, full = kept, batch
        spool.drained(reach, consumed, next_since)
        self.stats.drained += len(batch)
        self._settle(batch, new, t0, full=full)
        return consumed

    def _drain_connection(self) -> psycopg.Connection:
        """The drainer's own connection, not the pool's: the pool's reconnection backs off
        for seconds after an outage, while this one is tried on every retry; the first
        thing it does is say this worker is alive and what it still holds."""
        if self._drain_conn is not None and not self._drain_conn.closed:
            return self._drain_conn
        info = self.pool.conninfo
        conn = psycopg.connect(
            info() if callable(info) else info,
            connect_timeout=DRAIN_CONNECT_TIMEOUT_S,
            application_name="offsite-drain",
        )
        try:
            with conn.transaction():
                beat(conn, self._heartbeat())
                held = self._in_hand_since()
                if held is not None:
                    committed_through(conn, self.worker, held)
        except BaseException:
            conn.close()
            raise
        self._drain_conn = conn
        return conn

    def backlog(self) -> tuple[int, float]:
        """(messages in hand not yet committed, age in seconds of the oldest of them)."""
        now = datetime.now(UTC)
        pending = [m.received_at for m in self.batcher.pending()[:1]]
        writing = [b.messages for b, f in list(self._writing) if not f.done()]
        pending += [ms[0].received_at for ms in writing[:1] if ms]
        inbox = self._inbox
        depth = sum(len(ms) for ms in writing)
        if inbox is not None:
            with inbox.mutex:
                depth += len(inbox.queue)
                if inbox.queue:
                    pending.append(inbox.queue[0].received_at)
        lag = max(((now - t).total_seconds() for t in pending), default=0.0)
        return depth + len(self.batcher.pending()), lag

    def _beat(self) -> None:
        """Publish this worker's state; skipped (not retried) while the database is down.
        While the spool holds anything the drainer beats, in its own transactions."""
        if self._spooling():
            return
        try:
            with self.pool.connection(timeout=1.0) as conn:
                beat(conn, self._heartbeat())
        except Exception as exc:  # the heartbeat must never stop ingest
            log.debug("heartbeat not written: %s", exc)

    def _heartbeat(self) -> Heartbeat:
        in_hand, lag = self.backlog()
        broker, conns = self.links()
        s = self.stats
        hb = Heartbeat(
            self.worker,
            socket.gethostname(),
            os.getpid(),
            self.started_at,
            broker,
            conns,
            in_hand,
            lag,
            s.messages,
            s.readings_stored,
            s.dead_letters,
            s.db_errors,
            datetime.fromtimestamp(s.last_commit_at, UTC) if s.last_commit_at else None,
        )
        return hb

    def _quarantine(
        self,
        batch: Batch,
        exc: Exception,
        stop: threading.Event | None,
        mark: tuple[Spool, Position] | None = None,
    ) -> list[Reading] | None:
        """Keep a batch the database refuses (a value it cannot store, a bug) as dead
        letters, raw bytes and the database's reason included, so one poison message
        neither stops the worker nor is retried forever — and nothing is lost."""
        log.error(
            "database refused a batch of %d messages (%s); keeping them as dead letters",
            len(batch),
            exc,
        )
        detail = f"the database refused the batch holding this message: {exc}"[:2000]
        batch.dead = [
            DeadLetter(m.topic, m.payload, m.received_at, DeadReason.STORE_REJECTED, detail)
            for m in batch.messages
        ]
        batch.readings, batch.received, batch.packets = [], [], []
        batch.accepted = [False] * len(batch.messages)

        def write() -> list:
            with self.pool.connection() as conn, conn.transaction():
                insert_dead_letters(conn, batch.dead)
                if mark is not None:
                    mark_drained(conn, mark[0].id, self.worker, mark[1])
            return []

        return self._guard(write, stop)

    def _guard(
        self,
        fn: Callable[[], list | None],
        stop: threading.Event | None,
        fallback: Callable[[], bool] | None = None,
    ) -> list | None:
        """Run a database step, retrying with backoff while the database is unavailable.

        "Unavailable" is a lost or refused connection, an exhausted pool, or a server
        that cannot take writes from us right now (read-only during a failover, a grant
        or table missing mid-deploy). Any other database error is raised: the data itself
        was refused. Returns None if ``stop`` is set while retrying; with ``stop`` None
        (shutting down) it gives up after ``SHUTDOWN_RETRY_S`` and returns None. With a
        ``fallback`` (the spool), each failure first tries it, and its success returns
        ``SPOOLED``: the caller acknowledges what is now on disk.
        """

        def failed(exc: BaseException, delay: float) -> None:
            log.warning(
                "database unavailable (%s); retrying in %.1f s", str(exc).strip()[:200], delay
            )

        def attempt() -> list | None:
            try:
                return fn()
            except Exception as exc:
                if not unavailable(exc):
                    raise
                self.stats.db_errors += 1
                if fallback is not None and fallback():
                    return SPOOLED
                raise

        try:
            result = retry(
                attempt,
                retry_on=unavailable,
                backoff=DB_BACKOFF,
                deadline_s=None if stop is not None else SHUTDOWN_RETRY_S,
                sleep=stop.wait if stop is not None else plain_sleep,
                on_retry=failed,
            )
        except RetryError:
            return None
        return result if result is not None else []


def _received_of(new: list[Reading], batch: Batch) -> list[datetime]:
    """When each new reading was received (the batch's own list when all were new)."""
    if len(new) == len(batch.readings):
        return batch.received
    at = {
        (r.mn, r.pollutant, r.kind_text, r.ts): t
        for r, t in zip(batch.readings, batch.received, strict=True)
    }
    return [at[(r.mn, r.pollutant, r.kind_text, r.ts)] for r in new]


def _already_acknowledged(accepted: bool) -> None:
    """Drained messages were acknowledged when they reached the spool."""


# the batch went to the spool (see _guard): acknowledge it, nothing was stored
SPOOLED: list = []
SPOOL_DB_WAIT_S = 2.0
SWEEP_DB_WAIT_S = 2.0  # housekeeping on the pipeline thread: skipped, not waited for
DRAIN_RETRY_MIN_S = 0.25
DRAIN_RETRY_MAX_S = 2.0  # back within seconds of the database
DRAIN_CONNECT_TIMEOUT_S = 2
WATERMARK_MARGIN = timedelta(milliseconds=50)
IDLE_MARK_S = 0.2

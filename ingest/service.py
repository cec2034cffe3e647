"""Wire the ingest worker: pool, migrations, registry, rules, subscriber, pipeline thread."""

from __future__ import annotations

import gc
import logging
import queue
import re
import socket
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool

from offsite.core.readings import InboundMessage
from offsite.core.settings import Settings
from offsite.ingest.batcher import Batcher
from offsite.ingest.gateway import Gateway
from offsite.ingest.pipeline import IngestStats, Pipeline
from offsite.ingest.spool import Spool
from offsite.ingest.spool import orphans as find_orphans
from offsite.ingest.subscriber import Subscriber
from offsite.ingest.validate import Policy, policy_topic
from offsite.runner.rule_process import RulesFigures, RuleSupervisor, RunnerHealth
from offsite.runner.rule_runner import RunnerConfig
from offsite.store.errors import StoreError
from offsite.store.migrate import migrate
from offsite.store.partitions import maintain
from offsite.store.pool import open_pool
from offsite.store.spool_marks import drained_mark
from offsite.store.workers import runner_state

GIL_SWITCH_S = 0.0005  # see IngestService.start
# the cyclic garbage collector's thresholds for a worker (see tune_gc): at Python's
# (700, 10, 10) it ran 1,700 times in a run of 60,000 messages, 13 of them full
GC_THRESHOLDS = (20_000, 20, 10)
log = logging.getLogger("offsite.ingest")
SPOOL_LOCK_WAIT_S = 60.0


def policy_from(settings: Settings) -> Policy:
    prefix, suffix = policy_topic(settings.mqtt_topic)
    tz = settings.hj212_tz
    return Policy(
        max_payload_bytes=settings.max_payload_bytes,
        topic_prefix=prefix,
        topic_suffix=suffix,
        hj212_tz=tz,
        max_future=timedelta(seconds=settings.max_future_s),
        max_age=timedelta(days=settings.max_age_days),
        hj212_require_password=settings.hj212_require_password,
    )


def runner_config(s: Settings) -> RunnerConfig:
    return RunnerConfig(
        s.rules_file,
        s.rule_warm_s,
        s.rule_warm_max,
        s.alert_clear_s,
        s.alert_reopen_s,
        offline_check_s=s.offline_check_s,
        reorder_s=s.rule_reorder_ms / 1000,
        case_response_s=s.case_response_h * 3600,
        shards=s.rule_shards,
    )


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a worker: what is here at start
    (modules, settings, the registry) is set aside for good (``gc.freeze``), and a
    collection runs every 20,000 new container objects rather than every 700.

    Ingest allocates some 30 container objects per message (readings, decoded JSON)
    that live until their batch commits, a second or so, and nearly none of them in
    cycles: reference counting frees them. The collector, at Python's thresholds, ran
    1,700 times in a bench run of 60,000 messages, 13 of them full collections walking
    every object of the process; 1.0 s of CPU (17 µs a message), each run holding the
    GIL, so the writer thread waited too. With these settings: 41 collections, none
    full, 0.4 s. Cycles are still collected, later. Thresholds already set higher are kept;
    garbage already there is collected first, not set aside with the rest."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*(max(a, b) for a, b in zip(gc.get_threshold(), GC_THRESHOLDS, strict=True)))


def client_id(settings: Settings) -> str:
    """The MQTT client id, with ``{hostname}`` replaced: replicas started from one
    configuration (compose ``deploy.replicas``) need distinct ids, or the broker would
    disconnect each in turn, and each keeps its id across restarts of its container."""
    return settings.mqtt_client_id.replace("{hostname}", socket.gethostname())


class IngestService:
    """One ingest worker: an MQTT subscriber, an HJ 212 TCP gateway, or both, feeding one
    pipeline. ``start`` returns once it is connected and consuming."""

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        mqtt_url: str | None,
        stats: IngestStats | None = None,
        *,
        gateway: bool = False,
    ) -> None:
        if mqtt_url is None and not gateway:
            raise ValueError("an ingest worker needs an MQTT broker, the gateway, or both")
        self.settings = settings
        self.database_url = database_url
        self.mqtt_url = mqtt_url
        self.with_gateway = gateway
        self.stats = stats or IngestStats()
        self.pool: ConnectionPool | None = None
        self.subscriber: Subscriber | None = None
        self.gateway: Gateway | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runner: RuleSupervisor | None = None
        self.error: BaseException | None = None
        self.spool: Spool | None = None

    def start(self) -> None:
        s = self.settings
        # the writer thread spends most of a batch waiting on PostgreSQL, and each time
        # an answer comes back it needs the GIL from the pipeline or paho thread, both
        # busy decoding: Python's default 5 ms before it may take it, on every round trip
        # and COPY flush, made a batch's commit 20–30 % longer (offsite bench ingest)
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_S))
        # one connection each for the pipeline's writer thread (batches), the pipeline
        # thread (heartbeats, watermarks, the registry) and the storage upkeep thread
        # (and one for the spool's drainer)
        self.pool = open_pool(
            self.database_url, max_size=4 if s.spool_dir else 3, name="offsite-ingest"
        )
        with self.pool.connection() as conn:
            migrate(conn)
            self._maintain(conn)
        worker = client_id(s) if self.mqtt_url is not None else f"gateway-{s.gateway_port}"
        orphans: list[Spool] = []
        if s.spool_dir is not None:
            self.spool, orphans = open_spools(s.spool_dir, worker, s.spool_max_bytes, self.pool)
        if s.rules_runner == "process":
            self.runner = RuleSupervisor(
                self.database_url,
                runner_config(s),
                log_level=s.log_level,
                log_format=s.log_format,
                on_change=lambda h: self._report_runner(worker, h),
            )
        inbox: queue.Queue[InboundMessage] = queue.Queue(maxsize=s.queue_max_messages)
        if self.mqtt_url is not None:
            self.subscriber = Subscriber(
                self.mqtt_url,
                s.mqtt_topic,
                client_id(s),
                inbox,
                shared_group=s.mqtt_shared_group,
                keepalive=s.mqtt_keepalive_s,
            )
        pipeline = Pipeline(
            self.pool,
            policy_from(s),
            Batcher(s.batch_max_readings, s.batch_max_delay_ms / 1000),
            self.subscriber.ack if self.subscriber else _no_ack,
            idle_flush_s=s.batch_idle_ms / 1000,
            split_timeout_s=s.hj212_split_timeout_s,
            stats=self.stats,
            revoked_check_s=s.offline_check_s,
            in_transit=self._in_transit,
            worker=worker,
            links=self._links,
            spool=self.spool,
            orphans=orphans,
        )
        pipeline.refresh_registry()
        self.pipeline = pipeline
        tune_gc()

        def run() -> None:
            try:
                pipeline.run(inbox, self._stop)
            except BaseException as exc:  # surfaced by .alive / .error to the caller
                self.error = exc
                log.exception("ingest pipeline stopped on an unexpected error")

        self._thread = threading.Thread(target=run, name="offsite-pipeline", daemon=True)
        self._thread.start()
        if self.runner is not None:
            self.runner.start()
        if s.maintain_interval_s is not None:
            threading.Thread(
                target=self._maintain_every,
                args=(s.maintain_interval_s,),
                name="offsite-maintain",
                daemon=True,
            ).start()
        if self.subscriber is not None:
            self.subscriber.start()
        if s.metrics_port is not None:
            from offsite.ingest.metrics import IngestCollector, serve_metrics

            serve_metrics(
                IngestCollector(
                    self.stats, self._links, pipeline.backlog, self.rules_figures, self.spool
                ),
                s.metrics_host,
                s.metrics_port,
            )
            log.info("metrics on http://%s:%d/metrics", s.metrics_host, s.metrics_port)
        if self.with_gateway:
            self.gateway = Gateway(
                inbox,
                s.gateway_host,
                s.gateway_port,
                idle_timeout_s=s.gateway_idle_timeout_s,
                frame_timeout_s=s.gateway_frame_timeout_s,
                max_garbage_bytes=s.gateway_max_garbage_bytes,
                max_connections=s.gateway_max_connections,
            )
            self.gateway.start()

    def _maintain(self, conn: psycopg.Connection) -> None:
        """Partitions ahead and retention. Never fatal: a month not made yet only means
        readings wait in the DEFAULT partition, and the next run moves them."""
        s = self.settings
        try:
            maintain(
                conn,
                datetime.now(UTC),
                months_ahead=s.partition_months_ahead,
                retention=s.retention,
            )
        except (StoreError, psycopg.Error) as exc:
            log.error("storage upkeep failed (ingest goes on; retried next time): %s", exc)

    def _maintain_every(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                assert self.pool is not None
                with self.pool.connection(timeout=10.0) as conn:
                    self._maintain(conn)
            except Exception as exc:  # the pool is closing, the database away
                log.warning("storage upkeep skipped: %s", exc)

    def rules_figures(self) -> RulesFigures:
        """This worker's rule runner: leading?, readings judged, alerts opened…"""
        return self.runner.figures() if self.runner is not None else RulesFigures()

    def _report_runner(self, worker: str, health: RunnerHealth) -> None:
        """The supervised runner's state on this worker's heartbeat row (/healthz);
        skipped while the database is away (the next change or start writes it)."""
        if self.pool is None:
            return
        try:
            with self.pool.connection(timeout=2.0) as conn:
                runner_state(conn, worker, health.state, health.restarts, health.last_exit)
        except Exception as exc:  # like the heartbeat: never stops ingest
            log.debug("rule runner state not written: %s", exc)

    def _in_transit(self) -> datetime | None:
        return self.subscriber.handing if self.subscriber is not None else None

    def _links(self) -> tuple[bool | None, int | None]:
        broker = self.subscriber.connected.is_set() if self.subscriber is not None else None
        conns = self.gateway.stats.open_connections if self.gateway is not None else None
        return broker, conns

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages, commit and acknowledge what is in hand, disconnect."""
        if self.subscriber is not None:
            self.subscriber.pause()
        if self.gateway is not None:
            self.gateway.pause()
        self._stop.set()
        t0 = time.monotonic()
        if self._thread is not None:
            self._thread.join(timeout)
        # the pipeline has committed (and queued) what it had: the runner judges the
        # rest of the queue before it lets go of the lead, in what is left of the time
        # (a stop grace period bounds the whole; the runner is killed past it)
        if self.runner is not None:
            self.runner.stop(max(2.0, timeout - (time.monotonic() - t0)))
        if self.subscriber is not None:
            self.subscriber.stop()
        if self.gateway is not None:
            self.gateway.stop()
        if self.pool is not None:
            self.pool.close()
        if self.spool is not None:
            self.spool.close()


def open_spools(
    directory: Path, worker: str, max_bytes: int, pool: ConnectionPool
) -> tuple[Spool, list[Spool]]:
    """This worker's spool (a sub-directory named after it), and those of workers that
    are gone, each resumed after the position the database says is drained."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", worker) or "ingest"
    spool = Spool(directory / name, max_bytes)
    spool.open(wait_s=SPOOL_LOCK_WAIT_S)  # a peer may be draining it as an orphan
    left = find_orphans(directory, name, max_bytes)
    with pool.connection() as conn:
        for sp in [spool, *left]:
            sp.resume(drained_mark(conn, sp.id))
    log.info("spool %s: %d bytes of %d in use", spool.dir, spool.bytes, max_bytes)
    for sp in left:
        log.warning(
            "spool %s of a worker that is gone holds %d messages: storing them",
            sp.dir,
            sp.pending_records,
        )
    return spool, left


def _no_ack(msg: InboundMessage) -> None:
    """Gateway-only workers have no broker to acknowledge."""

"""Wire the ingest worker: pool, migrations, registry, rules, subscriber, pipeline thread."""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime, timedelta

from psycopg_pool import ConnectionPool

from ingest.batcher import Batcher
from ingest.models import InboundMessage
from ingest.pipeline import IngestStats, Pipeline
from ingest.subscriber import Subscriber
from ingest.validate import Policy, policy_topic
from offsite.settings import Settings
from rules.alerts import AlertBook
from rules.engine import RuleEngine, RuleParams
from store.alerts import load_active
from store.migrate import migrate
from store.pool import open_pool

log = logging.getLogger("offsite.ingest")


def policy_from(settings: Settings) -> Policy:
    prefix, suffix = policy_topic(settings.mqtt_topic)
    return Policy(max_payload_bytes=settings.max_payload_bytes, topic_prefix=prefix,
                  topic_suffix=suffix,
                  max_future=timedelta(seconds=settings.max_future_s),
                  max_age=timedelta(days=settings.max_age_days))


class IngestService:
    """One ingest worker. ``start`` returns once it is connected and consuming."""

    def __init__(self, settings: Settings, database_url: str, mqtt_url: str,
                 stats: IngestStats | None = None) -> None:
        self.settings = settings
        self.database_url = database_url
        self.mqtt_url = mqtt_url
        self.stats = stats or IngestStats()
        self.pool: ConnectionPool | None = None
        self.subscriber: Subscriber | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        s = self.settings
        self.pool = open_pool(self.database_url, max_size=2, name="offsite-ingest")
        with self.pool.connection() as conn:
            migrate(conn)
            active = load_active(conn)
            last_heard: dict[str, datetime] = dict(conn.execute(
                "SELECT mn, last_received_at FROM device_status").fetchall())
        now = datetime.now(UTC)
        engine = RuleEngine(RuleParams(window=s.rule_window, flatline_count=s.flatline_count,
                                       spike_z=s.spike_z, offline_intervals=s.offline_intervals),
                            {}, {}, started_at=now)
        engine.note_received(last_heard)
        book = AlertBook({"offline": timedelta(0)},
                         default_clear_after=timedelta(seconds=s.alert_clear_s))
        book.load(active)
        inbox: queue.Queue[InboundMessage] = queue.Queue(maxsize=s.queue_max_messages)
        self.subscriber = Subscriber(self.mqtt_url, s.mqtt_topic, s.mqtt_client_id, inbox,
                                     shared_group=s.mqtt_shared_group,
                                     keepalive=s.mqtt_keepalive_s)
        pipeline = Pipeline(self.pool, engine, book, policy_from(s),
                            Batcher(s.batch_max_readings, s.batch_max_delay_ms / 1000),
                            self.subscriber.ack, offline_check_s=s.offline_check_s,
                            idle_flush_s=s.batch_idle_ms / 1000,
                            stats=self.stats)
        pipeline.refresh_registry()
        self.pipeline = pipeline

        def run() -> None:
            try:
                pipeline.run(inbox, self._stop)
            except BaseException as exc:  # surfaced by .alive / .error to the caller
                self.error = exc
                log.exception("ingest pipeline stopped on an unexpected error")

        self._thread = threading.Thread(target=run, name="offsite-pipeline", daemon=True)
        self._thread.start()
        self.subscriber.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages, commit and acknowledge what is in hand, disconnect."""
        if self.subscriber is not None:
            self.subscriber.pause()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.subscriber is not None:
            self.subscriber.stop()
        if self.pool is not None:
            self.pool.close()

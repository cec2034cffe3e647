"""Prometheus metrics of one ingest worker, read from its live counters at scrape time.

A collector rather than counters updated in the hot path: the pipeline keeps plain
integers (no locks, no cost per message) and a scrape reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from offsite.ingest.pipeline import IngestStats
from offsite.ingest.spool import Spool
from offsite.runner.rule_process import RulesFigures


class IngestCollector(Collector):
    def __init__(
        self,
        stats: IngestStats,
        links: Callable[[], tuple[bool | None, int | None]],
        backlog: Callable[[], tuple[int, float]],
        rules: Callable[[], RulesFigures] | None = None,
        spool: Spool | None = None,
    ) -> None:
        self.spool = spool
        self.stats = stats
        self.links = links
        self.backlog = backlog
        self.rules = rules  # the rule runner started beside this worker

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        for name, doc, value in (
            ("offsite_ingest_messages", "Messages taken from the broker or gateway", s.messages),
            ("offsite_ingest_readings_stored", "Readings new to the store", s.readings_stored),
            ("offsite_ingest_duplicates", "Readings already stored (redeliveries)", s.duplicates),
            ("offsite_ingest_batches", "Committed batches", s.batches),
            ("offsite_ingest_db_errors", "Database attempts that failed (retried)", s.db_errors),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield CounterMetricFamily(
            "offsite_ingest_writer_wait_seconds",
            "Seconds the pipeline waited for the writer (the database) to take a batch",
            value=s.writer_wait_s,
        )
        dead = CounterMetricFamily(
            "offsite_ingest_dead_letters", "Dead letters by reason", labels=["reason"]
        )
        for reason, n in sorted(s.dead_by_reason.items()):
            dead.add_metric([reason], n)
        yield dead
        for name, doc, h in (
            ("offsite_ingest_batch_readings", "Readings per committed batch", s.batch_readings),
            (
                "offsite_ingest_commit_seconds",
                "Time to commit a batch, retries included",
                s.commit_seconds,
            ),
        ):
            yield HistogramMetricFamily(name, doc, buckets=h.cumulative(), sum_value=h.total)
        broker, conns = self.links()
        if broker is not None:
            yield GaugeMetricFamily(
                "offsite_ingest_broker_connected",
                "1 while connected to the MQTT broker",
                value=int(broker),
            )
        if conns is not None:
            yield GaugeMetricFamily(
                "offsite_gateway_connections", "Open HJ 212 gateway connections", value=conns
            )
        depth, lag = self.backlog()
        yield GaugeMetricFamily(
            "offsite_ingest_uncommitted_messages",
            "Messages in hand, not yet committed",
            value=depth,
        )
        yield GaugeMetricFamily(
            "offsite_ingest_lag_seconds", "Age of the oldest message not yet committed", value=lag
        )
        yield GaugeMetricFamily(
            "offsite_ingest_last_commit_timestamp_seconds",
            "Unix time of the last commit",
            value=s.last_commit_at,
        )
        if self.spool is not None:
            sp = self.spool
            f = sp.figures
            for name, doc, value in (
                (
                    "offsite_ingest_spooled_messages",
                    "Messages put in the spool (acknowledged once on disk)",
                    f.appended,
                ),
                ("offsite_ingest_spooled_bytes", "Bytes written to the spool", f.appended_bytes),
                (
                    "offsite_ingest_spool_drained_messages",
                    "Messages stored from the spool",
                    f.drained,
                ),
                ("offsite_ingest_spool_full", "Appends refused by a full spool", f.refused_full),
            ):
                yield CounterMetricFamily(name, doc, value=value)
            for name, doc, value in (
                ("offsite_ingest_spool_bytes", "Bytes in the spool now", sp.bytes),
                ("offsite_ingest_spool_capacity_bytes", "The spool's size limit", sp.max_bytes),
                (
                    "offsite_ingest_spool_pending_messages",
                    "Messages in the spool not yet stored",
                    sp.pending_records,
                ),
            ):
                yield GaugeMetricFamily(name, doc, value=value)
        if self.rules is not None:
            r = self.rules()
            leading, judged, late = r.leading, r.judged, r.late
            yield CounterMetricFamily(
                "offsite_ingest_alerts_opened",
                "Alerts opened by this worker's rule runner",
                value=r.opened,
            )
            yield GaugeMetricFamily(
                "offsite_rules_leading",
                "1 while this worker's rule runner judges the queue",
                value=int(leading),
            )
            yield CounterMetricFamily(
                "offsite_rules_judged", "Readings judged by this worker's rule runner", value=judged
            )
            yield CounterMetricFamily(
                "offsite_rules_runner_restarts",
                "Rule runner processes that died and were restarted by this worker",
                value=r.restarts,
            )
            yield GaugeMetricFamily(
                "offsite_rules_runner_up",
                "1 while this worker's rule runner process is running",
                value=int(r.up),
            )
            yield CounterMetricFamily(
                "offsite_rules_late",
                "Readings judged after a newer one of their series (order-free rules only)",
                value=late,
            )


def serve_metrics(collector: IngestCollector, host: str, port: int) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    start_http_server(port, addr=host, registry=registry)
    return registry

"""Prometheus metrics of the API: request latency by route template, and what the
database knows about alerts and ingest workers (so one scrape of the API shows the whole
pipeline, even for workers whose own /metrics port is not reachable).

Latency is measured to the start of the response (status and headers sent): for the SSE
feed that is the time to open the stream, not how long a client stayed on it. Routes are
labelled by their template (``/api/alerts/{alert_id}``), never by the raw path, and paths
that match no route share one label, so a scanner cannot blow up the series count.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg import AsyncConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from offsite.rules.alerts import ACTIVE_STATES_SQL

UNMATCHED = "<unmatched>"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestLatency:
    """ASGI middleware observing one histogram per (method, route template, status)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.histogram = Histogram(
            "offsite_api_request_duration_seconds",
            "Time from request to response start, by route template",
            ["method", "route", "status"],
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.histogram.labels(
                    scope["method"], route_label(scope), str(message["status"])
                ).observe(time.perf_counter() - t0)
            await send(message)

        await self.app(scope, receive, timed_send)


class _Snapshot(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


async def database_metrics(conn: AsyncConnection) -> list[Metric]:
    """Alerts raised and open by rule and severity, and each ingest worker's heartbeat
    figures, read from the database at scrape time (a few indexed aggregates)."""
    raised = CounterMetricFamily(
        "offsite_alerts_raised", "Alerts ever raised", labels=["rule", "severity"]
    )
    open_ = GaugeMetricFamily(
        "offsite_alerts_open",
        "Alerts active (open, acknowledged or assigned)",
        labels=["rule", "severity"],
    )
    cur = await conn.execute(
        f"""
        SELECT rule, severity, count(*),
               count(*) FILTER (WHERE state IN ({ACTIVE_STATES_SQL}))
        FROM alerts GROUP BY 1, 2 ORDER BY 1, 2""".encode()
    )
    for rule, severity, total, active in await cur.fetchall():
        raised.add_metric([rule, severity], total)
        open_.add_metric([rule, severity], active)
    lag = GaugeMetricFamily(
        "offsite_ingest_worker_lag_seconds",
        "Age of the oldest uncommitted message, per worker heartbeat",
        labels=["worker"],
    )
    age = GaugeMetricFamily(
        "offsite_ingest_worker_heartbeat_age_seconds",
        "Seconds since each ingest worker last reported",
        labels=["worker"],
    )
    stored = CounterMetricFamily(
        "offsite_ingest_worker_readings_stored",
        "Readings stored, per worker since its start",
        labels=["worker"],
    )
    cur = await conn.execute("""
        SELECT worker, lag_s, extract(epoch FROM now() - heartbeat_at)::float8,
               readings_stored FROM ingest_workers ORDER BY worker""")
    for worker, lag_s, age_s, n in await cur.fetchall():
        lag.add_metric([worker], lag_s)
        age.add_metric([worker], age_s)
        stored.add_metric([worker], n)
    return [raised, open_, lag, age, stored]


def render(registry: CollectorRegistry, extra: list[Metric]) -> bytes:
    """The process's own metrics followed by the database snapshot, one exposition."""
    snap = CollectorRegistry()
    snap.register(_Snapshot(extra))
    return generate_latest(registry) + generate_latest(snap)


def route_label(scope: Scope) -> str:
    """The matched route's template; the router sets it on this same scope dict."""
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED

"""The API's Prometheus /metrics: request latency by route template, alerts raised and
open by rule from the database, ingest workers' heartbeat figures."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.helpers import bearer, make_settings, register, token_for
from tests.integration.test_api_live import serving
from tests.integration.test_ingest_store import MN, OTHER, REGISTRY

pytestmark = pytest.mark.integration


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_metrics_show_latency_by_route_template_and_alerts_by_rule(
    db_url: str, mqtt_url: str
) -> None:
    register(db_url, REGISTRY)
    with psycopg.connect(db_url) as conn:
        conn.execute(
            """
            INSERT INTO alerts (rule, mn, pollutant, severity, state, first_seen, last_seen,
                                message)
            VALUES ('exceedance', %(a)s, 'a21026', 'major', 'open', now(), now(), 'x'),
                   ('exceedance', %(b)s, 'a21026', 'major', 'cleared', now(), now(), 'x'),
                   ('exceedance', %(a)s, 'a21026', 'major', 'resolved', now(), now(), 'x'),
                   ('flatline', %(b)s, 'a21002', 'warning', 'acknowledged', now(), now(),
                    'x'),
                   ('offline', %(a)s, '', 'critical', 'assigned', now(), now(), 'x')""",
            {"a": MN, "b": OTHER},
        )
        conn.execute("""
            INSERT INTO ingest_workers (worker, host, pid, started_at, heartbeat_at,
                broker_connected, inbox, lag_s, messages, readings_stored, dead_letters,
                db_errors) VALUES ('w1', 'h', 1, now(), now(), true, 3, 1.5, 10, 42, 0, 0)""")
    settings = make_settings(db_url, mqtt_url, "x/+/y")
    headers = bearer(token_for(db_url, "admin"))
    with (
        serving(settings, db_url) as url,
        httpx.Client(base_url=url, timeout=30, headers=headers) as http,
    ):
        for mn in (MN, OTHER, "NOSUCHDEVICE"):
            http.get(f"/api/devices/{mn}/readings")
        http.get("/no/such/path/at/all")
        resp = http.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    s = _samples(resp.text)
    route = "/api/devices/{mn}/readings"
    count = "offsite_api_request_duration_seconds_count"
    assert s[(count, (("method", "GET"), ("route", route), ("status", "200")))] == 2
    assert s[(count, (("method", "GET"), ("route", route), ("status", "404")))] == 1
    assert s[(count, (("method", "GET"), ("route", "<unmatched>"), ("status", "404")))] == 1
    # raw paths never become labels
    assert all(MN not in dict(k[1]).get("route", "") for k in s)
    assert s[("offsite_alerts_raised_total", (("rule", "exceedance"), ("severity", "major")))] == 3
    assert s[("offsite_alerts_open", (("rule", "exceedance"), ("severity", "major")))] == 1
    assert s[("offsite_alerts_open", (("rule", "flatline"), ("severity", "warning")))] == 1
    # assigned is active too (it was left out once: the gauge said 0 for it)
    assert s[("offsite_alerts_open", (("rule", "offline"), ("severity", "critical")))] == 1
    assert s[("offsite_ingest_worker_lag_seconds", (("worker", "w1"),))] == 1.5
    assert s[("offsite_ingest_worker_readings_stored_total", (("worker", "w1"),))] == 42
    assert 0 <= s[("offsite_ingest_worker_heartbeat_age_seconds", (("worker", "w1"),))] < 60

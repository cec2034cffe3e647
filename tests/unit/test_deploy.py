"""The deployment files agree with the code: compose sets only real settings, every
long-running service restarts and reports health, ingest scales out on a shared
subscription, and the dashboard queries only metrics the code exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from offsite.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
BATCH_JOBS = {"migrate", "simulator", "broker-auth"}
THIRD_PARTY_UI = {"prometheus", "grafana"}


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def test_compose_sets_only_settings_that_exist():
    fields = {f"OFFSITE_{name.upper()}" for name in Settings.model_fields}
    for name, svc in SERVICES.items():
        env = svc.get("environment") or {}
        unknown = {k for k in env if k.startswith("OFFSITE_")} - fields
        assert not unknown, f"{name} sets {unknown}, which no setting reads"


def test_long_running_services_restart_and_have_health_checks():
    for name, svc in SERVICES.items():
        if name in BATCH_JOBS:
            assert svc.get("restart") == "no", name
            continue
        assert svc.get("restart") == "unless-stopped", name
        if name not in THIRD_PARTY_UI:
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_ingest_scales_out_on_a_shared_subscription_with_distinct_client_ids():
    ingest = SERVICES["ingest"]
    assert "replicas" in ingest["deploy"]
    env = _env("ingest")
    assert env["OFFSITE_MQTT_SHARED_GROUP"]
    assert "{hostname}" in env["OFFSITE_MQTT_CLIENT_ID"]
    assert "ports" not in ingest  # replicas cannot share a published port
    port = env["OFFSITE_METRICS_PORT"]
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["offsite-ingest"]["dns_sd_configs"][0]["port"] == int(port)


def test_client_id_expands_hostname(monkeypatch):
    import socket

    from offsite.ingest.service import client_id

    monkeypatch.setattr(socket, "gethostname", lambda: "c0ffee")
    assert (
        client_id(Settings(mqtt_client_id="offsite-ingest-{hostname}")) == "offsite-ingest-c0ffee"
    )
    assert client_id(Settings(mqtt_client_id="fixed")) == "fixed"


def test_dashboard_queries_only_exported_metrics():
    dash = json.loads((ROOT / "deploy/grafana/offsite-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    source = (ROOT / "ingest/metrics.py").read_text() + (ROOT / "api/metrics.py").read_text()
    names = {
        re.sub(r"_(total|bucket|count|sum)$", "", m)
        for e in exprs
        for m in re.findall(r"\boffsite_[a-z_]+", e)
    }
    assert names, "no metric found in the dashboard"
    missing = {n for n in names if f'"{n}"' not in source}
    assert not missing, f"dashboard queries metrics nobody exports: {missing}"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))

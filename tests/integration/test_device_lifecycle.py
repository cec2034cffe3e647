"""Onboarding through the API issues a device its MQTT credentials; after revocation its
data reaches the dead letters with the reason ``device_revoked`` (and the raw payload)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest

from offsite.core.credentials import mosquitto_verify
from tests.integration.helpers import (
    make_settings,
    publish_raw,
    running_ingest,
    scalar,
    topic_for,
    wait_for,
)
from tests.integration.security_fixtures import api_client, build_world

pytestmark = pytest.mark.integration
MN = "ONB0000001"


def _payload(value: float) -> bytes:
    return json.dumps({"ts": datetime.now(UTC).isoformat(), "values": {"a21026": value}}).encode()


def test_onboard_then_revoke_a_device(db_url: str, mqtt_url: str, unique_topic: str) -> None:
    w = build_world(db_url)
    admin = w.headers("admin")
    with api_client(db_url, mqtt_topic=unique_topic) as c:
        r = c.post(
            "/api/devices",
            headers=admin,
            json={"mn": MN, "point_id": "E1-P1", "hj212_password": "123456"},
        )
        assert r.status_code == 201, r.text
        creds = r.json()
        assert creds["mqtt_username"] == MN and creds["topic"] == topic_for(unique_topic, MN)
        assert (
            c.post("/api/devices", headers=admin, json={"mn": MN, "point_id": "E1-P1"}).status_code
            == 409
        )
        assert (
            c.post("/api/devices", headers=admin, json={"mn": "X1", "point_id": "NOPE"}).status_code
            == 404
        )
    with psycopg.connect(db_url) as conn:
        stored = conn.execute(
            "SELECT mqtt_password_hash, password FROM devices WHERE mn = %s", (MN,)
        ).fetchone()
    assert stored is not None and stored[1] == "123456"
    assert mosquitto_verify(stored[0], creds["mqtt_password"])  # only the hash is kept
    assert creds["mqtt_password"] not in stored[0]

    settings = make_settings(db_url, mqtt_url, unique_topic)  # offline_check_s=0.5
    with running_ingest(settings) as ingest, api_client(db_url) as c:
        publish_raw(mqtt_url, [(creds["topic"], _payload(1.0))])
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM readings WHERE mn = %s", MN) == 1,
            what="the onboarded device's reading stored",
        )
        # revoked while ingest runs: refused within the revocation refresh, no restart
        r = c.post(f"/api/devices/{MN}/revoke", headers=admin, json={"reason": "logger stolen"})
        assert r.status_code == 204
        assert (
            c.post(f"/api/devices/{MN}/revoke", headers=admin, json={"reason": "again"}).status_code
            == 409
        )
        assert (
            c.post("/api/devices/NOPE/revoke", headers=admin, json={"reason": "x"}).status_code
            == 404
        )
        # its history stays readable
        assert c.get(f"/api/devices/{MN}/readings", headers=admin).status_code == 200
        wait_for(
            lambda: MN in ingest.pipeline.revoked,
            timeout=10,
            what="ingest rereads the revocations (every offline_check_s)",
        )
        publish_raw(mqtt_url, [(creds["topic"], _payload(2.0))])
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM dead_letters") == 1,
            what="the revoked device's message dead-lettered",
        )
    with psycopg.connect(db_url) as conn:
        reason, detail, payload = conn.execute(
            "SELECT reason, detail, payload FROM dead_letters"
        ).fetchone()  # type: ignore[misc]
        n = conn.execute("SELECT count(*) FROM readings WHERE mn = %s", (MN,)).fetchone()
    assert reason == "device_revoked" and "logger stolen" in detail
    assert bytes(payload).startswith(b'{"ts"') and n == (1,)

    # re-admitting it issues fresh credentials
    with api_client(db_url, mqtt_topic=unique_topic) as c:
        again = c.post("/api/devices", headers=admin, json={"mn": MN, "point_id": "E1-P1"})
        assert again.status_code == 201
        assert again.json()["mqtt_password"] != creds["mqtt_password"]

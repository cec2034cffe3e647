"""The whole path on real services: simulator → MQTT → ingest → PostgreSQL → rules →
alert → HTTP API (list, act, SSE) → visit logged against the site's signed QR token."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from offsite.api.app import create_app
from offsite.demo import demo_rules
from offsite.simulators.faults import FaultKind
from offsite.simulators.publisher import publish_fleet
from offsite.simulators.scenarios import build_fleet
from tests.integration.helpers import (
    bearer,
    make_settings,
    register,
    running_ingest,
    scalar,
    token_for,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_simulator_to_alert_to_visit(
    db_url: str, mqtt_url: str, unique_topic: str, tmp_path: Path
) -> None:
    # replayed device time ends about now, so no device is (rightly) judged offline
    start = (datetime.now(UTC) - timedelta(seconds=1800)).replace(microsecond=0)
    # 720 messages: under the 1,000 that a default Mosquitto queues per client before it
    # drops QoS 1 messages (the lossless broker set-up is tested with its own broker)
    fleet = build_fleet(
        6,
        seed=7,
        start=start,
        rate_s=15.0,
        faults=[FaultKind.EXCEEDANCE, FaultKind.FLATLINE, FaultKind.SPIKE],
        fault_after_s=600,
        fault_duration_s=1500,
    )
    register(db_url, fleet.registry)
    # faults 40 readings in: the packaged rules without their warm-ups, as the demo runs
    settings = make_settings(db_url, mqtt_url, unique_topic, rules_file=demo_rules(tmp_path))

    with running_ingest(settings) as ingest:
        stats = publish_fleet(
            fleet,
            mqtt_url,
            duration_s=1800,
            start=start,
            realtime=False,
            topic_template=unique_topic.replace("+", "{mn}"),
            client_id="offsite-test-sim",
        )
        assert stats.messages > 0
        wait_for(
            lambda: (
                not ingest.alive
                or scalar(db_url, "SELECT count(*) FROM readings") == stats.readings
            ),
            timeout=60,
            what=f"{stats.readings} readings stored ({ingest.stats})",
        )
        wait_for(lambda: ingest.stats.messages == stats.messages, what="all messages taken")

    # every published reading stored exactly once, nothing dead-lettered
    assert scalar(db_url, "SELECT count(*) FROM readings") == stats.readings
    assert scalar(db_url, "SELECT count(*) FROM dead_letters") == 0
    assert ingest.stats.readings_stored == stats.readings
    assert scalar(db_url, "SELECT count(*) FROM device_status") == len(fleet.registry.devices)

    # each injected fault raised its alert on the right device and pollutant
    with psycopg.connect(db_url) as conn:
        alerts = conn.execute(
            "SELECT rule, mn, pollutant, count, worst_value, limit_value FROM alerts"
        ).fetchall()
        messages = conn.execute("SELECT rule, mn, pollutant, message FROM alerts").fetchall()
    raised = {(rule, mn, pol) for rule, mn, pol, *_ in alerts}
    for fault in fleet.faults:
        assert (fault.kind.value, fault.mn, fault.pollutant) in raised, (fault, raised)
    # clean devices raise nothing (a spike above the limit is also an exceedance)
    faulty = {f.mn for f in fleet.faults}
    assert {mn for _, mn, _ in raised} <= faulty, [m for m in messages if m[1] not in faulty]
    # one alert per (rule, device, pollutant), repeats counted on it
    assert len(raised) == len(alerts)
    # spikes are long past (clear_after 60 s) and cleared — the exceedance's onset step
    # may count as one too; the exceedance and the flatline go on, so stay open
    spike_dev = next(f.mn for f in fleet.faults if f.kind is FaultKind.SPIKE)
    assert ("spike", spike_dev) in {(r, m) for r, m, _ in raised}
    with psycopg.connect(db_url) as conn:
        states = dict(((r, m), s) for r, m, s in conn.execute("SELECT rule, mn, state FROM alerts"))
    assert {s for (r, _), s in states.items() if r == "spike"} == {"cleared"}, states
    assert {
        s for (r, m), s in states.items() if (r, m) != ("exceedance", spike_dev) and r != "spike"
    } == {"open"}, states
    exceed_dev = next(f.mn for f in fleet.faults if f.kind is FaultKind.EXCEEDANCE)
    exceed = next(a for a in alerts if a[0] == "exceedance" and a[1] == exceed_dev)
    assert exceed[3] > 1 and exceed[4] > exceed[5]

    # the API shows them, lets a regulator act, and logs a QR-coded visit
    app = create_app(settings, db_url)
    regulator = bearer(token_for(db_url, "regulator", user_id="regulator-1"))
    inspector = bearer(token_for(db_url, "inspector", user_id="insp-7"))
    with TestClient(app, headers=regulator) as client:
        listed = client.get("/api/alerts", params={"rule": "exceedance"}).json()
        exceed_mn = next(f.mn for f in fleet.faults if f.kind is FaultKind.EXCEEDANCE)
        alert = next(a for a in listed if a["mn"] == exceed_mn)
        enterprise = alert["enterprise_id"]

        acked = client.post(f"/api/alerts/{alert['id']}/acknowledge", json={"note": "looking"})
        assert acked.status_code == 200
        assert acked.json()["state"] == "acknowledged"
        assert acked.json()["acknowledged_by"] == "regulator-1"  # the signed-in user
        assert [e["kind"] for e in acked.json()["events"]][-1] == "acknowledged"
        again = client.post(f"/api/alerts/{alert['id']}/acknowledge", json={"by": "x"})
        assert again.status_code == 409

        devices = {d["mn"]: d for d in client.get("/api/devices").json()}
        assert devices[exceed_mn]["last_ts"] is not None

        qr = client.get(f"/api/enterprises/{enterprise}/qr.svg")
        assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg")
        scan_url = qr.headers["x-offsite-scan-url"]
        visit = client.post(
            "/api/visits/check-in",
            headers=inspector,
            json={"token": scan_url, "purpose": "verify exceedance", "alert_id": alert["id"]},
        )
        assert visit.status_code == 201, visit.text
        v = visit.json()
        assert v["enterprise_id"] == enterprise and v["alert_id"] == alert["id"]
        assert v["inspector_id"] == "insp-7"
        out = client.post(
            f"/api/visits/{v['id']}/check-out",
            headers=inspector,
            json={"findings": "analyser span drift"},
        )
        assert out.status_code == 200 and out.json()["checked_out_at"] is not None
        assert [
            x["id"] for x in client.get("/api/visits", params={"enterprise": enterprise}).json()
        ] == [v["id"]]
        assert client.get("/api/visits", params={"inspector": "nobody"}).json() == []

        # replay of the live feed from the start includes the acknowledgement
        with client.stream("GET", "/api/alerts/stream", params={"after": 0}) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            kinds = []
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    ev = json.loads(line[6:])
                    kinds.append((ev["id"], ev["event"]))
                    if ev["event"] == "acknowledged":
                        break
        assert (alert["id"], "opened") in kinds and (alert["id"], "acknowledged") in kinds

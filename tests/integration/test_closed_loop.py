"""The closed loop end to end on real services: a simulated exceedance over MQTT →
ingest → alert → case → the enterprise's response, rejected → inspection task → QR
check-in by two inspectors of two departments (one joint visit) → findings → case
closed → the monthly report counts it all."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from offsite.api.app import create_app
from offsite.core.registry import registry_from_dict
from offsite.store.audit import verify
from offsite.store.users import create_user, issue_token
from tests.integration.helpers import (
    bearer,
    make_settings,
    publish_raw,
    register,
    running_ingest,
    scalar,
    topic_for,
    wait_for,
)

pytestmark = pytest.mark.integration

LIMIT = 35.0
PW = "correct horse battery staple"


def _world(db_url: str, mn: str) -> dict[str, dict[str, str]]:
    register(
        db_url,
        registry_from_dict(
            {
                "enterprises": [
                    {
                        "id": "ENT",
                        "name": "Boiler works",
                        "region": "R1",
                        "points": [
                            {
                                "id": "ENT-S1",
                                "kind": "flue_gas",
                                "limits": {"a21026": LIMIT},
                                "devices": [{"mn": mn, "interval_s": 60}],
                            }
                        ],
                    }
                ]
            }
        ),
    )
    with psycopg.connect(db_url) as conn:
        create_user(conn, "reg", "regulator", PW, region="R1")
        create_user(conn, "eco", "inspector", PW, region="R1", department="ecology bureau")
        create_user(conn, "water", "inspector", PW, region="R1", department="water bureau")
        create_user(conn, "ent", "enterprise", PW, enterprise_id="ENT")
        return {u: bearer(issue_token(conn, u)) for u in ("reg", "eco", "water", "ent")}


def _publish_hour(mqtt_url: str, topic: str, mn: str, hour: datetime, level: float) -> None:
    """One reading a minute for a whole hour, wobbling around ``level``."""
    msgs = [
        (
            topic_for(topic, mn),
            json.dumps(
                {
                    "ts": (hour + timedelta(minutes=i)).isoformat(),
                    "values": {"a21026": round(level + 3 * math.sin(i / 3), 3)},
                }
            ).encode(),
        )
        for i in range(60)
    ]
    publish_raw(mqtt_url, msgs)


def _previous_hour() -> datetime:
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    if hour.month != now.month:
        pytest.skip("the previous hour is in last month: the report month would differ")
    return hour


def test_exceedance_to_case_to_joint_visit_to_report(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    mn = "LOOP0001"
    h = _world(db_url, mn)
    hour = _previous_hour()
    settings = make_settings(db_url, mqtt_url, unique_topic, alert_clear_s=7200.0)
    with running_ingest(settings):
        _publish_hour(mqtt_url, unique_topic, mn, hour, 50.0)  # 1.4 × the limit: major
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM readings") == 60, what="60 readings stored"
        )
        wait_for(
            lambda: scalar(db_url, "SELECT id FROM alerts WHERE rule = 'exceedance'"),
            what="an exceedance alert",
        )
    alert_id = scalar(db_url, "SELECT id FROM alerts WHERE rule = 'exceedance'")
    # a major alert: the engine leaves opening a case to people
    assert scalar(db_url, "SELECT count(*) FROM cases") == 0

    with TestClient(create_app(settings, db_url)) as c:
        # discovery: the regulator opens a case; the enterprise is told
        r = c.post(
            "/api/cases", headers=h["reg"], json={"alert_ids": [alert_id], "response_hours": 48}
        )
        assert r.status_code == 201, r.text
        case = r.json()
        cid = case["id"]
        assert case["state"] == "discovered" and case["alerts"] == [alert_id]
        assert case["steps"][0]["actor"] == "reg" and case["steps"][0]["kind"] == "opened"
        told = c.get("/api/cases/notifications", headers=h["ent"]).json()
        assert [(n["kind"], n["case_id"]) for n in told] == [("case.opened", cid)]
        assert (
            c.post("/api/cases", headers=h["reg"], json={"alert_ids": [alert_id]}).status_code
            == 409
        )  # one case per alert

        # verification (remote): the enterprise answers with an attachment, kept by hash
        assert (
            c.post(
                f"/api/cases/{cid}/move",
                headers=h["reg"],
                json={"to": "verifying", "note": "asking the site"},
            ).status_code
            == 200
        )
        photo = b"\x89PNG fake photo of a clean probe"
        r = c.post(
            f"/api/cases/{cid}/responses",
            headers=h["ent"],
            json={
                "explanation": "the probe was being cleaned",
                "attachments": [
                    {
                        "filename": "probe.png",
                        "content_type": "image/png",
                        "content_base64": base64.b64encode(photo).decode(),
                    }
                ],
            },
        )
        assert r.status_code == 201, r.text
        resp = r.json()["responses"][0]
        att = resp["attachments"][0]
        assert att["sha256"] == hashlib.sha256(photo).hexdigest() and att["size"] == len(photo)
        got = c.get(f"/api/cases/{cid}/attachments/{att['id']}", headers=h["reg"])
        assert got.content == photo
        assert got.headers["x-content-sha256"] == hashlib.sha256(photo).hexdigest()
        # … and the regulator rejects it
        r = c.post(
            f"/api/cases/{cid}/responses/{resp['id']}/verdict",
            headers=h["reg"],
            json={"accept": False, "note": "the values rose before the cleaning"},
        )
        assert r.status_code == 200 and r.json()["responses"][0]["verdict"] == "rejected"
        assert (
            c.post(
                f"/api/cases/{cid}/responses/{resp['id']}/verdict",
                headers=h["reg"],
                json={"accept": True},
            ).status_code
            == 409
        )

        # remote verification cannot settle it: an inspection task
        r = c.post(
            f"/api/cases/{cid}/tasks",
            headers=h["reg"],
            json={"assignee": "eco", "reason": "check the analyser on site"},
        )
        assert r.status_code == 201, r.text
        task = r.json()
        assert task["state"] == "open" and not task["advisory"]
        assert [t["id"] for t in c.get("/api/tasks", headers=h["eco"]).json()] == [task["id"]]
        assert c.get("/api/tasks", headers=h["water"]).json() == []
        # the console's alert page asks for the tasks an alert led to
        assert [
            t["id"]
            for t in c.get("/api/tasks", headers=h["reg"], params={"alert_id": alert_id}).json()
        ] == [task["id"]]
        assert c.get("/api/tasks", headers=h["reg"], params={"alert_id": 10**9}).json() == []
        # the case cannot close while someone is on the way
        r = c.post(
            f"/api/cases/{cid}/move", headers=h["reg"], json={"to": "closed", "note": "done"}
        )
        assert r.status_code == 409 and "open inspection task" in r.text

        # two inspectors of two departments scan the site's code: one joint visit
        scan = c.get("/api/enterprises/ENT/qr.svg", headers=h["reg"]).headers["x-offsite-scan-url"]
        r = c.post(
            "/api/visits/check-in",
            headers=h["water"],
            json={"token": scan, "purpose": "joint", "task_id": task["id"]},
        )
        assert r.status_code == 422  # the assignee opens the task's visit
        r1 = c.post(
            "/api/visits/check-in",
            headers=h["eco"],
            json={"token": scan, "purpose": "analyser check", "task_id": task["id"]},
        )
        assert r1.status_code == 201, r1.text
        r2 = c.post(
            "/api/visits/check-in",
            headers=h["water"],
            json={"token": scan, "purpose": "outfall check", "task_id": task["id"]},
        )
        assert r2.status_code == 201, r2.text
        visit = r2.json()
        assert visit["id"] == r1.json()["id"]
        assert visit["kind"] == "task" and visit["case_id"] == cid and not visit["advisory"]
        assert {(i["inspector_id"], i["department"]) for i in visit["inspectors"]} == {
            ("eco", "ecology bureau"),
            ("water", "water bureau"),
        }
        seen = c.get("/api/visits", headers=h["ent"]).json()
        assert [v["id"] for v in seen] == [visit["id"]]  # the enterprise sees one visit

        # findings: the visit ends when the last inspector leaves, and closes the task
        out = c.post(
            f"/api/visits/{visit['id']}/check-out",
            headers=h["eco"],
            json={"findings": "span gas expired"},
        )
        assert out.status_code == 200 and out.json()["checked_out_at"] is None
        assert c.get(f"/api/tasks/{task['id']}", headers=h["reg"]).json()["state"] == "open"
        out = c.post(
            f"/api/visits/{visit['id']}/check-out",
            headers=h["water"],
            json={"findings": "outfall fine"},
        )
        assert out.status_code == 200 and out.json()["checked_out_at"] is not None
        assert "span gas expired" in out.json()["findings"]
        assert "outfall fine" in out.json()["findings"]
        done = c.get(f"/api/tasks/{task['id']}", headers=h["reg"]).json()
        assert done["state"] == "done" and done["visit_id"] == visit["id"]

        # rectification → feedback → closed, each step on record
        for to, note in (
            ("rectifying", "replace the span gas"),
            ("feedback", "replaced"),
            ("closed", "verified by the next calibration"),
        ):
            r = c.post(f"/api/cases/{cid}/move", headers=h["reg"], json={"to": to, "note": note})
            assert r.status_code == 200, r.text
        final = r.json()
        assert final["state"] == "closed" and final["closed_at"] is not None
        assert [s["kind"] for s in final["steps"]] == [
            "opened",
            "moved",
            "response",
            "rejected",
            "task",
            "task_done",
            "moved",
            "moved",
            "moved",
        ]

        # the enterprise rates the visit; the regulator sees it, the inspectors do not
        assert (
            c.post(
                f"/api/visits/{visit['id']}/rating",
                headers=h["ent"],
                json={"rating": 4, "comment": "brief and clear"},
            ).status_code
            == 204
        )
        # a second rating is refused: the first one and its comment stand
        again = c.post(f"/api/visits/{visit['id']}/rating", headers=h["ent"], json={"rating": 1})
        assert again.status_code == 409, again.text
        kept = c.get(f"/api/visits/{visit['id']}", headers=h["reg"]).json()
        assert kept["rating_comment"] == "brief and clear"
        assert c.get(f"/api/visits/{visit['id']}", headers=h["reg"]).json()["rating"] == 4
        assert c.get(f"/api/visits/{visit['id']}", headers=h["eco"]).json()["rating"] is None

        # the monthly report counts it all
        month = hour.strftime("%Y-%m")
        rep = c.get(f"/api/reports/ENT/{month}", headers=h["ent"])
        assert rep.status_code == 200, rep.text
        report = rep.json()
        s = report["summary"]
        assert s["hours_over_limit"] == {"a21026": 1}
        ex = report["exceedances"][0]
        assert (ex["mn"], ex["valid_hours"], ex["hours_over_limit"]) == (mn, 1, 1)
        assert "exceedance" in s["alerts_by_rule"]
        assert s["cases_by_state"] == {"closed": 1} and s["case_mean_closed_h"] is not None
        assert s["visits_by_kind"] == {"task": 1} and s["joint_visits"] == 1
        assert s["rating_mean"] == 4 and s["ratings"] == 1
        cap = next(x for x in report["capture"] if x["pollutant"] == "a21026")
        assert cap["valid_values"] == 60
        # expected from the device's first reading (an hour ago), not the month's start
        assert cap["capture_rate"] >= 0.5, cap
        csv = c.get(f"/api/reports/ENT/{month}/csv", headers=h["reg"])
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        assert f"exceedance,ENT,{month},{mn}/a21026,limit 35.0,1," in csv.text
        assert c.get("/api/reports/page").text.startswith("<!doctype html>")
        # another enterprise's user, or an inspector, cannot read it
        assert c.get(f"/api/reports/ENT/{month}", headers=h["eco"]).status_code == 403

    # every step is in the tamper-evident audit log
    with psycopg.connect(db_url) as conn:
        assert verify(conn).broken is None
        actions = {a for (a,) in conn.execute("SELECT action FROM audit_log")}
    assert {
        "case.open",
        "case.move",
        "case.respond",
        "case.response_rejected",
        "task.create",
        "visit.check_in",
        "visit.join",
        "visit.check_out",
        "task.done",
        "visit.rate",
    } <= actions
    # the outbox holds what outside systems are told (no webhook configured: pending)
    assert scalar(db_url, "SELECT count(*) FROM webhook_outbox WHERE event = 'case.opened'") == 1


def test_the_engine_opens_a_case_for_a_critical_exceedance(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    mn = "LOOP0002"
    h = _world(db_url, mn)
    settings = make_settings(db_url, mqtt_url, unique_topic, alert_clear_s=7200.0)
    with running_ingest(settings):
        _publish_hour(mqtt_url, unique_topic, mn, _previous_hour(), 90.0)  # 2.6 ×: critical
        wait_for(lambda: scalar(db_url, "SELECT count(*) FROM cases"), what="a case")
    with psycopg.connect(db_url) as conn:
        opened_by, state, due, alerts = conn.execute(
            """SELECT c.opened_by, c.state, c.response_due_at - c.opened_at,
                      array_agg(a.rule) FROM cases c JOIN case_alerts x ON x.case_id = c.id
               JOIN alerts a ON a.id = x.alert_id GROUP BY c.id"""
        ).fetchone()
    assert (opened_by, state) == ("engine", "discovered") and "exceedance" in alerts
    assert abs(due - timedelta(hours=settings.case_response_h)) < timedelta(minutes=1)
    with TestClient(create_app(settings, db_url)) as c:
        told = c.get("/api/cases/notifications", headers=h["ent"]).json()
        assert [n["kind"] for n in told] == ["case.opened"]

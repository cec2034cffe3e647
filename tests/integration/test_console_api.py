"""The console's read endpoints against a real database: data-capture rate, latest values
with flags, an enterprise's page, alert counts, CSV exports, the console's files — each
scoped like the resource routes (another enterprise's objects answer 404)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.integration.security_fixtures import MN1, MN2, api_client, build_world

pytestmark = pytest.mark.integration

DAY0 = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)


def _load(db_url: str) -> None:
    """A day of MN1 (interval 60 s) with every other minute missing and some minutes
    flagged maintenance, plus a fresher reading per pollutant."""
    rows = []
    for i in range(0, 1440, 2):
        ts = DAY0 + timedelta(minutes=i)
        flag = "M" if 600 <= i < 800 else "N"
        rows += [
            (ts, MN1, "a21026", "rtd", 10.0 + i % 7, flag),
            (ts, MN1, "a19001", "rtd", 8.0, "N"),
        ]
    last = DAY0 + timedelta(days=1, hours=1)
    rows += [
        (last, MN1, "a21026", "rtd", 70.0, "N"),
        (last, MN1, "a19001", "rtd", 9.0, "D"),
        (last, MN1, "a21026", "hour", 1.0, "N"),
    ]
    with psycopg.connect(db_url) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO readings (ts, mn, pollutant, kind, value, flag, "
                "received_at) VALUES (%s, %s, %s, %s, %s, %s, now())",
                rows,
            )
        conn.execute(
            """INSERT INTO device_status (mn, last_ts, last_received_at, readings)
                        VALUES (%s, %s, now(), %s)""",
            (MN1, last, len(rows)),
        )
        conn.execute(
            """INSERT INTO alerts (rule, mn, pollutant, severity, first_seen, last_seen,
                            message, state) VALUES ('spike', %s, 'a19001', 'critical', now(),
                            now(), '=cmd|'' /C calc''!A0', 'resolved')""",
            (MN1,),
        )


def test_capture_latest_and_enterprise_pages(db_url: str) -> None:
    w = build_world(db_url)
    _load(db_url)
    with api_client(db_url) as c:
        reg, ent1 = w.headers("regulator"), w.headers("enterprise")
        r = c.get(
            f"/api/devices/{MN1}/capture",
            headers=reg,
            params={"start": DAY0.isoformat(), "end": (DAY0 + timedelta(days=1)).isoformat()},
        )
        assert r.status_code == 200, r.text
        day = r.json()["days"]
        assert len(day) == 1 and day[0]["expected"] == 1440 and day[0]["received"] == 720
        assert day[0]["valid"] == 720  # a timestamp with any valid value counts as valid
        assert r.json()["capture_rate"] == 0.5

        d = c.get(f"/api/devices/{MN1}", headers=ent1).json()
        latest = {v["pollutant"]: v for v in d["latest"]}
        assert latest["a21026"]["value"] == 70.0 and latest["a21026"]["limit_value"] == 35.0
        assert latest["a19001"]["flag"] == "D" and latest["a19001"]["limit_value"] is None
        assert d["enterprise_id"] == "E1" and d["limits"] == {"a21026": 35.0}

        e = c.get("/api/enterprises/E1", headers=ent1).json()
        assert [p["id"] for p in e["points"]] == ["E1-P1"]
        assert sorted(x["mn"] for x in e["points"][0]["devices"]) == sorted([MN1, "3333CCCC"])

        # another enterprise's objects do not exist for an enterprise user
        for path in (
            "/api/enterprises/E2",
            f"/api/devices/{MN2}",
            f"/api/devices/{MN2}/capture",
            f"/api/export/devices/{MN2}/readings.csv",
            "/api/enterprises/NOPE",
        ):
            assert c.get(path, headers=ent1).status_code == 404, path
        assert (
            c.get(
                f"/api/devices/{MN1}/capture",
                headers=reg,
                params={"start": DAY0.isoformat(), "end": DAY0.isoformat()},
            ).status_code
            == 422
        )
        assert (
            c.get(
                f"/api/devices/{MN1}/capture", headers=reg, params={"start": "2026-01-01T00:00:00"}
            ).status_code
            == 422
        )  # no zone


def test_counts_facets_and_csv_exports_follow_the_callers_scope(db_url: str) -> None:
    w = build_world(db_url)
    _load(db_url)
    with api_client(db_url) as c:
        adm, ent1 = w.headers("admin"), w.headers("enterprise")
        assert c.get("/api/alert-counts", headers=adm).json() == {"open": 3, "resolved": 1}
        assert c.get("/api/alert-counts", headers=ent1).json() == {"open": 1, "resolved": 1}
        reg = w.headers("regulator")  # region R1: E1 and E3, not E2
        assert c.get("/api/alert-counts", headers=reg).json() == {"open": 2, "resolved": 1}
        assert c.get("/api/enterprises/E2", headers=reg).status_code == 404
        assert c.get("/api/enterprises/E3", headers=reg).status_code == 200
        assert c.get("/api/alert-counts", headers=adm, params={"pollutant": "a19001"}).json() == {
            "resolved": 1
        }
        assert c.get("/api/alert-facets", headers=ent1).json() == {
            "rule": ["exceedance", "spike"],
            "pollutant": ["a19001", "a21026"],
        }
        listed = c.get("/api/alerts", headers=adm, params={"pollutant": "a21026"}).json()
        assert {a["pollutant"] for a in listed} == {"a21026"} and len(listed) == 3

        r = c.get("/api/export/alerts.csv", headers=ent1)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert {x["enterprise_id"] for x in rows} == {"E1"} and len(rows) == 2
        assert next(x for x in rows if x["rule"] == "spike")["message"].startswith("'=cmd")
        assert (
            len(
                list(
                    csv.DictReader(
                        io.StringIO(
                            c.get(
                                "/api/export/alerts.csv", headers=adm, params={"state": "open"}
                            ).text
                        )
                    )
                )
            )
            == 3
        )

        raw = c.get(
            f"/api/export/devices/{MN1}/readings.csv",
            headers=ent1,
            params={
                "start": DAY0.isoformat(),
                "end": (DAY0 + timedelta(hours=1)).isoformat(),
                "pollutant": "a21026",
            },
        )
        got = list(csv.DictReader(io.StringIO(raw.text)))
        assert len(got) == 30 and got[0]["ts"] == DAY0.isoformat() and got[0]["flag"] == "N"
        bucketed = c.get(
            f"/api/export/devices/{MN1}/readings.csv",
            headers=ent1,
            params={
                "start": DAY0.isoformat(),
                "end": (DAY0 + timedelta(days=1)).isoformat(),
                "pollutant": "a21026",
                "bucket": 5400,
            },
        )  # 1.5 h: from raw rows, not a rollup
        got = list(csv.DictReader(io.StringIO(bucketed.text)))
        assert [int(g["count"]) for g in got] == [45] * 16
        assert list(got[0]) == ["bucket", "pollutant", "avg", "min", "max", "count"]

        # inspectors export only their own visits, whatever they ask for
        insp = w.headers("inspector")
        mine = list(csv.DictReader(io.StringIO(c.get("/api/export/visits.csv", headers=insp).text)))
        assert [v["inspector_id"] for v in mine] == ["insp"]
        assert (
            c.get("/api/export/visits.csv", headers=insp, params={"inspector": "insp2"}).text.count(
                "\n"
            )
            == 1
        )  # header only


def test_console_files_are_served_and_nothing_else(db_url: str) -> None:
    with api_client(db_url) as c:
        r = c.get("/static/console/app.js")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
        assert c.get("/static/vendor/uplot/uPlot.iife.min.js").status_code == 200
        assert c.get("/static/vendor/uplot/LICENSE").status_code == 200
        for bad in (
            "/static/index.html",
            "/static/console/../../app.py",
            "/static/console/%2e%2e/%2e%2e/app.py",
            "/static/console/nope.js",
            "/static/console/",
        ):
            assert c.get(bad).status_code == 404, bad
        page = c.get("/")
        assert page.status_code == 200 and "/static/console/app.js" in page.text


def test_unseen_criticals_stay_until_acknowledged_and_the_overview_is_scoped(db_url: str) -> None:
    w = build_world(db_url)
    with psycopg.connect(db_url) as conn:
        ids = [
            conn.execute(
                """INSERT INTO alerts (rule, mn, pollutant, severity, first_seen, last_seen,
                   message, state, closed_by, closed_at, acknowledged_by, acknowledged_at)
                   VALUES ('spike', %s, 'a21002', 'critical', now(), now(), 'x', %s,
                           %s, %s, %s, %s) RETURNING id""",
                (mn, state, closer, None if closer is None else datetime.now(UTC), ack, when),
            ).fetchone()[0]
            for mn, state, closer, ack, when in (
                (MN1, "open", None, None, None),  # nobody has seen it
                (MN2, "cleared", "engine", None, None),  # the engine cleared it unseen
                (MN1, "cleared", "engine", "reg", datetime.now(UTC)),  # seen, then cleared
            )
        ]
    with api_client(db_url) as c:
        adm, ent1 = w.headers("admin"), w.headers("enterprise")
        unseen = c.get("/api/alert-unseen", headers=adm).json()
        assert unseen["count"] == 2 and {a["id"] for a in unseen["alerts"]} == set(ids[:2])
        assert c.get("/api/alert-unseen", headers=ent1).json()["count"] == 1  # E1 only
        # acknowledging the cleared one records who saw it; it stays cleared
        r = c.post(f"/api/alerts/{ids[1]}/acknowledge", headers=adm, json={})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "cleared" and r.json()["acknowledged_by"]
        assert c.get("/api/alert-unseen", headers=adm).json()["count"] == 1
        assert c.post(f"/api/alerts/{ids[1]}/acknowledge", headers=adm, json={}).status_code == 409
        assert [e["kind"] for e in c.get(f"/api/alerts/{ids[1]}", headers=adm).json()["events"]][
            -1
        ] == "acknowledged"

        o = c.get("/api/overview", headers=w.headers("regulator")).json()  # region R1
        assert {s["key"] for s in o["sites"]} <= {"E1", "E3"}
        assert {d["enterprise_id"] for d in o["devices"]} <= {"E1", "E3"}
        assert {d["status"] for d in o["devices"]} <= {"online", "offline", "never", "revoked"}
        e1 = next(s for s in o["sites"] if s["key"] == "E1")
        assert e1["alerts"]["critical"] == 1 and e1["alerts"]["major"] >= 1
        assert o["unseen_count"] == 1 and o["day_start"].endswith("+08:00")


def test_scan_preview_names_the_site_and_what_the_inspector_may_check_in_for(
    db_url: str,
) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:
        qr = c.get("/api/enterprises/E1/qr.svg", headers=w.headers("admin"))
        token = qr.headers["x-offsite-scan-url"]
        case = c.post(
            "/api/cases", headers=w.headers("admin"), json={"alert_ids": [w.alerts["E1"]]}
        ).json()
        task = c.post(
            f"/api/cases/{case['id']}/tasks",
            headers=w.headers("admin"),
            json={"assignee": "insp", "reason": "check the probe"},
        ).json()
        insp = w.headers("inspector", "insp")
        p = c.post("/api/visits/scan", headers=insp, json={"token": token}).json()
        assert p["enterprise_id"] == "E1" and p["enterprise_name"]
        assert [t["id"] for t in p["my_tasks"]] == [task["id"]]
        assert [x["id"] for x in p["open_cases"]] == [case["id"]]
        assert w.visits["E1"] in {v["id"] for v in p["open_visits"]}
        assert set(p["guard"]) == {
            "recent_visits",
            "max_visits",
            "days",
            "no_disturbance",
            "needs_reason",
        }
        # nothing was recorded: no visit, no refusal
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT count(*) FROM visits").fetchone()[0] == 2
        bad = c.post("/api/visits/scan", headers=insp, json={"token": token[:-4] + "AAAA"})
        assert bad.status_code in (400, 401)

"""The HTTP side of the outside probe's findings, each as it was found: ratings leaked to
inspectors, tasks shown to enterprises before the visit, a reactivating PUT, a chatty
/healthz, API keys that never expire, tasks for inspectors of another region, 500s on
values nothing can hold, attachments served as uploaded, and no attachment quota."""

from __future__ import annotations

import base64
import csv
import io
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from offsite.core.settings import load_settings
from offsite.store.users import issue_token
from tests.integration.security_fixtures import World, api_client, build_world
from tests.integration.test_api_live import serving

pytestmark = pytest.mark.integration


def _scan(c: TestClient, w: World, enterprise: str = "E1") -> str:
    r = c.get(f"/api/enterprises/{enterprise}/qr.svg", headers=w.headers("admin"))
    assert r.status_code == 200
    return r.headers["x-offsite-scan-url"]


def _case(c: TestClient, w: World, enterprise: str = "E1") -> int:
    r = c.post("/api/cases", headers=w.headers("admin"), json={"alert_ids": [w.alerts[enterprise]]})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


# -- leaks ---------------------------------------------------------------------------------
def test_inspectors_never_see_ratings_anywhere_on_the_visits_surface(db_url: str) -> None:
    w = build_world(db_url)
    v1 = w.visits["E1"]  # insp's visit
    with api_client(db_url) as c:
        r = c.post(
            f"/api/visits/{v1}/rating",
            headers=w.headers("enterprise"),
            json={"rating": 1, "comment": "rude and late"},
        )
        assert r.status_code == 204
        insp = w.headers("inspector")
        text = c.get("/api/export/visits.csv", headers=insp).text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [int(r["id"]) for r in rows] == [v1]
        assert not {"rating", "rating_comment", "rated_at"} & set(rows[0])
        assert "rude and late" not in text
        for body in (
            c.get("/api/visits", headers=insp).json()[0],
            c.get(f"/api/visits/{v1}", headers=insp).json(),
        ):
            assert body["rating"] is None and body["rating_comment"] is None
        assert c.get(f"/api/reports/E1/{_month()}", headers=insp).status_code == 403
        # the regulator and the enterprise still see it
        reg = c.get("/api/export/visits.csv", headers=w.headers("regulator")).text
        assert "rude and late" in reg


def test_an_enterprise_sees_an_inspection_task_only_after_the_visit(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:
        case = _case(c, w)
        adm, ent = w.headers("admin"), w.headers("enterprise")
        r = c.post(
            f"/api/cases/{case}/tasks",
            headers=adm,
            json={"assignee": "insp", "reason": "suspect dilution", "due_hours": 24},
        )
        assert r.status_code == 201
        task = r.json()["id"]
        before = c.get(f"/api/cases/{case}", headers=ent).json()
        assert before["tasks"] == []
        assert "insp" not in str(before["steps"]) and "dilution" not in str(before["steps"])
        # staff see it all
        staff = c.get(f"/api/cases/{case}", headers=adm).json()
        assert [t["id"] for t in staff["tasks"]] == [task]
        assert any(s["kind"] == "task" for s in staff["steps"])
        # the enterprise's own response does not show it either
        r = c.post(f"/api/cases/{case}/responses", headers=ent, json={"explanation": "fine"})
        assert r.status_code == 201 and r.json()["tasks"] == []

        insp = w.headers("inspector")
        r = c.post(
            "/api/visits/check-in",
            headers=insp,
            json={"token": _scan(c, w), "purpose": "task", "task_id": task},
        )
        assert r.status_code == 201, r.text
        visit = r.json()["id"]
        assert (
            c.post(
                f"/api/visits/{visit}/check-out", headers=insp, json={"findings": "probe clean"}
            ).status_code
            == 200
        )
        after = c.get(f"/api/cases/{case}", headers=ent).json()
        assert [t["id"] for t in after["tasks"]] == [task]
        assert after["tasks"][0]["state"] == "done"
        assert any(s["kind"] == "task" for s in after["steps"])


# -- small holes ---------------------------------------------------------------------------
def test_saving_a_deactivated_user_does_not_reactivate_it(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:
        adm = w.headers("admin")
        assert c.post("/api/users/victim/deactivate", headers=adm).status_code == 204
        r = c.put("/api/users", headers=adm, json={"id": "victim", "role": "regulator"})
        assert r.status_code == 200 and r.json()["active"] is False
        assert r.json()["role"] == "regulator"
        r = c.put(
            "/api/users", headers=adm, json={"id": "victim", "role": "regulator", "active": True}
        )
        assert r.json()["active"] is True
        key = c.post("/api/users/victim/api-keys", headers=adm).json()["token"]
        me = {"Authorization": f"Bearer {key}"}
        assert c.get("/auth/me", headers=me).status_code == 200
        r = c.put(
            "/api/users", headers=adm, json={"id": "victim", "role": "regulator", "active": False}
        )
        assert r.json()["active"] is False
        assert c.get("/auth/me", headers=me).status_code == 401  # its tokens went with it


def test_api_keys_expire(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url, api_key_ttl_days=30) as c:
        r = c.post("/api/users/victim/api-keys", headers=w.headers("admin"))
        assert r.status_code == 201
        key, expires = r.json()["token"], r.json()["expires_at"]
        with psycopg.connect(db_url) as conn:
            days = conn.execute(
                "SELECT extract(epoch FROM expires_at - now()) / 86400 FROM api_tokens "
                "WHERE kind = 'api_key' AND user_id = 'victim'"
            ).fetchone()
            assert days is not None and 29.9 < float(days[0]) <= 30
            assert expires.startswith(
                str(conn.execute("SELECT (now() + interval '30 days')::date").fetchone()[0])
            )  # type: ignore[index]
            me = {"Authorization": f"Bearer {key}"}
            assert c.get("/auth/me", headers=me).status_code == 200
            conn.execute(
                "UPDATE api_tokens SET expires_at = now() - interval '1 second' "
                "WHERE user_id = 'victim'"
            )
            conn.commit()
            assert c.get("/auth/me", headers=me).status_code == 401
            # the store refuses an API key without an expiry
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(
                    "INSERT INTO api_tokens (token_sha256, user_id, kind) "
                    "VALUES (sha256('x'), 'victim', 'api_key')"
                )


def test_anonymous_healthz_names_no_host_or_pid(db_url: str) -> None:
    w = build_world(db_url)
    with psycopg.connect(db_url) as conn:
        conn.execute(
            """INSERT INTO ingest_workers (worker, host, pid, started_at, heartbeat_at,
                   broker_connected, inbox, lag_s, messages, readings_stored, dead_letters,
                   db_errors) VALUES ('ingest@plant-host-7', 'plant-host-7', 4242, now(),
                   now(), true, 0, 0, 0, 0, 0, 0)"""
        )
        conn.commit()
    with api_client(db_url) as c:
        anonymous = c.get("/healthz")
        assert anonymous.status_code == 200
        assert "plant-host-7" not in anonymous.text and "4242" not in anonymous.text
        assert anonymous.json()["ingest"][0]["state"] == "ok"
        for role in ("regulator", "enterprise"):
            assert "plant-host-7" not in c.get("/healthz", headers=w.headers(role)).text
        (worker,) = c.get("/healthz", headers=w.headers("admin")).json()["ingest"]
        assert worker["host"] == "plant-host-7" and worker["pid"] == 4242


def test_a_task_goes_only_to_an_inspector_of_the_sites_region(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:
        case = _case(c, w)  # E1 is in R1/City
        adm = w.headers("admin")
        r = c.post(
            f"/api/cases/{case}/tasks", headers=adm, json={"assignee": "insp2", "reason": "x"}
        )
        assert r.status_code == 422 and "region" in r.json()["detail"]  # insp2 covers R2
        r = c.post(
            f"/api/cases/{case}/tasks", headers=adm, json={"assignee": "insp", "reason": "x"}
        )
        assert r.status_code == 201  # insp covers every region
        inv = c.post("/api/invitations", headers=w.headers("enterprise"), json={"scope": "CEMS"})
        r = c.post(
            f"/api/invitations/{inv.json()['id']}/schedule", headers=adm, json={"assignee": "insp2"}
        )
        assert r.status_code == 422


def test_checking_out_of_someone_elses_visit_is_not_found(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:
        # 'victim' is an inspector of every region, but not of insp's visit
        r = c.post(
            f"/api/visits/{w.visits['E1']}/check-out",
            headers=w.headers("inspector", "victim"),
            json={"findings": "x"},
        )
        assert r.status_code == 404
        r = c.post(
            "/api/visits/check-in",
            headers=w.headers("inspector"),
            json={"token": _scan(c, w), "purpose": "x", "alert_id": w.alerts["E2"]},
        )
        assert r.status_code == 422 and "another enterprise" not in r.text


# -- bad JSON values -----------------------------------------------------------------------
BAD_VALUES = {"surrogate": '"\\ud800"', "nan": "NaN", "overflow": "1e999", "nul": '"a\\u0000"'}


def _json_operations(app: Any) -> list[tuple[str, str, str]]:
    """(method, path with ids filled in, a field of its body) for every JSON route."""
    doc = app.openapi()
    schemas = doc["components"]["schemas"]
    out = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            schema = content["application/json"]["schema"]
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
            field = sorted(schema["properties"])[0]
            filled = path.replace("{enterprise_id}", "E1").replace("{mn}", "1111AAAA")
            for name in ("alert_id", "visit_id", "case_id", "response_id", "invitation_id"):
                filled = filled.replace("{" + name + "}", "1")
            out.append((method.upper(), filled, field))
    return out


def test_values_nothing_can_hold_answer_422_with_the_field_on_every_json_route(
    db_url: str,
) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:
        ops = _json_operations(c.app)
        assert len(ops) >= 20  # the walk found the routes
        headers = {**w.headers("admin"), "content-type": "application/json"}
        failures = []
        for method, path, field in ops:
            for name, raw in BAD_VALUES.items():
                r = c.request(method, path, headers=headers, content=f'{{"{field}": {raw}}}')
                detail = r.json().get("detail") if r.status_code == 422 else None
                if not (isinstance(detail, list) and detail[0]["loc"] == ["body", field]):
                    failures.append(f"{method} {path} {name}: {r.status_code} {r.text[:100]}")
        assert not failures, "\n".join(failures)
    with psycopg.connect(db_url) as conn:  # nothing was written by any of them
        assert conn.execute("SELECT count(*) FROM cases").fetchone() == (0,)


# -- attachments ---------------------------------------------------------------------------
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _respond(c: TestClient, w: World, case: int, files: list[tuple[str, str, bytes]]) -> Any:
    return c.post(
        f"/api/cases/{case}/responses",
        headers=w.headers("enterprise"),
        json={
            "explanation": "see attached",
            "attachments": [
                {"filename": n, "content_type": t, "content_base64": base64.b64encode(b).decode()}
                for n, t, b in files
            ],
        },
    )


def test_attachments_are_served_as_downloads_of_a_proven_type(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:
        case = _case(c, w)
        r = _respond(
            c,
            w,
            case,
            [
                ("x.png", "image/png", b"<html><script>alert(1)</script>"),
                ("ok.png", "image/png", PNG),
                ("page.html", "text/html", b"<script>alert(1)</script>"),
                ("r.pdf", "application/pdf", b"%PDF-1.7\n"),
            ],
        )
        assert r.status_code == 201, r.text
        atts = r.json()["responses"][0]["attachments"]
        served = {}
        for a in atts:
            got = c.get(f"/api/cases/{case}/attachments/{a['id']}", headers=w.headers("admin"))
            assert got.headers["content-disposition"].startswith("attachment;")
            assert got.headers["x-content-type-options"] == "nosniff"
            assert "sandbox" in got.headers["content-security-policy"]
            served[a["filename"]] = got.headers["content-type"]
        assert served == {
            "x.png": "application/octet-stream",
            "ok.png": "image/png",
            "page.html": "application/octet-stream",
            "r.pdf": "application/pdf",
        }


def test_attachment_quotas_per_case_and_per_enterprise(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(
        db_url, attachment_case_max_bytes=3000, attachment_enterprise_max_bytes=4000
    ) as c:
        one, two = _case(c, w), None
        assert _respond(c, w, one, [("a", "text/plain", b"a" * 2000)]).status_code == 201
        r = _respond(c, w, one, [("b", "text/plain", b"b" * 1500)])
        assert r.status_code == 409 and f"case {one}" in r.json()["detail"]
        assert "OFFSITE_ATTACHMENT_CASE_MAX_BYTES" in r.json()["detail"]
        # a reply without files is still welcome
        assert _respond(c, w, one, []).status_code == 201
        with psycopg.connect(db_url) as conn:
            row = conn.execute(
                """INSERT INTO alerts (rule, mn, pollutant, severity, first_seen, last_seen,
                       message) VALUES ('exceedance', '3333CCCC', 'a21026', 'major', now(),
                       now(), 'again') RETURNING id"""
            ).fetchone()
            conn.commit()
        assert row is not None
        r = c.post("/api/cases", headers=w.headers("admin"), json={"alert_ids": [row[0]]})
        two = r.json()["id"]
        assert _respond(c, w, two, [("c", "text/plain", b"c" * 1500)]).status_code == 201
        r = _respond(c, w, two, [("d", "text/plain", b"d" * 600)])  # case 2100, E1 4100
        assert r.status_code == 409 and "enterprise E1" in r.json()["detail"]


# -- the live feed ends with its session ----------------------------------------------------
def _stream_until_end(url: str, token: str, act: Any) -> list[str]:
    """Open the feed with ``token``, run ``act`` once it is open, return every line the
    stream sent until it closed (the read timeout only stops a broken test)."""
    lines: list[str] = []
    opened = threading.Event()

    def later() -> None:
        opened.wait(10)
        act()

    helper = threading.Thread(target=later)
    helper.start()
    try:
        with httpx.stream(
            "GET",
            f"{url}/api/alerts/stream",
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(10.0, read=20.0),
        ) as r:
            assert r.status_code == 200
            give_up = time.monotonic() + 30  # a stream that never ends fails, not hangs
            for line in r.iter_lines():
                lines.append(line)
                opened.set()
                if time.monotonic() > give_up:
                    break
    finally:
        opened.set()
        helper.join(10)
    return lines


@pytest.fixture
def live_api(db_url: str) -> Iterator[tuple[World, str]]:
    w = build_world(db_url)
    settings = load_settings(
        database_url=db_url, mqtt_url="mqtt://127.0.0.1:1", qr_secret="q" * 40, feed_recheck_s=0.3
    )
    with serving(settings, db_url) as url:
        yield w, url


def test_the_feed_ends_at_logout(live_api: tuple[World, str]) -> None:
    w, url = live_api
    token = w.token("enterprise")
    lines = _stream_until_end(
        url,
        token,
        lambda: httpx.post(f"{url}/auth/logout", headers={"Authorization": f"Bearer {token}"}),
    )
    assert "event: end" in lines


def test_the_feed_ends_at_deactivation(live_api: tuple[World, str]) -> None:
    w, url = live_api
    token = w.token("inspector", "victim")
    lines = _stream_until_end(
        url,
        token,
        lambda: httpx.post(f"{url}/api/users/victim/deactivate", headers=w.headers("admin")),
    )
    assert "event: end" in lines


def test_the_feed_ends_when_its_token_expires(live_api: tuple[World, str]) -> None:
    w, url = live_api
    with psycopg.connect(w.db_url) as conn:
        token = issue_token(conn, "ent1", kind="session", ttl=timedelta(seconds=2))
    lines = _stream_until_end(url, token, lambda: None)
    assert "event: end" in lines
    assert (
        httpx.get(f"{url}/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )


def test_the_feed_ends_before_delivering_an_event_after_logout(db_url: str) -> None:
    """Even between periodic checks: an event is not sent on a token that no longer holds."""
    w = build_world(db_url)
    settings = load_settings(
        database_url=db_url, mqtt_url="mqtt://127.0.0.1:1", qr_secret="q" * 40, feed_recheck_s=300
    )
    token = w.token("admin")

    def logout_then_alert() -> None:
        with psycopg.connect(db_url) as conn:
            conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE user_id = 'adm'")
            conn.execute("SELECT pg_sleep(1.1)")  # past the per-event re-check interval
            conn.execute(
                "INSERT INTO alert_events (alert_id, kind) VALUES (%s, 'updated')",
                (w.alerts["E1"],),
            )
            conn.commit()
            # the feed hears of events by NOTIFY, as the rule runner sends it
            from offsite.store.alerts import NOTIFY_CHANNEL

            eid = conn.execute("SELECT max(id) FROM alert_events").fetchone()
            assert eid is not None
            conn.execute(f"NOTIFY {NOTIFY_CHANNEL}, '{eid[0]}'")
            conn.commit()

    with serving(settings, db_url) as url:
        lines = _stream_until_end(url, token, logout_then_alert)
    assert "event: end" in lines
    assert "event: alert" not in lines


def _month() -> str:
    return time.strftime("%Y-%m", time.gmtime())

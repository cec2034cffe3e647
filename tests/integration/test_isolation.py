"""Enterprise A never sees B's data — through lists, filters, details, readings, QR codes,
visits or the live SSE feed — and a regulator sees only their region."""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg
import pytest

from offsite.api.routes import alerts as alert_routes
from tests.integration.security_fixtures import MN1, MN2, MN4, api_client, build_world

pytestmark = pytest.mark.integration


def _ids(rows: list[dict[str, Any]], key: str = "enterprise_id") -> set[str]:
    return {r[key] for r in rows}


def test_enterprise_sees_only_its_own_data_through_every_read(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:
        h = w.headers("enterprise")  # ent1 → E1
        assert _ids(c.get("/api/alerts", headers=h).json()) == {"E1"}
        # asking for B by filter gives nothing, not B's data
        for path, params in (
            ("/api/alerts", {"enterprise": "E2"}),
            ("/api/alerts", {"mn": MN2}),
            ("/api/devices", {"enterprise": "E2"}),
            ("/api/visits", {"enterprise": "E2"}),
        ):
            r = c.get(path, params=params, headers=h)
            assert r.status_code == 200 and r.json() == [], (path, params)
        assert _ids(c.get("/api/devices", headers=h).json()) == {"E1"}
        assert _ids(c.get("/api/enterprises", headers=h).json(), "id") == {"E1"}
        assert _ids(c.get("/api/visits", headers=h).json()) == {"E1"}
        # B's objects do not exist for A
        for path in (
            f"/api/alerts/{w.alerts['E2']}",
            f"/api/visits/{w.visits['E2']}",
            f"/api/devices/{MN2}/readings",
            "/api/enterprises/E2/qr.svg",
        ):
            r = c.get(path, headers=h)
            assert r.status_code == 404, path
            # exactly what a caller gets for something that does not exist at all
            assert set(r.json()) == {"detail"} and r.json()["detail"].endswith("not found")
        assert (
            c.post(
                f"/api/visits/{w.visits['E2']}/rating", headers=h, json={"rating": 1}
            ).status_code
            == 404
        )
        # its own are there
        assert c.get(f"/api/alerts/{w.alerts['E1']}", headers=h).status_code == 200
        assert c.get(f"/api/devices/{MN1}/readings", headers=h).status_code == 200
        assert (
            c.post(
                f"/api/visits/{w.visits['E1']}/rating",
                headers=h,
                json={"rating": 5, "comment": "polite"},
            ).status_code
            == 204
        )


def test_regulator_sees_their_region_and_sub_regions_only(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:
        h = w.headers("regulator")  # reg → R1: E1 (R1/City) and E3 (R1), not E2 (R2)
        assert _ids(c.get("/api/alerts", headers=h).json()) == {"E1", "E3"}
        assert _ids(c.get("/api/enterprises", headers=h).json(), "id") == {"E1", "E3"}
        assert c.get(f"/api/devices/{MN4}/readings", headers=h).status_code == 200
        assert c.get(f"/api/devices/{MN2}/readings", headers=h).status_code == 404
        assert (
            c.post(f"/api/alerts/{w.alerts['E2']}/acknowledge", headers=h, json={}).status_code
            == 404
        )
        assert (
            c.post(f"/api/alerts/{w.alerts['E3']}/acknowledge", headers=h, json={}).status_code
            == 200
        )
        assert c.post("/api/enterprises/E2/qr/revoke", headers=h).status_code == 404


def test_inspector_sees_only_their_own_visits(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:
        h = w.headers("inspector")  # insp made E1's visit; insp2 made E2's
        assert [v["id"] for v in c.get("/api/visits", headers=h).json()] == [w.visits["E1"]]
        assert c.get("/api/visits", params={"inspector": "insp2"}, headers=h).json() == []
        assert c.get(f"/api/visits/{w.visits['E2']}", headers=h).status_code == 404


def _read_stream(
    client: Any, headers: dict[str, str], params: dict[str, Any], want: int
) -> list[dict[str, Any]]:
    """Events from the SSE stream until ``want`` arrived or the replay is over and a few
    heartbeats passed (nothing more is coming)."""
    out: list[dict[str, Any]] = []
    beats = 0
    event = ""
    with client.stream("GET", "/api/alerts/stream", headers=headers, params=params) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "alert":  # not ready / end
                out.append(json.loads(line[6:]))
                if len(out) >= want:
                    break
            elif line.startswith(": keep-alive"):
                beats += 1
                if beats >= 3:
                    break
    return out


def test_sse_feed_carries_only_the_callers_enterprises(db_url: str, monkeypatch) -> None:
    monkeypatch.setattr(alert_routes, "HEARTBEAT_S", 0.2)
    w = build_world(db_url)
    with api_client(db_url) as c:
        ent = w.headers("enterprise")
        replayed = _read_stream(c, ent, {"after": 0}, want=99)
        assert {e["enterprise_id"] for e in replayed} == {"E1"}
        assert {e["id"] for e in replayed} == {w.alerts["E1"]}
        admin_seen = _read_stream(c, w.headers("admin"), {"after": 0}, want=99)
        assert {e["enterprise_id"] for e in admin_seen} == {"E1", "E2", "E3"}

        # live: B's event is published first, then A's; A's stream carries only its own
        def later() -> None:
            with psycopg.connect(db_url) as conn:
                for e in ("E2", "E1"):
                    eid = conn.execute(
                        "INSERT INTO alert_events (alert_id, kind, actor) "
                        "VALUES (%s, 'updated', 'live') RETURNING id",
                        (w.alerts[e],),
                    ).fetchone()
                    conn.execute("SELECT pg_notify('offsite_alert_events', %s)", (str(eid[0]),))  # type: ignore[index]
                    conn.commit()

        timer = threading.Timer(0.5, later)
        timer.start()
        last = max(e["event_id"] for e in admin_seen)
        live = _read_stream(c, ent, {"after": last}, want=1)
        timer.join()
        assert [(e["enterprise_id"], e["actor"]) for e in live] == [("E1", "live")]

"""Every route of the app, called by every role and by nobody, against a declared table.

A route missing from ``ACCESS`` (a new route nobody thought about) fails the test, as does
a table entry without a route; a role outside a route's set must get 403, nobody 401.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from offsite.api.auth import all_routes, require_declared
from offsite.api.routes import alerts as alert_routes
from offsite.api.routes import console as console_routes
from tests.integration.security_fixtures import (
    MN1,
    MN3,
    PASSWORD,
    ROLES,
    World,
    api_client,
    build_world,
    unique_mn,
)

pytestmark = pytest.mark.integration

PUBLIC = "public"
EVERYONE = frozenset(ROLES)
STAFF = frozenset({"admin", "regulator"})
ADMIN = frozenset({"admin"})

# (method, path) → who may call it. The one place a reviewer reads to know who can do what.
ACCESS: dict[tuple[str, str], frozenset[str] | str] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/scan"): PUBLIC,
    ("GET", "/console"): PUBLIC,
    ("GET", "/favicon.ico"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("POST", "/auth/login"): PUBLIC,
    ("POST", "/auth/logout"): EVERYONE,
    ("GET", "/auth/me"): EVERYONE,
    ("GET", "/api/alerts"): EVERYONE,
    ("GET", "/api/alerts/stream"): EVERYONE,
    ("GET", "/api/devices/{mn}/stream"): EVERYONE,
    ("PUT", "/auth/me/language"): EVERYONE,
    ("GET", "/api/visits/{visit_id}/photos/{photo_id}"): EVERYONE,
    ("GET", "/api/alerts/{alert_id}"): EVERYONE,
    ("POST", "/api/alerts/{alert_id}/acknowledge"): STAFF,
    ("POST", "/api/alerts/{alert_id}/resolve"): STAFF,
    ("POST", "/api/alerts/{alert_id}/assign"): STAFF,
    ("POST", "/api/alerts/{alert_id}/reopen"): STAFF,
    ("POST", "/api/alerts/{alert_id}/comments"): EVERYONE,
    ("GET", "/api/devices"): EVERYONE,
    ("GET", "/api/devices/{mn}/readings"): EVERYONE,
    ("POST", "/api/devices"): ADMIN,
    ("POST", "/api/devices/{mn}/revoke"): ADMIN,
    ("GET", "/api/enterprises"): EVERYONE,
    ("GET", "/api/enterprises/{enterprise_id}/qr.{kind}"): frozenset(
        {"admin", "regulator", "enterprise"}
    ),
    ("POST", "/api/enterprises/{enterprise_id}/qr/revoke"): STAFF,
    ("POST", "/api/visits/check-in"): frozenset({"inspector"}),
    ("POST", "/api/visits/scan"): frozenset({"inspector"}),
    ("POST", "/api/visits/{visit_id}/check-out"): frozenset({"inspector"}),
    ("GET", "/api/visits"): EVERYONE,
    ("GET", "/api/visits/{visit_id}"): EVERYONE,
    ("POST", "/api/visits/{visit_id}/rating"): frozenset({"enterprise"}),
    ("GET", "/api/cases"): EVERYONE,
    ("POST", "/api/cases"): STAFF,
    ("GET", "/api/cases/notifications"): EVERYONE,
    ("GET", "/api/cases/{case_id}"): EVERYONE,
    ("POST", "/api/cases/{case_id}/move"): STAFF,
    ("POST", "/api/cases/{case_id}/responses"): frozenset({"enterprise"}),
    ("POST", "/api/cases/{case_id}/responses/{response_id}/verdict"): STAFF,
    ("GET", "/api/cases/{case_id}/attachments/{attachment_id}"): EVERYONE,
    ("POST", "/api/cases/{case_id}/tasks"): STAFF,
    ("GET", "/api/tasks"): frozenset({"admin", "regulator", "inspector"}),
    ("GET", "/api/tasks/{task_id}"): frozenset({"admin", "regulator", "inspector"}),
    ("POST", "/api/invitations"): frozenset({"enterprise"}),
    ("GET", "/api/invitations"): EVERYONE,
    ("POST", "/api/invitations/{invitation_id}/schedule"): STAFF,
    ("GET", "/api/reports/page"): PUBLIC,
    ("GET", "/api/reports/{enterprise_id}/{month}"): frozenset(
        {"admin", "regulator", "enterprise"}
    ),
    ("GET", "/api/reports/{enterprise_id}/{month}/csv"): frozenset(
        {"admin", "regulator", "enterprise"}
    ),
    ("GET", "/api/visits/guard/no-disturbance"): EVERYONE,
    ("PUT", "/api/visits/guard/no-disturbance/{enterprise_id}"): STAFF,
    ("DELETE", "/api/visits/guard/no-disturbance/{enterprise_id}"): STAFF,
    ("GET", "/api/visits/guard/refusals"): STAFF,
    ("GET", "/api/users"): ADMIN,
    ("GET", "/api/users/assignable"): STAFF,
    ("PUT", "/api/users"): ADMIN,
    # the console's files and read endpoints (api/routes/console.py)
    ("GET", "/static/{path:path}"): PUBLIC,
    ("GET", "/api/alert-counts"): EVERYONE,
    ("GET", "/api/alert-facets"): EVERYONE,
    ("GET", "/api/alert-unseen"): EVERYONE,
    ("GET", "/api/overview"): EVERYONE,
    ("GET", "/api/devices/{mn}"): EVERYONE,
    ("GET", "/api/devices/{mn}/capture"): EVERYONE,
    ("GET", "/api/enterprises/{enterprise_id}"): EVERYONE,
    ("GET", "/api/export/alerts.csv"): EVERYONE,
    ("GET", "/api/export/visits.csv"): EVERYONE,
    ("GET", "/api/export/devices/{mn}/readings.csv"): EVERYONE,
    ("POST", "/api/users/{user_id}/api-keys"): ADMIN,
    ("POST", "/api/users/{user_id}/deactivate"): ADMIN,
}


def _routes(app: FastAPI) -> set[tuple[str, str]]:
    out = set()
    for r in all_routes(app.routes):
        for m in getattr(r, "methods", None) or ():
            if m != "HEAD":
                out.add((m, r.path))  # type: ignore[attr-defined]
    return out


def _requests(w: World, client: Any) -> dict[tuple[str, str], Callable[[dict], Any]]:
    """How to call each route so that an allowed caller gets past authorisation: objects
    every role may see (E1's, the inspector's own visit), bodies that validate."""
    qr = client.get("/api/enterprises/E1/qr.svg", headers=w.headers("admin"))
    scan = qr.headers["x-offsite-scan-url"]
    a1, v1 = w.alerts["E1"], w.visits["E1"]

    # the closed loop's objects, all of E1 (which every role may see)
    adm = w.headers("admin")
    case = client.post("/api/cases", headers=adm, json={"alert_ids": [a1]}).json()
    c1 = case["id"]
    resp = client.post(
        f"/api/cases/{c1}/responses",
        headers=w.headers("enterprise"),
        json={
            "explanation": "a probe was cleaned",
            "attachments": [{"filename": "log.txt", "content_base64": "aGVsbG8="}],
        },
    ).json()
    r1 = resp["responses"][0]["id"]
    att1 = resp["responses"][0]["attachments"][0]["id"]
    t1 = client.post(
        f"/api/cases/{c1}/tasks", headers=adm, json={"assignee": "insp", "reason": "see the probe"}
    ).json()["id"]
    inv1 = client.post(
        "/api/invitations", headers=w.headers("enterprise"), json={"scope": "CEMS setup"}
    ).json()["id"]
    month = time.strftime("%Y-%m", time.gmtime())

    def stream(h: dict, url: str = "/api/alerts/stream") -> Any:
        with client.stream("GET", url, headers=h) as resp:
            return resp

    return {
        ("GET", "/openapi.json"): lambda h: client.get("/openapi.json", headers=h),
        ("GET", "/docs"): lambda h: client.get("/docs", headers=h),
        ("GET", "/docs/oauth2-redirect"): lambda h: client.get("/docs/oauth2-redirect", headers=h),
        ("GET", "/redoc"): lambda h: client.get("/redoc", headers=h),
        ("GET", "/"): lambda h: client.get("/", headers=h),
        ("GET", "/scan"): lambda h: client.get("/scan", headers=h),
        ("GET", "/console"): lambda h: client.get("/console", headers=h, follow_redirects=False),
        ("GET", "/favicon.ico"): lambda h: client.get(
            "/favicon.ico", headers=h, follow_redirects=False
        ),
        ("GET", "/healthz"): lambda h: client.get("/healthz", headers=h),
        ("GET", "/metrics"): lambda h: client.get("/metrics", headers=h),
        ("POST", "/auth/login"): lambda h: client.post(
            "/auth/login", headers=h, json={"username": "adm", "password": PASSWORD}
        ),
        ("POST", "/auth/logout"): lambda h: client.post("/auth/logout", headers=h),
        ("GET", "/auth/me"): lambda h: client.get("/auth/me", headers=h),
        ("PUT", "/auth/me/language"): lambda h: client.put(
            "/auth/me/language", headers=h, json={"lang": None}
        ),
        ("GET", "/api/devices/{mn}/stream"): lambda h: stream(h, f"/api/devices/{MN1}/stream"),
        ("GET", "/api/visits/{visit_id}/photos/{photo_id}"): lambda h: client.get(
            f"/api/visits/{v1}/photos/999999", headers=h
        ),
        ("GET", "/api/alerts"): lambda h: client.get("/api/alerts", headers=h),
        ("GET", "/api/alerts/stream"): stream,
        ("GET", "/api/alerts/{alert_id}"): lambda h: client.get(f"/api/alerts/{a1}", headers=h),
        ("POST", "/api/alerts/{alert_id}/acknowledge"): lambda h: client.post(
            f"/api/alerts/{a1}/acknowledge", headers=h, json={"note": "seen"}
        ),
        ("POST", "/api/alerts/{alert_id}/resolve"): lambda h: client.post(
            f"/api/alerts/{a1}/resolve", headers=h, json={"note": "fixed"}
        ),
        ("POST", "/api/alerts/{alert_id}/assign"): lambda h: client.post(
            f"/api/alerts/{a1}/assign", headers=h, json={"assignee": "insp"}
        ),
        ("POST", "/api/alerts/{alert_id}/reopen"): lambda h: client.post(
            f"/api/alerts/{a1}/reopen", headers=h, json={"note": "again"}
        ),
        ("POST", "/api/alerts/{alert_id}/comments"): lambda h: client.post(
            f"/api/alerts/{a1}/comments", headers=h, json={"note": "a word"}
        ),
        ("GET", "/api/devices"): lambda h: client.get("/api/devices", headers=h),
        ("GET", "/api/devices/{mn}/readings"): lambda h: client.get(
            f"/api/devices/{MN1}/readings", headers=h
        ),
        ("POST", "/api/devices"): lambda h: client.post(
            "/api/devices", headers=h, json={"mn": unique_mn(), "point_id": "E1-P1"}
        ),
        ("POST", "/api/devices/{mn}/revoke"): lambda h: client.post(
            f"/api/devices/{MN3}/revoke", headers=h, json={"reason": "test"}
        ),
        ("GET", "/api/enterprises"): lambda h: client.get("/api/enterprises", headers=h),
        ("GET", "/api/enterprises/{enterprise_id}/qr.{kind}"): lambda h: client.get(
            "/api/enterprises/E1/qr.svg", headers=h
        ),
        ("POST", "/api/enterprises/{enterprise_id}/qr/revoke"): lambda h: client.post(
            "/api/enterprises/E3/qr/revoke", headers=h
        ),
        ("POST", "/api/visits/scan"): lambda h: client.post(
            "/api/visits/scan", headers=h, json={"token": scan}
        ),
        ("POST", "/api/visits/check-in"): lambda h: client.post(
            "/api/visits/check-in", headers=h, json={"token": scan, "purpose": "routine"}
        ),
        ("POST", "/api/visits/{visit_id}/check-out"): lambda h: client.post(
            f"/api/visits/{v1}/check-out", headers=h, json={"findings": "fine"}
        ),
        ("GET", "/api/visits"): lambda h: client.get("/api/visits", headers=h),
        ("GET", "/api/visits/{visit_id}"): lambda h: client.get(f"/api/visits/{v1}", headers=h),
        ("POST", "/api/visits/{visit_id}/rating"): lambda h: client.post(
            f"/api/visits/{v1}/rating", headers=h, json={"rating": 4}
        ),
        ("GET", "/api/cases"): lambda h: client.get("/api/cases", headers=h),
        ("POST", "/api/cases"): lambda h: client.post(
            "/api/cases", headers=h, json={"alert_ids": [a1]}
        ),
        ("GET", "/api/cases/notifications"): lambda h: client.get(
            "/api/cases/notifications", headers=h
        ),
        ("GET", "/api/cases/{case_id}"): lambda h: client.get(f"/api/cases/{c1}", headers=h),
        ("POST", "/api/cases/{case_id}/move"): lambda h: client.post(
            f"/api/cases/{c1}/move", headers=h, json={"to": "verifying", "note": "ask"}
        ),
        ("POST", "/api/cases/{case_id}/responses"): lambda h: client.post(
            f"/api/cases/{c1}/responses", headers=h, json={"explanation": "again"}
        ),
        ("POST", "/api/cases/{case_id}/responses/{response_id}/verdict"): lambda h: client.post(
            f"/api/cases/{c1}/responses/{r1}/verdict", headers=h, json={"accept": False}
        ),
        ("GET", "/api/cases/{case_id}/attachments/{attachment_id}"): lambda h: client.get(
            f"/api/cases/{c1}/attachments/{att1}", headers=h
        ),
        ("POST", "/api/cases/{case_id}/tasks"): lambda h: client.post(
            f"/api/cases/{c1}/tasks", headers=h, json={"assignee": "insp", "reason": "go"}
        ),
        ("GET", "/api/tasks"): lambda h: client.get("/api/tasks", headers=h),
        ("GET", "/api/tasks/{task_id}"): lambda h: client.get(f"/api/tasks/{t1}", headers=h),
        ("POST", "/api/invitations"): lambda h: client.post(
            "/api/invitations", headers=h, json={"scope": "flow meter"}
        ),
        ("GET", "/api/invitations"): lambda h: client.get("/api/invitations", headers=h),
        ("POST", "/api/invitations/{invitation_id}/schedule"): lambda h: client.post(
            f"/api/invitations/{inv1}/schedule", headers=h, json={"assignee": "insp"}
        ),
        ("GET", "/api/reports/page"): lambda h: client.get("/api/reports/page", headers=h),
        ("GET", "/api/reports/{enterprise_id}/{month}"): lambda h: client.get(
            f"/api/reports/E1/{month}", headers=h
        ),
        ("GET", "/api/reports/{enterprise_id}/{month}/csv"): lambda h: client.get(
            f"/api/reports/E1/{month}/csv", headers=h
        ),
        ("GET", "/api/visits/guard/no-disturbance"): lambda h: client.get(
            "/api/visits/guard/no-disturbance", headers=h
        ),
        ("PUT", "/api/visits/guard/no-disturbance/{enterprise_id}"): lambda h: client.put(
            "/api/visits/guard/no-disturbance/E3", headers=h, json={"reason": "audit week"}
        ),
        ("DELETE", "/api/visits/guard/no-disturbance/{enterprise_id}"): lambda h: client.delete(
            "/api/visits/guard/no-disturbance/E3", headers=h
        ),
        ("GET", "/api/visits/guard/refusals"): lambda h: client.get(
            "/api/visits/guard/refusals", headers=h
        ),
        ("GET", "/api/users"): lambda h: client.get("/api/users", headers=h),
        ("GET", "/static/{path:path}"): lambda h: client.get("/static/console/app.js", headers=h),
        ("GET", "/api/alert-counts"): lambda h: client.get("/api/alert-counts", headers=h),
        ("GET", "/api/alert-facets"): lambda h: client.get("/api/alert-facets", headers=h),
        ("GET", "/api/alert-unseen"): lambda h: client.get("/api/alert-unseen", headers=h),
        ("GET", "/api/overview"): lambda h: client.get("/api/overview", headers=h),
        ("GET", "/api/devices/{mn}"): lambda h: client.get(f"/api/devices/{MN1}", headers=h),
        ("GET", "/api/devices/{mn}/capture"): lambda h: client.get(
            f"/api/devices/{MN1}/capture", headers=h
        ),
        ("GET", "/api/enterprises/{enterprise_id}"): lambda h: client.get(
            "/api/enterprises/E1", headers=h
        ),
        ("GET", "/api/export/alerts.csv"): lambda h: client.get(
            "/api/export/alerts.csv", headers=h
        ),
        ("GET", "/api/export/visits.csv"): lambda h: client.get(
            "/api/export/visits.csv", headers=h
        ),
        ("GET", "/api/export/devices/{mn}/readings.csv"): lambda h: client.get(
            f"/api/export/devices/{MN1}/readings.csv", headers=h
        ),
        ("GET", "/api/users/assignable"): lambda h: client.get("/api/users/assignable", headers=h),
        ("PUT", "/api/users"): lambda h: client.put(
            "/api/users", headers=h, json={"id": "new-user", "role": "inspector"}
        ),
        ("POST", "/api/users/{user_id}/api-keys"): lambda h: client.post(
            "/api/users/victim/api-keys", headers=h
        ),
        ("POST", "/api/users/{user_id}/deactivate"): lambda h: client.post(
            "/api/users/victim/deactivate", headers=h
        ),
    }


def test_every_route_allows_and_denies_exactly_as_declared(db_url: str, monkeypatch) -> None:
    monkeypatch.setattr(alert_routes, "HEARTBEAT_S", 0.1)  # streams notice the hang-up fast
    monkeypatch.setattr(console_routes, "DEVICE_POLL_S", 0.1)
    w = build_world(db_url)
    with api_client(db_url) as client:
        assert _routes(client.app) == set(ACCESS), "declare the new route in ACCESS"
        calls = _requests(w, client)
        assert set(calls) == set(ACCESS)
        failures = []
        for key, allowed in sorted(ACCESS.items()):
            for role in (None, *ROLES):
                client.cookies.clear()  # a login sets the session cookie on the client
                t0 = time.monotonic()
                status = calls[key](w.headers(role)).status_code
                if allowed == PUBLIC or (role is not None and role in allowed):
                    ok = status not in (401, 403) and status < 500
                else:
                    ok = status == (401 if role is None else 403)
                if not ok:
                    failures.append(f"{key} as {role or 'nobody'}: {status}")
                assert time.monotonic() - t0 < 10, key
        assert not failures, "\n".join(failures)


def test_an_undeclared_route_stops_the_app_from_being_built() -> None:
    app = FastAPI()
    router = APIRouter()

    @router.get("/api/oops")
    async def oops() -> dict:
        return {}

    app.include_router(router)
    assert any(isinstance(r, APIRoute) for r in all_routes(app.routes))
    with pytest.raises(RuntimeError, match="declares no access"):
        require_declared(app)


def test_objects_out_of_scope_answer_404_to_every_role_allowed_on_the_route(db_url: str) -> None:
    """An object of an enterprise the caller may not see does not exist for them: never
    403 (which confirms it) nor 422 naming its owner. Every route with an object in its
    path is called, on E2's objects (region R2), by each role the route allows whose
    scope leaves E2 out: ent1 (enterprise E1), reg (regulator of R1), and insp for the
    inspector's own-only objects (another inspector's visit and task)."""
    w = build_world(db_url)
    month = time.strftime("%Y-%m", time.gmtime())
    with api_client(db_url) as client:
        adm, ent2 = w.headers("admin"), w.headers("enterprise", "ent2")
        a2, v2 = w.alerts["E2"], w.visits["E2"]
        c2 = client.post("/api/cases", headers=adm, json={"alert_ids": [a2]}).json()["id"]
        resp = client.post(
            f"/api/cases/{c2}/responses",
            headers=ent2,
            json={
                "explanation": "x",
                "attachments": [{"filename": "a.txt", "content_base64": "aGVsbG8="}],
            },
        ).json()["responses"][0]
        r2, att2 = resp["id"], resp["attachments"][0]["id"]
        t2 = client.post(
            f"/api/cases/{c2}/tasks", headers=adm, json={"assignee": "insp2", "reason": "go"}
        ).json()["id"]
        inv2 = client.post("/api/invitations", headers=ent2, json={"scope": "CEMS"}).json()["id"]
        ent, reg, insp = "enterprise", "regulator", "inspector"
        calls: list[tuple[str, str, dict | None, tuple[str, ...]]] = [
            ("GET", f"/api/alerts/{a2}", None, (ent, reg)),
            ("POST", f"/api/alerts/{a2}/acknowledge", {"note": "x"}, (reg,)),
            ("POST", f"/api/alerts/{a2}/resolve", {"note": "x"}, (reg,)),
            ("POST", f"/api/alerts/{a2}/assign", {"assignee": "insp"}, (reg,)),
            ("POST", f"/api/alerts/{a2}/reopen", {"note": "x"}, (reg,)),
            ("POST", f"/api/alerts/{a2}/comments", {"note": "x"}, (ent, reg)),
            ("GET", "/api/devices/2222BBBB", None, (ent, reg)),
            ("GET", "/api/devices/2222BBBB/readings", None, (ent, reg)),
            ("GET", "/api/devices/2222BBBB/capture", None, (ent, reg)),
            ("GET", "/api/export/devices/2222BBBB/readings.csv", None, (ent, reg)),
            ("GET", "/api/enterprises/E2", None, (ent, reg)),
            ("GET", "/api/enterprises/E2/qr.svg", None, (ent, reg)),
            ("POST", "/api/enterprises/E2/qr/revoke", None, (reg,)),
            ("GET", f"/api/visits/{v2}", None, (ent, reg, insp)),
            ("POST", f"/api/visits/{v2}/check-out", {"findings": "x"}, (insp,)),
            ("POST", f"/api/visits/{v2}/rating", {"rating": 3}, (ent,)),
            ("GET", f"/api/cases/{c2}", None, (ent, reg)),
            ("POST", f"/api/cases/{c2}/move", {"to": "verifying", "note": "x"}, (reg,)),
            ("POST", f"/api/cases/{c2}/responses", {"explanation": "x"}, (ent,)),
            ("POST", f"/api/cases/{c2}/responses/{r2}/verdict", {"accept": True}, (reg,)),
            ("GET", f"/api/cases/{c2}/attachments/{att2}", None, (ent, reg)),
            ("POST", f"/api/cases/{c2}/tasks", {"assignee": "insp", "reason": "x"}, (reg,)),
            ("GET", f"/api/tasks/{t2}", None, (reg, insp)),
            ("POST", f"/api/invitations/{inv2}/schedule", {"assignee": "insp"}, (reg,)),
            ("GET", f"/api/reports/E2/{month}", None, (ent, reg)),
            ("GET", f"/api/reports/E2/{month}/csv", None, (ent, reg)),
            ("PUT", "/api/visits/guard/no-disturbance/E2", {"reason": "x"}, (reg,)),
            ("DELETE", "/api/visits/guard/no-disturbance/E2", None, (reg,)),
        ]
        failures = []
        for method, path, body, roles in calls:
            for role in roles:
                r = client.request(method, path, headers=w.headers(role), json=body)
                if r.status_code != 404:
                    failures.append(f"{method} {path} as {role}: {r.status_code} {r.text[:80]}")
        assert not failures, "\n".join(failures)

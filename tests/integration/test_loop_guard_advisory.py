"""The frequency guard, advisory check-ups, escalation by the clock, the webhook, and the
report's exceedance hours against a naive query over raw readings."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import psycopg
import pytest
from fastapi.testclient import TestClient

from offsite.api.app import create_app
from offsite.api.queries.reports import exceedances
from offsite.api.webhook import deliver_due
from offsite.core.registry import registry_from_dict
from offsite.core.settings import load_settings
from offsite.store.cases import escalate_overdue
from offsite.store.rollups import rebuild_rollups
from offsite.store.users import create_user, issue_token
from tests.integration.helpers import bearer, register, scalar, wait_for

pytestmark = pytest.mark.integration
PW = "correct horse battery staple"


def _world(db_url: str) -> dict[str, dict[str, str]]:
    register(
        db_url,
        registry_from_dict(
            {
                "enterprises": [
                    {
                        "id": "ENT",
                        "name": "Works",
                        "region": "R1",
                        "points": [
                            {
                                "id": "ENT-S1",
                                "kind": "flue_gas",
                                "limits": {"a21026": 35.0},
                                "devices": [{"mn": "GUARD001", "interval_s": 60}],
                            }
                        ],
                    },
                    {
                        "id": "QUIET",
                        "name": "Quiet",
                        "region": "R1",
                        "points": [
                            {
                                "id": "QUIET-S1",
                                "kind": "wastewater",
                                "limits": {"w01018": 50.0},
                                "devices": [{"mn": "GUARD002"}],
                            }
                        ],
                    },
                ]
            }
        ),
    )
    with psycopg.connect(db_url) as conn:
        create_user(conn, "reg", "regulator", PW, region="R1")
        create_user(conn, "insp", "inspector", PW, region="R1", department="ecology")
        create_user(conn, "ent", "enterprise", PW, enterprise_id="ENT")
        create_user(conn, "quiet", "enterprise", PW, enterprise_id="QUIET")
        return {u: bearer(issue_token(conn, u)) for u in ("reg", "insp", "ent", "quiet")}


def _client(db_url: str, **kw: Any) -> TestClient:
    kw.setdefault("checkin_rate_per_min", 600.0)  # many scans in a few seconds
    s = load_settings(database_url=db_url, mqtt_url="mqtt://127.0.0.1:1", qr_secret="q" * 40, **kw)
    return TestClient(create_app(s, db_url))


def _scan(c: TestClient, h: dict, enterprise: str) -> str:
    return c.get(f"/api/enterprises/{enterprise}/qr.svg", headers=h["reg"]).headers[
        "x-offsite-scan-url"
    ]


def _visit(c: TestClient, h: dict, scan: str, **extra: Any) -> Any:
    r = c.post(
        "/api/visits/check-in", headers=h["insp"], json={"token": scan, "purpose": "look", **extra}
    )
    if r.status_code == 201:
        c.post(
            f"/api/visits/{r.json()['id']}/check-out", headers=h["insp"], json={"findings": "ok"}
        )
    return r


def test_frequency_guard_refuses_without_a_reason_and_records_the_refusal(db_url: str) -> None:
    h = _world(db_url)
    with _client(db_url, visit_guard_max=2, visit_guard_days=30) as c:
        scan = _scan(c, h, "ENT")
        assert _visit(c, h, scan).status_code == 201
        assert _visit(c, h, scan).status_code == 201
        # a third unscheduled visit within 30 days needs a reason
        r = _visit(c, h, scan)
        assert r.status_code == 409 and "visited 2 time(s)" in r.text
        refused = c.get("/api/visits/guard/refusals", headers=h["reg"]).json()
        assert len(refused) == 1 and refused[0]["recent_visits"] == 2
        assert refused[0]["inspector_id"] == "insp" and not refused[0]["no_disturbance"]
        assert scalar(db_url, "SELECT count(*) FROM visits WHERE enterprise_id = 'ENT'") == 2
        assert scalar(db_url, "SELECT count(*) FROM audit_log WHERE action = 'visit.refused'") == 1
        # a blank complaint is no reason; a complaint is
        assert _visit(c, h, scan, complaint="  ").status_code == 409
        r = _visit(c, h, scan, complaint="C-2026-114: black smoke at night")
        assert r.status_code == 201, r.text
        assert r.json()["justification"] == "complaint: C-2026-114: black smoke at night"

        # the no-disturbance list: even a first visit needs a reason
        quiet = _scan(c, h, "QUIET")
        assert (
            c.put(
                "/api/visits/guard/no-disturbance/QUIET",
                headers=h["reg"],
                json={"reason": "positive list, good record"},
            ).status_code
            == 204
        )
        r = _visit(c, h, quiet)
        assert r.status_code == 409 and "no-disturbance" in r.text
        # an open case of that enterprise is a reason; a case of another is not
        alert = _alert(db_url, "GUARD002")
        cid = c.post("/api/cases", headers=h["reg"], json={"alert_ids": [alert]}).json()["id"]
        other = c.post(
            "/api/cases", headers=h["reg"], json={"alert_ids": [_alert(db_url, "GUARD001")]}
        ).json()["id"]
        assert _visit(c, h, quiet, case_id=other).status_code == 422
        r = _visit(c, h, quiet, case_id=cid)
        assert r.status_code == 201 and r.json()["case_id"] == cid
        assert (
            c.delete("/api/visits/guard/no-disturbance/QUIET", headers=h["reg"]).status_code == 204
        )
        assert len(c.get("/api/visits/guard/refusals", headers=h["reg"]).json()) == 3


def _alert(db_url: str, mn: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            """INSERT INTO alerts (rule, mn, pollutant, severity, first_seen,
                                  last_seen, message) VALUES ('exceedance', %s, %s, 'major',
                                  now(), now(), 'over') RETURNING id""",
            (mn, uuid.uuid4().hex[:8]),
        ).fetchone()
        assert row is not None
        return int(row[0])


def test_invited_check_up_is_advisory_everywhere(db_url: str) -> None:
    h = _world(db_url)
    with _client(db_url, visit_guard_max=0) as c:  # every unscheduled visit needs a reason
        inv = c.post(
            "/api/invitations",
            headers=h["ent"],
            json={"scope": "CEMS sampling line and calibration records"},
        )
        assert inv.status_code == 201 and inv.json()["advisory"]
        assert c.get("/api/invitations", headers=h["quiet"]).json() == []  # not theirs
        task = c.post(
            f"/api/invitations/{inv.json()['id']}/schedule",
            headers=h["reg"],
            json={"assignee": "insp"},
        ).json()
        assert task["advisory"] and task["case_id"] is None
        r = c.post(
            "/api/visits/check-in",
            headers=h["insp"],
            json={
                "token": _scan(c, h, "ENT"),
                "purpose": "invited check-up",
                "task_id": task["id"],
            },
        )
        assert r.status_code == 201, r.text  # the invitation is its reason: no guard
        v = r.json()
        assert v["kind"] == "advisory" and v["advisory"] and v["case_id"] is None
        out = c.post(
            f"/api/visits/{v['id']}/check-out",
            headers=h["insp"],
            json={"findings": "sample line heater weak: suggest replacement"},
        ).json()
        assert out["advisory"]
        assert c.get(f"/api/visits/{v['id']}", headers=h["ent"]).json()["advisory"]
        assert [x["advisory"] for x in c.get("/api/visits", headers=h["reg"]).json()] == [True]
        done = c.get(f"/api/tasks/{task['id']}", headers=h["reg"]).json()
        assert done["state"] == "done" and done["advisory"]
        assert c.get("/api/invitations", headers=h["ent"]).json()[0]["state"] == "done"
        month = datetime.now(UTC).strftime("%Y-%m")
        rep = c.get(f"/api/reports/ENT/{month}", headers=h["reg"]).json()
        assert rep["summary"]["advisory_visits"] == 1
        assert rep["visits"][0]["advisory"] and rep["visits"][0]["kind"] == "advisory"
        csv = c.get(f"/api/reports/ENT/{month}/csv", headers=h["reg"]).text
        assert "ADVISORY: not a basis for enforcement" in csv
        # advisory visits do not count toward the guard (the enterprise asked for them)
        assert scalar(db_url, "SELECT count(*) FROM visits WHERE kind = 'advisory'") == 1
    # the database refuses to tie advisory work to a case, whatever the code does
    with psycopg.connect(db_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        case = conn.execute("""INSERT INTO cases (enterprise_id, title, opened_by)
                               VALUES ('ENT', 't', 'x') RETURNING id""").fetchone()
        assert case is not None
        conn.execute("UPDATE visits SET case_id = %s WHERE kind = 'advisory'", (case[0],))


def test_overdue_response_escalates_once_by_the_clock_given(db_url: str) -> None:
    h = _world(db_url)
    with _client(db_url, case_check_s=3600) as c:
        cid = c.post(
            "/api/cases",
            headers=h["reg"],
            json={"alert_ids": [_alert(db_url, "GUARD001")], "response_hours": 2},
        ).json()["id"]
        answered = c.post(
            "/api/cases",
            headers=h["reg"],
            json={"alert_ids": [_alert(db_url, "GUARD001")], "response_hours": 2},
        ).json()["id"]
        c.post(
            f"/api/cases/{answered}/responses",
            headers=h["ent"],
            json={"explanation": "here is why"},
        )
    due = scalar(db_url, "SELECT response_due_at FROM cases WHERE id = %s", cid)

    async def run(now: datetime) -> list[int]:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            return await escalate_overdue(conn, now)

    assert asyncio.run(run(due - timedelta(seconds=1))) == []
    assert asyncio.run(run(due + timedelta(seconds=1))) == [cid]  # the answered one waits
    assert asyncio.run(run(due + timedelta(hours=5))) == []  # once only
    assert scalar(db_url, "SELECT count(*) FROM case_steps WHERE kind = 'escalated'") == 1
    assert (
        scalar(
            db_url,
            """SELECT count(*) FROM notifications WHERE kind = 'case.escalated'
                             AND audience = 'regulator'""",
        )
        == 1
    )


class _Receiver(BaseHTTPRequestHandler):
    got: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    fail_first = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Receiver.fail_first > 0:
            _Receiver.fail_first -= 1
            self.send_response(503)
        else:
            _Receiver.got.append((dict(self.headers), body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.got, _Receiver.fail_first = [], 1
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_delivers_signed_case_events_with_retries(db_url: str, receiver: str) -> None:
    h = _world(db_url)
    with _client(db_url) as c:  # no webhook URL in the app: we drive the sender here
        c.post("/api/cases", headers=h["reg"], json={"alert_ids": [_alert(db_url, "GUARD001")]})

    async def round_() -> int:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            return await deliver_due(conn, receiver, "s3cret", max_attempts=3)

    assert asyncio.run(round_()) == 1  # the receiver answers 503 the first time
    assert (
        scalar(db_url, "SELECT status || attempts || last_status FROM webhook_outbox")
        == "pending1503"
    )
    assert asyncio.run(round_()) == 0  # not yet due again (backoff)
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE webhook_outbox SET next_attempt_at = now()")
    assert asyncio.run(round_()) == 1
    assert scalar(db_url, "SELECT status FROM webhook_outbox") == "delivered"
    [(headers, body)] = _Receiver.got
    want = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Offsite-Signature"] == want
    event = json.loads(body)
    assert event["event"] == "case.opened" and event["data"]["enterprise_id"] == "ENT"
    assert headers["X-Offsite-Delivery"] == str(event["id"])


def test_webhook_gives_up_after_max_attempts(db_url: str) -> None:
    _world(db_url)
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO webhook_outbox (event, payload) VALUES ('x', '{}')")

    async def round_() -> int:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            return await deliver_due(conn, "http://127.0.0.1:9/nothing", None, max_attempts=2)

    for _ in range(2):
        assert asyncio.run(round_()) == 1
        with psycopg.connect(db_url) as conn:
            conn.execute("UPDATE webhook_outbox SET next_attempt_at = now()")
    assert scalar(db_url, "SELECT status || attempts FROM webhook_outbox") == "failed2"
    assert scalar(db_url, "SELECT last_error FROM webhook_outbox")


@pytest.mark.parametrize("o2_ref", [None, 6.0])
def test_report_exceedance_hours_match_a_naive_query_on_raw_readings(
    db_url: str, o2_ref: float | None
) -> None:
    point: dict[str, Any] = {
        "id": "N-S1",
        "kind": "flue_gas",
        "limits": {"a21026": 35.0},
        "devices": [{"mn": "NAIVE001", "interval_s": 60}],
    }
    if o2_ref is not None:
        point["o2_ref"] = o2_ref
    register(
        db_url,
        registry_from_dict({"enterprises": [{"id": "NAIVE", "name": "Naive", "points": [point]}]}),
    )
    start = datetime(2026, 10, 1, tzinfo=UTC)
    rows = []
    for hour in range(48):  # two days: some hours over, some under, some too thin
        n = 60 if hour % 5 else 30  # every 5th hour has only half its minutes
        level = 20.0 + (hour % 7) * 5  # 20 … 50 against a limit of 35
        for m in range(n):
            ts = start + timedelta(hours=hour, minutes=m)
            flag = "D" if m % 17 == 0 else "N"  # a few invalid values
            rows.append((ts, "NAIVE001", "a21026", "rtd", level + (m % 3), flag, start))
            if hour % 11:  # every 11th hour has no O2 at all
                o2 = 6.0 + (hour % 4) * 1.5 + (m % 5) * 0.1  # 6 … 10.9 %
                rows.append((ts, "NAIVE001", "a19001", "rtd", o2, "N", start))
    with psycopg.connect(db_url) as conn:
        with conn.cursor().copy(
            "COPY readings (ts, mn, pollutant, kind, value, flag, received_at) FROM STDIN"
        ) as cp:
            for r in rows:
                cp.write_row(r)
        conn.commit()  # TimescaleDB refreshes its continuous aggregates in its own transactions
        rebuild_rollups(conn)
        # hourly valid averages from raw rows; at a reference O2, converted with the
        # hour's average O2, and an hour without O2 is no valid hour
        naive = conn.execute(
            """
            WITH so2 AS (SELECT date_trunc('hour', ts) h, avg(value) a, count(*) n
                         FROM readings WHERE pollutant = 'a21026' AND flag = 'N'
                         GROUP BY 1),
                 o2 AS (SELECT date_trunc('hour', ts) h, avg(value) a FROM readings
                        WHERE pollutant = 'a19001' AND flag = 'N' GROUP BY 1),
                 judged AS (SELECT CASE WHEN %s::float8 IS NULL THEN so2.a
                                        ELSE so2.a * (21 - %s) / (21 - o2.a) END AS c
                            FROM so2 LEFT JOIN o2 USING (h)
                            WHERE so2.n >= 45 AND (%s::float8 IS NULL OR o2.a IS NOT NULL))
            SELECT count(*) FILTER (WHERE c > 35), count(*) FROM judged""",
            (o2_ref, o2_ref, o2_ref),
        ).fetchone()
        conn.commit()

    async def run() -> list[dict[str, Any]]:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            return await exceedances(conn, "NAIVE", start, datetime(2026, 11, 1, tzinfo=UTC))

    [got] = asyncio.run(run())
    assert naive is not None and 0 < naive[0] < naive[1]
    assert (got["hours_over_limit"], got["valid_hours"]) == (naive[0], naive[1])


def test_an_inspectors_department_is_set_through_the_api_and_shown_on_visits(db_url: str) -> None:
    h = _world(db_url)
    with psycopg.connect(db_url) as conn:
        create_user(conn, "adm", "admin", PW)
        adm = bearer(issue_token(conn, "adm"))
    with _client(db_url) as c:
        r = c.put(
            "/api/users",
            headers=adm,
            json={"id": "insp", "role": "inspector", "region": "R1", "department": "fire"},
        )
        assert r.status_code == 200 and r.json()["department"] == "fire"
        v = _visit(c, h, _scan(c, h, "ENT"))
        assert v.status_code == 201, v.text
        assert [(i["inspector_id"], i["department"]) for i in v.json()["inspectors"]] == [
            ("insp", "fire")
        ]


def test_the_api_process_escalates_and_sends_on_its_own(db_url: str, receiver: str) -> None:
    """The timers the app starts: an unanswered case escalates within seconds of its
    deadline, and both events reach the webhook (the first POST fails: retried)."""
    h = _world(db_url)
    with _client(db_url, case_check_s=0.2, webhook_url=receiver, webhook_secret="s3cret") as c:
        r = c.post(
            "/api/cases",
            headers=h["reg"],
            json={"alert_ids": [_alert(db_url, "GUARD001")], "response_hours": 0.0003},
        )  # ≈ 1 s
        cid = r.json()["id"]
        wait_for(
            lambda: scalar(db_url, "SELECT escalated_at FROM cases WHERE id = %s", cid),
            timeout=15,
            what="the case escalated",
        )
        wait_for(lambda: len(_Receiver.got) == 2, timeout=20, what="two webhook deliveries")
        steps = c.get(f"/api/cases/{cid}", headers=h["reg"]).json()["steps"]
    assert [s["kind"] for s in steps] == ["opened", "escalated"]
    # the first failed and was retried after its backoff, so the later event may come
    # first: delivery is at least once, not in order (the ids give the order)
    events = sorted(json.loads(body)["event"] for _, body in _Receiver.got)
    assert events == ["case.escalated", "case.opened"]
    assert scalar(db_url, "SELECT array_agg(attempts ORDER BY id) FROM webhook_outbox") == [2, 1]


def test_concurrent_check_ins_cannot_all_be_the_last_one_allowed(db_url: str) -> None:
    h = _world(db_url)
    with psycopg.connect(db_url) as conn:
        for i in range(4):
            create_user(conn, f"i{i}", "inspector", None, region="R1")
        heads = [bearer(issue_token(conn, f"i{i}")) for i in range(4)]
    with _client(db_url, visit_guard_max=1) as c:
        scan = _scan(c, h, "ENT")
        barrier = threading.Barrier(4)
        codes: list[int] = []

        def go(head: dict[str, str]) -> None:
            barrier.wait()
            codes.append(
                c.post(
                    "/api/visits/check-in",
                    headers=head,
                    json={"token": scan, "purpose": "same moment"},
                ).status_code
            )

        threads = [threading.Thread(target=go, args=(hd,)) for hd in heads]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert sorted(codes) == [201, 409, 409, 409]
    assert scalar(db_url, "SELECT count(*) FROM visits") == 1
    assert scalar(db_url, "SELECT count(*) FROM visit_refusals") == 3


def test_another_enterprise_cannot_see_or_answer_a_case(db_url: str) -> None:
    h = _world(db_url)
    with psycopg.connect(db_url) as conn:
        create_user(conn, "far", "inspector", None, region="R9")
        far = bearer(issue_token(conn, "far"))
    with _client(db_url) as c:
        case = c.post(
            "/api/cases", headers=h["reg"], json={"alert_ids": [_alert(db_url, "GUARD001")]}
        ).json()
        cid = case["id"]
        r = c.post(
            f"/api/cases/{cid}/responses",
            headers=h["ent"],
            json={
                "explanation": "x",
                "attachments": [{"filename": "a.txt", "content_base64": "eA=="}],
            },
        ).json()
        att = r["responses"][0]["attachments"][0]["id"]
        for who in (h["quiet"], far):
            assert c.get(f"/api/cases/{cid}", headers=who).status_code == 404
            assert c.get(f"/api/cases/{cid}/attachments/{att}", headers=who).status_code == 404
            assert c.get("/api/cases", headers=who).json() == []
            assert c.get("/api/cases/notifications", headers=who).json() == []
        assert (
            c.post(
                f"/api/cases/{cid}/responses", headers=h["quiet"], json={"explanation": "not mine"}
            ).status_code
            == 404
        )
        assert (
            c.get(f"/api/reports/ENT/{datetime.now(UTC):%Y-%m}", headers=h["quiet"]).status_code
            == 404
        )
        # the enterprise reads only the notices addressed to it, not the regulators'
        kinds = {n["kind"] for n in c.get("/api/cases/notifications", headers=h["ent"]).json()}
        assert kinds == {"case.opened"}
        assert "case.response" in {
            n["kind"] for n in c.get("/api/cases/notifications", headers=h["reg"]).json()
        }
        # a bad attachment is refused whole: nothing half-stored
        bad = c.post(
            f"/api/cases/{cid}/responses",
            headers=h["ent"],
            json={"explanation": "y", "attachments": [{"filename": "b", "content_base64": "!!"}]},
        )
        assert bad.status_code == 422
        assert len(c.get(f"/api/cases/{cid}", headers=h["reg"]).json()["responses"]) == 1

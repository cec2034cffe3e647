"""The API over a real socket: the live SSE feed carries alerts raised by ingest and a
regulator's actions, and resumes with Last-Event-ID; visits refuse forged tokens."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn

from offsite.api.app import DrainingServer, create_app
from offsite.core.registry import registry_from_dict
from offsite.core.settings import Settings
from offsite.embedded import free_port
from tests.integration.helpers import (
    bearer,
    make_settings,
    publish_raw,
    register,
    running_ingest,
    token_for,
    topic_for,
    wait_for,
)

pytestmark = pytest.mark.integration

MN = "020000A8900016F000169DC0"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E7",
                "name": "Riverside Paper Mill",
                "points": [
                    {
                        "id": "E7-W1",
                        "kind": "wastewater",
                        "limits": {"w01018": 50.0},
                        "devices": [{"mn": MN, "interval_s": 60}],
                    }
                ],
            },
            {"id": "E8", "name": "Other Works", "points": []},
        ]
    }
)


@contextmanager
def serving(settings: Settings, db_url: str) -> Iterator[str]:
    port = free_port()
    app = create_app(settings, db_url)
    server = DrainingServer(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
        ),
        app,
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=15, what="uvicorn started")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _listen(
    url: str, out: queue.Queue, stop: threading.Event, headers: dict[str, str] | None = None
) -> None:
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(5.0, read=30.0)) as client,
            client.stream("GET", f"{url}/api/alerts/stream", headers=headers or {}) as resp,
        ):
            out.put(("status", resp.status_code))
            event_id = None
            for line in resp.iter_lines():
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    out.put((event_id, json.loads(line[6:])))
                if stop.is_set():
                    return
    except httpx.TransportError:
        if not stop.is_set():  # the server going away at teardown is expected
            raise


def _next_event(q: queue.Queue, kind: str, timeout: float = 15.0) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout
    while True:
        eid, ev = q.get(timeout=max(0.01, deadline - time.monotonic()))
        if eid != "status" and ev.get("event") == kind:
            return eid, ev


def test_live_feed_carries_new_alerts_and_actions(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    register(db_url, REGISTRY)
    settings = make_settings(db_url, mqtt_url, unique_topic)
    reg = bearer(token_for(db_url, "regulator", user_id="reg-1"))
    with running_ingest(settings), serving(settings, db_url) as url:
        events: queue.Queue = queue.Queue()
        stop = threading.Event()
        t = threading.Thread(target=_listen, args=(url, events, stop, reg), daemon=True)
        t.start()
        assert events.get(timeout=10) == ("status", 200)
        time.sleep(0.3)  # the subscription is registered before the first byte is sent

        publish_raw(
            mqtt_url,
            [
                (
                    topic_for(unique_topic, MN),
                    json.dumps(
                        {"ts": datetime.now(UTC).isoformat(), "values": {"w01018": 80.0}}
                    ).encode(),
                )
            ],
        )
        opened_id, opened = _next_event(events, "opened")
        assert opened["rule"] == "exceedance" and opened["mn"] == MN
        assert opened["enterprise_id"] == "E7" and opened["worst_value"] == 80.0

        r = httpx.post(
            f"{url}/api/alerts/{opened['id']}/resolve",
            headers=reg,
            json={"note": "explained by enterprise"},
        )
        assert r.status_code == 200 and r.json()["state"] == "resolved"
        resolved_id, resolved = _next_event(events, "resolved")
        assert resolved["id"] == opened["id"] and resolved["actor"] == "reg-1"
        assert resolved["note"] == "explained by enterprise"
        stop.set()

        # a client that reconnects with Last-Event-ID gets what came after, in order
        missed: queue.Queue = queue.Queue()
        stop2 = threading.Event()
        threading.Thread(
            target=_listen,
            args=(url, missed, stop2, {"Last-Event-ID": str(opened_id), **reg}),
            daemon=True,
        ).start()
        assert missed.get(timeout=10) == ("status", 200)
        eid, ev = missed.get(timeout=10)
        assert (eid, ev["event"]) == (resolved_id, "resolved")
        stop2.set()

        # unknown alerts and bad actions get clear errors
        assert (
            httpx.post(f"{url}/api/alerts/999999/acknowledge", headers=reg, json={}).status_code
            == 404
        )
        assert (
            httpx.post(
                f"{url}/api/alerts/{opened['id']}/acknowledge", headers=reg, json={}
            ).status_code
            == 409
        )
        assert (
            httpx.post(
                f"{url}/api/alerts/{opened['id']}/acknowledge", headers=reg, json={"note": 5}
            ).status_code
            == 422
        )
        health = httpx.get(f"{url}/healthz").json()
        assert health["status"] == "ok" and health["database"] == "ok"


def test_check_in_refuses_forged_altered_and_unknown_tokens(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    register(db_url, REGISTRY)
    settings = make_settings(
        db_url, mqtt_url, unique_topic, qr_secret="s" * 40, checkin_rate_per_min=600
    )
    forger = make_settings(db_url, mqtt_url, unique_topic, qr_secret="f" * 40)
    admin = bearer(token_for(db_url, "admin"))
    insp = bearer(token_for(db_url, "inspector", user_id="insp-1"))
    other_insp = bearer(token_for(db_url, "inspector", user_id="someone-else"))
    with serving(settings, db_url) as url, serving(forger, db_url) as forged_url:
        good = httpx.get(f"{url}/api/enterprises/E7/qr.png", headers=admin)
        assert good.status_code == 200 and good.content.startswith(b"\x89PNG")
        token = good.headers["x-offsite-scan-url"].split("token=")[1]
        forged = httpx.get(f"{forged_url}/api/enterprises/E7/qr.svg", headers=admin)
        forged_token = forged.headers["x-offsite-scan-url"].split("token=")[1]
        other = httpx.get(f"{url}/api/enterprises/E8/qr.svg", headers=admin).headers[
            "x-offsite-scan-url"
        ]

        def check_in(tok: str, **extra: object) -> httpx.Response:
            return httpx.post(
                f"{url}/api/visits/check-in",
                headers=insp,
                json={"token": tok, "purpose": "routine", **extra},
            )

        payload, sig = token.split(".")
        altered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + sig
        assert check_in(forged_token).status_code == 401
        assert "forged or altered" in check_in(forged_token).json()["detail"]
        assert check_in(altered).status_code in (400, 401)
        assert check_in("not-a-token").status_code == 400
        assert check_in(token, alert_id=424242).status_code == 422
        assert httpx.get(f"{url}/api/enterprises/NOPE/qr.svg", headers=admin).status_code == 404

        ok = check_in(token)
        assert ok.status_code == 201 and ok.json()["enterprise_id"] == "E7"
        assert check_in(other).json()["enterprise_id"] == "E8"
        visit = ok.json()["id"]
        assert (
            httpx.post(
                f"{url}/api/visits/{visit}/check-out", headers=other_insp, json={"findings": "x"}
            ).status_code
            == 404  # another inspector's visit does not exist for them
        )
        assert (
            httpx.post(
                f"{url}/api/visits/{visit}/check-out", headers=insp, json={"findings": "all fine"}
            ).status_code
            == 200
        )
        assert (
            httpx.post(
                f"{url}/api/visits/{visit}/check-out", headers=insp, json={"findings": "again"}
            ).status_code
            == 409
        )
        listed = httpx.get(
            f"{url}/api/visits", params={"inspector": "insp-1"}, headers=admin
        ).json()
        assert {v["enterprise_id"] for v in listed} == {"E7", "E8"}


def test_healthz_reports_each_ingest_worker(db_url: str, mqtt_url: str, unique_topic: str) -> None:
    register(db_url, REGISTRY)
    settings = make_settings(db_url, mqtt_url, unique_topic)
    with serving(settings, db_url) as url:
        assert httpx.get(f"{url}/healthz").json()["ingest"] == []
        with running_ingest(settings):
            # the first heartbeat may precede the broker connection (the pipeline starts
            # first, so a persistent session's backlog has somewhere to go): wait for "ok"
            workers = wait_for(
                lambda: [
                    w for w in httpx.get(f"{url}/healthz").json()["ingest"] if w["state"] == "ok"
                ],
                what="a heartbeat saying ok",
            )
            w = workers[0]
            # anonymous callers are not told where workers run; a signed-in admin is
            assert w["state"] == "ok" and not {"worker", "host", "pid"} & set(w)
            admin = bearer(token_for(db_url, "admin"))
            (w,) = httpx.get(f"{url}/healthz", headers=admin).json()["ingest"]
            assert w["worker"] == settings.mqtt_client_id and w["pid"] > 0
            assert w["broker_connected"] is True and w["inbox"] == 0
            assert w["lag_s"] == 0 and w["heartbeat_age_s"] < 15
            assert w["rules_runner"] == "running" and w["rules_restarts"] == 0


def test_healthz_reports_a_restarted_rule_runner(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    import os
    import signal

    register(db_url, REGISTRY)
    settings = make_settings(db_url, mqtt_url, unique_topic)
    with serving(settings, db_url) as url, running_ingest(settings) as ingest:
        assert ingest.runner is not None and ingest.runner.pid is not None
        wait_for(lambda: ingest.rules_figures().leading, what="the runner leading")
        os.kill(ingest.runner.pid, signal.SIGKILL)
        w = wait_for(
            lambda: [
                w
                for w in httpx.get(f"{url}/healthz").json()["ingest"]
                if w["rules_restarts"] == 1 and w["rules_runner"] == "running"
            ],
            what="the restart in /healthz",
        )[0]
        assert w["rules_last_exit"] == "killed by SIGKILL"

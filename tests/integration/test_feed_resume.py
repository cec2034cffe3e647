"""The alert stream's ends and resumption: a stream says where it stands (``ready``), ends
with ``event: end`` and the id to resume from when the feed lost events or the server
shuts down, and a client resuming from that id gets what happened in the gap exactly once.
"""

from __future__ import annotations

import json
import queue
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from offsite.api.feed import FEED_APPLICATION_NAME
from offsite.core.readings import Reading
from offsite.core.settings import load_settings
from offsite.store.alerts import NOTIFY_CHANNEL
from offsite.store.readings import insert_readings
from tests.integration.helpers import wait_for
from tests.integration.security_fixtures import MN1, MN2, World, api_client, build_world
from tests.integration.test_api_live import serving

pytestmark = pytest.mark.integration

Sse = tuple[str, int | None, Any]  # (event, id, data)


def _read(url: str, headers: dict[str, str], out: queue.Queue) -> None:
    """Every SSE event of one stream into ``out``, then ("closed", None, None)."""
    try:
        with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=30)) as r:
            event, eid, data = "message", None, None
            for line in r.iter_lines():
                if line.startswith("id: "):
                    eid = int(line[4:])
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and data is not None:
                    out.put((event, eid, data))
                    event, eid, data = "message", None, None
    except httpx.TransportError as exc:
        out.put(("error", None, str(exc)))
    out.put(("closed", None, None))


def _open(url: str, headers: dict[str, str]) -> queue.Queue:
    out: queue.Queue = queue.Queue()
    threading.Thread(target=_read, args=(url, headers, out), daemon=True).start()
    return out


def _next(q: queue.Queue, event: str, timeout: float = 15) -> Sse:
    """The next event named ``event``; any other event except keep-alives fails."""
    got = q.get(timeout=timeout)
    assert got[0] == event, got
    return got


def _feed_backends(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (FEED_APPLICATION_NAME,),
        ).fetchone()
    return int(row[0]) if row else 0


def _add_event(db_url: str, alert_id: int) -> int:
    """An alert event as the rule runner writes it: the row, then NOTIFY its id."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "INSERT INTO alert_events (alert_id, kind) VALUES (%s, 'updated') RETURNING id",
            (alert_id,),
        ).fetchone()
        assert row is not None
        conn.execute(f"NOTIFY {NOTIFY_CHANNEL}, '{row[0]}'")
        conn.commit()
    return int(row[0])


def _newest(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def world(db_url: str) -> World:
    return build_world(db_url)


def test_a_stream_cut_by_the_feed_resumes_without_loss_or_duplicates(
    world: World, db_url: str
) -> None:
    w = world
    settings = load_settings(database_url=db_url, mqtt_url="mqtt://127.0.0.1:1", qr_secret="q" * 40)
    with serving(settings, db_url) as url:
        wait_for(lambda: _feed_backends(db_url) == 1, timeout=15, what="the feed listening")
        first = _open(f"{url}/api/alerts/stream", w.headers("admin"))
        _, ready_id, _ = _next(first, "ready")
        assert ready_id == _newest(db_url)  # a fresh stream stands at the newest event

        with psycopg.connect(db_url, autocommit=True) as conn:  # the database drops the feed
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (FEED_APPLICATION_NAME,),
            )
        _, end_id, why = _next(first, "end")
        assert why == {"reason": "reconnect"} and end_id == ready_id
        assert _next(first, "closed")[0] == "closed"

        # what happens while the client is away
        missed = [_add_event(db_url, w.alerts["E1"]), _add_event(db_url, w.alerts["E2"])]
        wait_for(lambda: _feed_backends(db_url) == 1, timeout=30, what="the feed back")

        second = _open(f"{url}/api/alerts/stream?after={end_id}", w.headers("admin"))
        replayed = [_next(second, "alert") for _ in missed]
        assert [e[1] for e in replayed] == missed
        _, at, _ = _next(second, "ready")
        assert at == missed[-1]
        fresh = _add_event(db_url, w.alerts["E3"])
        assert _next(second, "alert")[1] == fresh  # live again, nothing sent twice
        with pytest.raises(queue.Empty):
            second.get(timeout=1.5)


def test_shutdown_ends_every_stream_with_where_to_resume(world: World, db_url: str) -> None:
    w = world
    settings = load_settings(database_url=db_url, mqtt_url="mqtt://127.0.0.1:1", qr_secret="q" * 40)
    with serving(settings, db_url) as url:
        events = _open(f"{url}/api/alerts/stream", w.headers("enterprise"))
        _, ready_id, _ = _next(events, "ready")
    # leaving `serving` shut the server down: the stream was told, not cut off
    _, end_id, why = _next(events, "end", timeout=5)
    assert why == {"reason": "reconnect"} and end_id == ready_id


def test_a_draining_server_refuses_new_streams(world: World, db_url: str) -> None:
    with api_client(db_url) as client:
        client.app.state.feed.drain()
        r = client.get("/api/alerts/stream", headers=world.headers("admin"))
        assert r.status_code == 503 and r.headers["retry-after"]


# -- the device page's own stream --------------------------------------------------------
def _store_reading(db_url: str, mn: str, ts: datetime, value: float) -> None:
    with psycopg.connect(db_url) as conn, conn.transaction():
        insert_readings(conn, [Reading(ts, mn, "a21026", value)], [ts])


def test_a_device_stream_sends_each_new_reading_and_ends_at_logout(
    world: World, db_url: str
) -> None:
    w = world
    settings = load_settings(
        database_url=db_url, mqtt_url="mqtt://127.0.0.1:1", qr_secret="q" * 40, feed_recheck_s=0.3
    )
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    _store_reading(db_url, MN1, t0, 10.0)
    token = w.token("enterprise")
    with serving(settings, db_url) as url:
        # another enterprise's device does not exist for this user
        r = httpx.get(f"{url}/api/devices/{MN2}/stream", headers=w.headers("enterprise"))
        assert r.status_code == 404
        # the page drew the reading at t0; one stored before the stream opens still comes
        _store_reading(db_url, MN1, t0 + timedelta(minutes=1), 42.5)
        events = _open(
            f"{url}/api/devices/{MN1}/stream?since={t0.isoformat().replace('+', '%2B')}",
            {"Authorization": f"Bearer {token}"},
        )
        _, _, data = _next(events, "reading")
        assert data["mn"] == MN1
        assert datetime.fromisoformat(data["last_ts"]) == t0 + timedelta(minutes=1)
        assert [(x["pollutant"], x["value"]) for x in data["latest"]] == [("a21026", 42.5)]
        _store_reading(db_url, MN1, t0 + timedelta(minutes=2), 43.5)  # and a later one
        assert _next(events, "reading")[2]["latest"][0]["value"] == 43.5  # each one, once
        httpx.post(f"{url}/auth/logout", headers={"Authorization": f"Bearer {token}"})
        assert _next(events, "end")[2] == {"reason": "signed_out"}

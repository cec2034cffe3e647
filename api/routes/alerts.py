"""The anomaly feed: list, detail, acknowledge, resolve, and the live SSE stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from offsite.api import queries
from offsite.api.auth import ANY_USER, STAFF, Principal, still_holds, visible_or_404
from offsite.api.deps import Conn, FeedDep, SettingsDep
from offsite.api.models.alerts import (
    AlertAction,
    AlertAssign,
    AlertComment,
    AlertDetail,
    AlertPublic,
    Severity,
    State,
)
from offsite.api.models.paging import MAX_OFFSET
from offsite.api.routes.users import check_assignee
from offsite.rules.alerts import AlertState
from offsite.rules.errors import InvalidTransition
from offsite.store import alerts as alert_store
from offsite.store import audit

router = APIRouter(prefix="/api/alerts", tags=["alerts"])
HEARTBEAT_S = 15.0
REPLAY_PAGE = 1000
EVENT_RECHECK_S = 1.0  # before an event, the token is re-read if older than this
# why a stream ended (the console resumes after "reconnect", signs in again after "signed_out")
END_SIGNED_OUT = "signed_out"  # the token stopped holding: logout, deactivation, expiry
END_RECONNECT = "reconnect"  # the server is going away or the feed lost events: resume


def end_event(reason: str, position: int) -> bytes:
    """The last event of a stream: ``id`` is where a client resumes (``?after=`` or
    Last-Event-ID), so nothing is lost or sent twice across the gap."""
    data = json.dumps({"reason": reason})
    head = f"id: {position}\n" if position >= 0 else ""
    return f"{head}event: end\ndata: {data}\n\n".encode()


@router.get("", response_model=list[AlertPublic], summary="List and filter alerts")
async def list_alerts(
    conn: Conn,
    who: Annotated[Principal, Depends(ANY_USER)],
    state: Annotated[list[State] | None, Query(description="repeatable")] = None,
    severity: Severity | None = None,
    enterprise: str | None = None,
    mn: str | None = None,
    rule: str | None = None,
    pollutant: str | None = None,
    assignee: Annotated[str | None, Query(description="assigned to this user")] = None,
    since: Annotated[datetime | None, Query(description="last seen at or after")] = None,
    until: Annotated[datetime | None, Query(description="first seen before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict]:
    return await queries.alerts.list_alerts(
        conn,
        states=list(state) if state else None,
        severity=severity,
        enterprise=enterprise,
        mn=mn,
        rule=rule,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
        visible=who.scope,
        pollutant=pollutant,
        assignee=assignee,
    )


@router.get(
    "/stream", summary="Live alert events (Server-Sent Events)", response_class=StreamingResponse
)
async def stream(
    request: Request,
    feed: FeedDep,
    settings: SettingsDep,
    who: Annotated[Principal, Depends(ANY_USER)],
    last_event_id: Annotated[int | None, Header()] = None,
    after: Annotated[int | None, Query(description="replay events after this id")] = None,
) -> StreamingResponse:
    """Each event is ``id: <event id>``, ``event: alert``, ``data: <alert JSON>``.

    The first event is ``event: ready`` whose ``id`` is where the stream stands (after
    the replay, or the newest event for a fresh stream). Reconnect with ``Last-Event-ID``
    (browsers do) or ``?after=`` to receive what was missed. Only events of enterprises
    the caller may see are sent (ids skip the others).

    The stream lives no longer than its token: it is re-checked every
    ``OFFSITE_FEED_RECHECK_S`` and before an event is sent (at most once a second), and
    after logout, deactivation or expiry the stream sends ``event: end`` with
    ``{"reason": "signed_out"}`` and closes. When the server shuts down, or the feed lost
    events (its database connection dropped, the client fell behind), it sends
    ``event: end`` with ``{"reason": "reconnect"}`` and the ``id`` to resume from.
    While shutting down, a new stream is answered 503.
    """
    if feed.draining:
        raise HTTPException(503, "the server is shutting down", headers={"Retry-After": "2"})
    start_after = last_event_id if last_event_id is not None else after
    recheck_s = settings.feed_recheck_s
    checked = time.monotonic()

    async def holds(*, event: bool) -> bool:
        nonlocal checked
        now = time.monotonic()
        if now - checked < (min(EVENT_RECHECK_S, recheck_s) if event else recheck_s):
            return True
        checked = now
        return await still_holds(request, who)

    async def events() -> AsyncIterator[bytes]:
        q = feed.subscribe()
        try:
            yield b"retry: 2000\n\n"
            seen = -1
            # a fresh stream stands at the newest event: a client that reconnects from
            # here loses nothing that happened in between (events already queued still go)
            base = await feed.last_id() if start_after is None else -1
            if start_after is not None:
                seen = start_after
                while True:  # page through everything missed, not just the first page
                    page = await feed.replay(seen)
                    for eid, data in page:
                        seen = eid
                        if not _visible(who, data):
                            continue
                        yield f"id: {eid}\nevent: alert\ndata: {data}\n\n".encode()
                    if len(page) < REPLAY_PAGE:
                        break
            yield f"id: {max(seen, base)}\nevent: ready\ndata: {{}}\n\n".encode()
            while True:
                if await request.is_disconnected():
                    return
                if not await holds(event=False):
                    yield end_event(END_SIGNED_OUT, max(seen, base))
                    return
                try:
                    item = await asyncio.wait_for(q.get(), min(HEARTBEAT_S, recheck_s))
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if item is None:  # feed stopping, or we were too slow: client resumes
                    yield end_event(END_RECONNECT, max(seen, base))
                    return
                eid, data = item
                if eid <= seen or not _visible(who, data):
                    continue
                if not await holds(event=True):
                    yield end_event(END_SIGNED_OUT, max(seen, base))
                    return
                yield f"id: {eid}\nevent: alert\ndata: {data}\n\n".encode()
        finally:
            feed.unsubscribe(q)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/{alert_id}",
    response_model=AlertDetail,
    summary="One alert with its history",
    responses={404: {"description": "no such alert"}},
)
async def get_alert(
    alert_id: int, conn: Conn, who: Annotated[Principal, Depends(ANY_USER)]
) -> dict:
    row = await queries.alerts.get_alert(conn, alert_id)
    visible_or_404(who, row["enterprise_id"] if row else None, f"alert {alert_id}")
    assert row is not None
    return row


async def _act(
    conn: Conn,
    alert_id: int,
    target: AlertState | None,
    body: AlertAction | AlertAssign | AlertComment,
    who: Principal,
) -> dict:
    """A person's step on an alert (``target`` None: a comment), audited in the same
    transaction; the actor is the signed-in user."""
    visible_or_404(who, await queries.alerts.alert_enterprise(conn, alert_id), f"alert {alert_id}")
    assignee = body.assignee if isinstance(body, AlertAssign) else None
    action = (
        "comment" if target is None else ("reopen" if target is AlertState.OPEN else target.value)
    )
    try:
        async with conn.transaction():
            found = await alert_store.act(conn, alert_id, target, who.user_id, body.note, assignee)
            if found:
                data: dict[str, str | None] = {"note": body.note}
                if assignee is not None:
                    data["assignee"] = assignee
                await audit.append(conn, who.user_id, f"alert.{action}", f"alert:{alert_id}", data)
    except InvalidTransition as exc:
        raise HTTPException(409, str(exc)) from exc
    if not found:
        raise HTTPException(404, f"alert {alert_id} not found")
    row = await queries.alerts.get_alert(conn, alert_id)
    assert row is not None
    return row


@router.post(
    "/{alert_id}/acknowledge",
    response_model=AlertDetail,
    responses={
        404: {"description": "no such alert"},
        409: {"description": "not allowed in the alert's state"},
    },
)
async def acknowledge(
    alert_id: int, body: AlertAction, conn: Conn, who: Annotated[Principal, Depends(STAFF)]
) -> dict:
    return await _act(conn, alert_id, AlertState.ACKNOWLEDGED, body, who)


@router.post(
    "/{alert_id}/resolve",
    response_model=AlertDetail,
    responses={
        404: {"description": "no such alert"},
        409: {"description": "not allowed in the alert's state"},
    },
)
async def resolve(
    alert_id: int, body: AlertAction, conn: Conn, who: Annotated[Principal, Depends(STAFF)]
) -> dict:
    return await _act(conn, alert_id, AlertState.RESOLVED, body, who)


@router.post(
    "/{alert_id}/assign",
    response_model=AlertDetail,
    responses={
        404: {"description": "no such alert"},
        409: {"description": "not allowed in the alert's state"},
        422: {"description": "the assignee is not an active user who may be assigned work"},
    },
)
async def assign(
    alert_id: int, body: AlertAssign, conn: Conn, who: Annotated[Principal, Depends(STAFF)]
) -> dict:
    """Hand an active alert to someone (again, to re-assign it): an active user whose
    role may take work (an unknown name would leave the alert with nobody)."""
    await check_assignee(conn, body.assignee)
    return await _act(conn, alert_id, AlertState.ASSIGNED, body, who)


@router.post(
    "/{alert_id}/reopen",
    response_model=AlertDetail,
    responses={
        404: {"description": "no such alert"},
        409: {"description": "not allowed in the alert's state"},
    },
)
async def reopen(
    alert_id: int, body: AlertAction, conn: Conn, who: Annotated[Principal, Depends(STAFF)]
) -> dict:
    """Reopen a resolved or cleared alert (the engine also does, when its condition
    returns within OFFSITE_ALERT_REOPEN_S)."""
    return await _act(conn, alert_id, AlertState.OPEN, body, who)


@router.post(
    "/{alert_id}/comments",
    response_model=AlertDetail,
    responses={404: {"description": "no such alert"}},
)
async def comment(
    alert_id: int, body: AlertComment, conn: Conn, who: Annotated[Principal, Depends(ANY_USER)]
) -> dict:
    """Add a comment to the alert's history, in any state: regulators, inspectors, and
    the enterprise answering for its own alert."""
    return await _act(conn, alert_id, None, body, who)


def _visible(who: Principal, data: str) -> bool:
    """An event's JSON carries its enterprise; parse it only when the caller is scoped."""
    return who.visible is None or json.loads(data).get("enterprise_id") in who.visible

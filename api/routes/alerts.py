"""The anomaly feed: list, detail, acknowledge, resolve, and the live SSE stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from api import queries
from api.deps import Conn, FeedDep
from api.models import (
    AlertAction,
    AlertAssign,
    AlertComment,
    AlertDetail,
    AlertPublic,
    Severity,
    State,
)
from rules.alerts import AlertState
from rules.errors import InvalidTransition

router = APIRouter(prefix="/api/alerts", tags=["alerts"])
HEARTBEAT_S = 15.0
REPLAY_PAGE = 1000


@router.get("", response_model=list[AlertPublic], summary="List and filter alerts")
async def list_alerts(
    conn: Conn,
    state: Annotated[list[State] | None, Query(description="repeatable")] = None,
    severity: Severity | None = None,
    enterprise: str | None = None,
    mn: str | None = None,
    rule: str | None = None,
    since: Annotated[datetime | None, Query(description="last seen at or after")] = None,
    until: Annotated[datetime | None, Query(description="first seen before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict]:
    return await queries.list_alerts(conn, states=list(state) if state else None,
                                     severity=severity, enterprise=enterprise, mn=mn, rule=rule,
                                     since=since, until=until, limit=limit, offset=offset)


@router.get("/stream", summary="Live alert events (Server-Sent Events)",
            response_class=StreamingResponse)
async def stream(request: Request, feed: FeedDep,
                 last_event_id: Annotated[int | None, Header()] = None,
                 after: Annotated[int | None, Query(description="replay events after this id")]
                 = None) -> StreamingResponse:
    """Each event is ``id: <event id>``, ``event: alert``, ``data: <alert JSON>``.

    Reconnect with ``Last-Event-ID`` (browsers do) to receive what was missed.
    """
    start_after = last_event_id if last_event_id is not None else after

    async def events() -> AsyncIterator[bytes]:
        q = feed.subscribe()
        try:
            yield b"retry: 2000\n\n"
            seen = -1
            if start_after is not None:
                seen = start_after
                while True:  # page through everything missed, not just the first page
                    page = await feed.replay(seen)
                    for eid, data in page:
                        seen = eid
                        yield f"id: {eid}\nevent: alert\ndata: {data}\n\n".encode()
                    if len(page) < REPLAY_PAGE:
                        break
            while True:
                if await request.is_disconnected():
                    return
                try:
                    item = await asyncio.wait_for(q.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if item is None:  # feed stopping, or we were too slow: client reconnects
                    return
                eid, data = item
                if eid <= seen:
                    continue
                yield f"id: {eid}\nevent: alert\ndata: {data}\n\n".encode()
        finally:
            feed.unsubscribe(q)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/{alert_id}", response_model=AlertDetail, summary="One alert with its history",
            responses={404: {"description": "no such alert"}})
async def get_alert(alert_id: int, conn: Conn) -> dict:
    row = await queries.get_alert(conn, alert_id)
    if row is None:
        raise HTTPException(404, f"alert {alert_id} not found")
    return row


async def _act(conn: Conn, alert_id: int, target: AlertState | None,
               body: AlertAction | AlertAssign | AlertComment) -> dict:
    assignee = body.assignee if isinstance(body, AlertAssign) else None
    try:
        found = await queries.act_on_alert(conn, alert_id, target, body.by, body.note,
                                           assignee)
    except InvalidTransition as exc:
        raise HTTPException(409, str(exc)) from exc
    if not found:
        raise HTTPException(404, f"alert {alert_id} not found")
    row = await queries.get_alert(conn, alert_id)
    assert row is not None
    return row


@router.post("/{alert_id}/acknowledge", response_model=AlertDetail,
             responses={404: {"description": "no such alert"},
                        409: {"description": "not allowed in the alert's state"}})
async def acknowledge(alert_id: int, body: AlertAction, conn: Conn) -> dict:
    return await _act(conn, alert_id, AlertState.ACKNOWLEDGED, body)


@router.post("/{alert_id}/resolve", response_model=AlertDetail,
             responses={404: {"description": "no such alert"},
                        409: {"description": "not allowed in the alert's state"}})
async def resolve(alert_id: int, body: AlertAction, conn: Conn) -> dict:
    return await _act(conn, alert_id, AlertState.RESOLVED, body)


@router.post("/{alert_id}/assign", response_model=AlertDetail,
             responses={404: {"description": "no such alert"},
                        409: {"description": "not allowed in the alert's state"}})
async def assign(alert_id: int, body: AlertAssign, conn: Conn) -> dict:
    """Hand an active alert to someone (again, to re-assign it)."""
    return await _act(conn, alert_id, AlertState.ASSIGNED, body)


@router.post("/{alert_id}/reopen", response_model=AlertDetail,
             responses={404: {"description": "no such alert"},
                        409: {"description": "not allowed in the alert's state"}})
async def reopen(alert_id: int, body: AlertAction, conn: Conn) -> dict:
    """Reopen a resolved or cleared alert (the engine also does, when its condition
    returns within OFFSITE_ALERT_REOPEN_S)."""
    return await _act(conn, alert_id, AlertState.OPEN, body)


@router.post("/{alert_id}/comments", response_model=AlertDetail,
             responses={404: {"description": "no such alert"}})
async def comment(alert_id: int, body: AlertComment, conn: Conn) -> dict:
    """Add a comment to the alert's history, in any state."""
    return await _act(conn, alert_id, None, body)

"""What the web console needs beyond the resource routes: its own files, alert counts
and filter choices, a device's page (latest values, data-capture rate), an enterprise's
page, and CSV exports of what each page shows.

Every read is scoped like the resource routes: another enterprise's device or site
answers 404, and exports contain only what the caller may list.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from offsite.api import queries
from offsite.api.auth import ANY_USER, PUBLIC, Principal, Role, still_holds, visible_or_404
from offsite.api.capture import active_since, capture_by_day
from offsite.api.csvout import to_csv
from offsite.api.deps import Conn, FeedDep, SettingsDep
from offsite.api.models.alerts import AlertFacets, AlertPublic, Severity, State
from offsite.api.models.devices import DeviceDetail
from offsite.api.models.enterprises import EnterpriseDetail
from offsite.api.models.overview import Overview, UnseenCriticals
from offsite.api.models.paging import MAX_OFFSET
from offsite.api.models.readings import CapturePage, ReadingPublic
from offsite.api.models.visits import RATING_FIELDS, VisitPublic
from offsite.api.overview import build_overview, site_day_start
from offsite.api.routes.alerts import END_RECONNECT, END_SIGNED_OUT, end_event
from offsite.api.routes.devices import MAX_RAW_ROWS, readings_page

router = APIRouter(tags=["console"])
STATIC = Path(str(resources.files("offsite.api").joinpath("static")))
# served as files; anything else under static/ (or outside it) answers 404
STATIC_DIRS = ("console", "vendor", "pages")
MAX_EXPORT = 100_000
MAX_CAPTURE_DAYS = 366
mimetypes.add_type("text/javascript", ".js")  # some systems map .js otherwise


@router.get("/static/{path:path}", include_in_schema=False, response_model=None)
async def static_file(path: str, _: Annotated[None, Depends(PUBLIC)]) -> FileResponse:
    """The console's modules, styles and vendored libraries (public, like the page)."""
    target = (STATIC / path).resolve()
    if (
        not path.startswith(tuple(d + "/" for d in STATIC_DIRS))
        or not target.is_relative_to(STATIC.resolve())
        or not target.is_file()
    ):
        raise HTTPException(404, "no such file")
    media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(target, media_type=media, headers={"Cache-Control": "no-cache"})


@router.get(
    "/api/alert-counts",
    response_model=dict[str, int],
    summary="Alerts per state under the feed's filters",
)
async def alert_counts(
    conn: Conn,
    who: Annotated[Principal, Depends(ANY_USER)],
    severity: Severity | None = None,
    enterprise: str | None = None,
    mn: str | None = None,
    rule: str | None = None,
    pollutant: str | None = None,
) -> dict[str, int]:
    return await queries.alerts.alert_counts(
        conn,
        severity=severity,
        enterprise=enterprise,
        mn=mn,
        rule=rule,
        pollutant=pollutant,
        visible=who.scope,
    )


@router.get(
    "/api/alert-facets",
    response_model=AlertFacets,
    summary="Rules and pollutants among the caller's alerts (filter choices)",
)
async def alert_facets(conn: Conn, who: Annotated[Principal, Depends(ANY_USER)]) -> dict:
    return await queries.alerts.alert_facets(conn, who.scope)


@router.get(
    "/api/overview",
    response_model=Overview,
    summary="Tiles per region and site, devices with a status, unacknowledged criticals",
    description="Criticals stay listed until a person acknowledges them, even when the "
    "engine has cleared them. Data capture today counts from the sites' local midnight.",
)
async def overview(conn: Conn, who: Annotated[Principal, Depends(ANY_USER)]) -> dict:
    now = datetime.now(UTC)
    devices = await queries.overview.devices(conn, who.scope)
    alerts = await queries.overview.open_alerts(conn, who.scope)
    received = await queries.overview.received_since(conn, site_day_start(now))
    count, unseen = await queries.overview.unseen_criticals(conn, who.scope)
    return {
        **build_overview(devices, alerts, received, now),
        "unseen_count": count,
        "unseen": unseen,
    }


@router.get(
    "/api/alert-unseen",
    response_model=UnseenCriticals,
    summary="Critical alerts nobody has acknowledged (the console's banner)",
    description="Open criticals, and criticals the engine cleared before a person "
    "acknowledged them: they stay until acknowledged, across reloads.",
)
async def alert_unseen(
    conn: Conn,
    who: Annotated[Principal, Depends(ANY_USER)],
    limit: Annotated[int, Query(ge=1, le=100)] = 5,
) -> dict:
    count, alerts = await queries.overview.unseen_criticals(conn, who.scope, limit)
    return {"count": count, "alerts": alerts}


async def _device(conn: Conn, who: Principal, mn: str) -> dict:
    info = await queries.devices.device_info(conn, mn)
    visible_or_404(who, info["enterprise_id"] if info else None, f"device {mn}")
    assert info is not None
    return info


@router.get(
    "/api/devices/{mn}",
    response_model=DeviceDetail,
    summary="A device: its point, limits and latest value per pollutant with flags",
    responses={404: {"description": "no such device"}},
)
async def device_detail(mn: str, conn: Conn, who: Annotated[Principal, Depends(ANY_USER)]) -> dict:
    info = await _device(conn, who, mn)
    info["latest"] = (
        await queries.readings.latest_values(conn, mn, info["last_ts"])
        if info["last_ts"] is not None
        else []
    )
    return info


def _json_value(v: object) -> str:
    return v.isoformat() if isinstance(v, datetime) else str(v)


DEVICE_POLL_S = 2.0  # how often an open device page's stream looks for a newer reading
DEVICE_HEARTBEAT_S = 15.0


@router.get(
    "/api/devices/{mn}/stream",
    response_class=StreamingResponse,
    summary="A device's new readings, live (Server-Sent Events)",
    responses={404: {"description": "no such device"}},
)
async def device_stream(
    mn: str,
    request: Request,
    settings: SettingsDep,
    feed: FeedDep,
    who: Annotated[Principal, Depends(ANY_USER)],
    since: Annotated[
        datetime | None,
        Query(description="the newest reading time the client shows (default: now's)"),
    ] = None,
) -> StreamingResponse:
    """``event: reading`` with ``{"mn", "last_ts", "latest"}`` (as ``GET
    /api/devices/{mn}``) whenever the device's newest reading differs from ``since`` (a
    page passes the one it drew, so nothing between its load and the stream is missed)
    or from the last such event; ``event: end`` as the alert stream's (``signed_out`` when
    the token stops holding, ``reconnect`` when the server shuts down).

    Ingest sends no notification per reading, so each stream looks at the device's
    status every couple of seconds (one indexed row) on a pooled connection it does not
    keep between looks."""
    if since is not None and since.tzinfo is None:
        raise HTTPException(422, "since needs a time zone (e.g. Z or +08:00)")
    pool = request.app.state.pool
    async with pool.connection() as conn:
        info = await _device(conn, who, mn)
    if feed.draining:
        raise HTTPException(503, "the server is shutting down", headers={"Retry-After": "2"})

    async def events() -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        last = since if since is not None else info["last_ts"]
        checked = quiet = time.monotonic()
        while True:
            await asyncio.sleep(DEVICE_POLL_S)
            if await request.is_disconnected():
                return
            if feed.draining:
                yield end_event(END_RECONNECT, -1)
                return
            now = time.monotonic()
            if now - checked >= settings.feed_recheck_s:
                checked = now
                if not await still_holds(request, who):
                    yield end_event(END_SIGNED_OUT, -1)
                    return
            try:
                async with pool.connection() as conn:
                    ts = await queries.devices.last_reading_at(conn, mn)
                    if ts is None or ts == last:
                        latest = None
                    else:
                        latest = await queries.readings.latest_values(conn, mn, ts)
            except psycopg.OperationalError:  # the database is away: look again later
                continue
            if latest is None:
                if now - quiet >= DEVICE_HEARTBEAT_S:
                    quiet = now
                    yield b": keep-alive\n\n"
                continue
            last, quiet = ts, now
            data = json.dumps(
                {"mn": mn, "last_ts": ts, "latest": latest},
                default=_json_value,
                separators=(",", ":"),
            )
            yield f"event: reading\ndata: {data}\n\n".encode()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/api/devices/{mn}/capture",
    response_model=CapturePage,
    summary="Data-capture rate per UTC day: reporting slots received (and valid) "
    "against those the device's interval expects",
    responses={404: {"description": "no such device"}, 422: {"description": "bad time range"}},
)
async def device_capture(
    mn: str,
    conn: Conn,
    who: Annotated[Principal, Depends(ANY_USER)],
    start: Annotated[datetime | None, Query(description="default end − 7 days")] = None,
    end: Annotated[datetime | None, Query(description="default now")] = None,
) -> dict:
    now = datetime.now(UTC)
    end = end or now
    start = start or end - timedelta(days=7)
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(422, "start and end need a time zone (e.g. Z or +08:00)")
    if start >= end:
        raise HTTPException(422, "start must be before end")
    if end - start > timedelta(days=MAX_CAPTURE_DAYS):
        raise HTTPException(422, f"at most {MAX_CAPTURE_DAYS} days at once")
    info = await _device(conn, who, mn)
    counts = await queries.readings.day_counts(conn, mn, start, end)
    days = capture_by_day(
        counts,
        info["interval_s"],
        start,
        end,
        now,
        since=active_since(info["registered_at"], counts),
    )
    expected = sum(d.expected for d in days)
    total = (
        None
        if expected == 0
        else (
            min(1.0, sum(d.received for d in days) / expected),
            min(1.0, sum(d.valid for d in days) / expected),
        )
    )
    return {
        "mn": mn,
        "interval_s": info["interval_s"],
        "start": start,
        "end": end,
        "days": days,
        "capture_rate": total[0] if total else None,
        "valid_rate": total[1] if total else None,
    }


@router.get(
    "/api/enterprises/{enterprise_id}",
    response_model=EnterpriseDetail,
    summary="An enterprise's monitoring points, limits and devices",
    responses={404: {"description": "no such enterprise"}},
)
async def enterprise_detail(
    enterprise_id: str, conn: Conn, who: Annotated[Principal, Depends(ANY_USER)]
) -> dict:
    visible_or_404(who, enterprise_id, f"enterprise {enterprise_id}")
    ent = await queries.enterprises.enterprise_detail(conn, enterprise_id)
    visible_or_404(who, enterprise_id if ent else None, f"enterprise {enterprise_id}")
    assert ent is not None
    return ent


def _csv(text: str, name: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}}}}


@router.get(
    "/api/export/alerts.csv",
    response_class=Response,
    responses=CSV,
    summary="The alerts a feed filter selects, as CSV",
)
async def export_alerts(
    conn: Conn,
    who: Annotated[Principal, Depends(ANY_USER)],
    state: Annotated[list[State] | None, Query(description="repeatable")] = None,
    severity: Severity | None = None,
    enterprise: str | None = None,
    mn: str | None = None,
    rule: str | None = None,
    pollutant: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EXPORT)] = 10_000,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    rows = await queries.alerts.list_alerts(
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
    )
    return _csv(to_csv(list(AlertPublic.model_fields), rows), "alerts.csv")


@router.get(
    "/api/export/visits.csv",
    response_class=Response,
    responses=CSV,
    summary="Visits (as GET /api/visits selects them), as CSV",
)
async def export_visits(
    conn: Conn,
    who: Annotated[Principal, Depends(ANY_USER)],
    enterprise: str | None = None,
    inspector: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EXPORT)] = 10_000,
) -> Response:
    # inspectors see only their own visits, and never how the enterprise rated them
    hidden = RATING_FIELDS if who.role is Role.INSPECTOR else frozenset()
    columns = [c for c in VisitPublic.model_fields if c not in hidden]
    if who.role is Role.INSPECTOR:
        if inspector is not None and inspector != who.user_id:
            return _csv(to_csv(columns, []), "visits.csv")
        inspector = who.user_id
    rows = await queries.visits.list_visits(
        conn, enterprise, inspector, limit, 0, visible=who.scope
    )
    columns += [c for c in (rows[0] if rows else {}) if c not in columns and c not in hidden]
    return _csv(to_csv(columns, rows), "visits.csv")


@router.get(
    "/api/export/devices/{mn}/readings.csv",
    response_class=Response,
    responses={
        **CSV,
        404: {"description": "no such device"},
        422: {"description": "bad time range or bucket"},
    },
    summary="A device's readings (raw, or avg/min/max per bucket), as CSV",
)
async def export_readings(
    mn: str,
    conn: Conn,
    who: Annotated[Principal, Depends(ANY_USER)],
    start: datetime | None = None,
    end: datetime | None = None,
    pollutant: str | None = None,
    bucket: Annotated[int | None, Query(ge=1, le=31 * 86400)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RAW_ROWS)] = MAX_RAW_ROWS,
) -> Response:
    page = await readings_page(conn, who, mn, start, end, pollutant, bucket, limit)
    if bucket is None:
        text = to_csv(list(ReadingPublic.model_fields), page["readings"])
    else:
        text = to_csv(["bucket", "pollutant", "avg", "min", "max", "count"], page["buckets"])
    return _csv(text, f"{mn}-readings.csv")

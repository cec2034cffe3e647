"""Cases: discovery → verification (remote) → rectification → feedback → closed.

A regulator opens a case from alerts of one enterprise (the engine opens some by itself,
store/cases.py). The enterprise is told and answers by a deadline with an explanation
and attachments (kept with their SHA-256); the regulator accepts or rejects each answer;
a missing answer escalates (``api/app.py`` runs the check on a timer). When remote
verification cannot settle it, an inspection task sends someone to the site. Every step
is a ``case_steps`` row and an audit entry.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from offsite.api import queries
from offsite.api.attachments import stored_file_response
from offsite.api.auth import ANY_USER, ENTERPRISE, STAFF, Principal, Role, visible_or_404
from offsite.api.deps import AcceptLanguage, Conn, SettingsDep
from offsite.api.guard import UPLOAD_BODY
from offsite.api.messages import localise_step
from offsite.api.models.cases import (
    CaseCreate,
    CaseDetail,
    CaseMove,
    CasePublic,
    ResponseCreate,
    Verdict,
)
from offsite.api.models.notifications import NotificationPublic
from offsite.api.models.paging import MAX_OFFSET
from offsite.api.models.tasks import TaskCreate, TaskPublic
from offsite.rules.cases import move
from offsite.rules.errors import InvalidTransition
from offsite.store import cases as case_store

router = APIRouter(prefix="/api/cases", tags=["cases"])


async def _case(conn: Conn, case_id: int, who: Principal, *, lock: bool = False) -> dict:
    case = await queries.cases.get_case(conn, case_id, lock=lock)
    visible_or_404(who, case["enterprise_id"] if case else None, f"case {case_id}")
    assert case is not None
    return case


@router.post(
    "",
    response_model=CaseDetail,
    status_code=201,
    summary="Open a case from alerts of one enterprise",
    responses={
        409: {"description": "an alert is in a case already"},
        422: {"description": "unknown alerts, or of several enterprises"},
    },
)
async def open_case(
    body: CaseCreate,
    conn: Conn,
    settings: SettingsDep,
    who: Annotated[Principal, Depends(STAFF)],
    lang: AcceptLanguage,
) -> dict:
    ids = sorted(set(body.alert_ids))
    owners = await queries.alerts.alert_owners(conn, ids)
    missing = [a for a in ids if a not in owners or not who.can_see(owners[a])]
    if missing:
        raise HTTPException(422, f"alert(s) not found: {', '.join(map(str, missing))}")
    enterprises = sorted(set(owners.values()))
    if len(enterprises) != 1:
        raise HTTPException(
            422, f"a case is about one enterprise; these alerts are of {', '.join(enterprises)}"
        )
    taken = await queries.cases.alerts_in_cases(conn, ids)
    if taken:
        raise HTTPException(
            409,
            "alert(s) already in a case: "
            + ", ".join(f"{a} (case {c})" for a, c in sorted(taken.items())),
        )
    hours = body.response_hours or settings.case_response_h
    due = datetime.now(UTC) + timedelta(hours=hours)
    title = body.title or f"alerts {', '.join(map(str, ids))}"
    async with conn.transaction():
        case_id = await case_store.create_case(conn, enterprises[0], title, ids, who.user_id, due)
    return await _detail(conn, case_id, who, lang)


@router.get("", response_model=list[CasePublic], summary="Cases, newest first (your scope)")
async def list_cases(
    conn: Conn,
    who: Annotated[Principal, Depends(ANY_USER)],
    enterprise: str | None = None,
    state: Annotated[
        str | None, Query(pattern="^(discovered|verifying|rectifying|feedback|closed)$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict]:
    return await queries.cases.list_cases(conn, who.scope, enterprise, state, limit, offset)


@router.get(
    "/notifications",
    response_model=list[NotificationPublic],
    summary="What the enterprise (or the regulators) were told, newest first",
    description="An enterprise sees the notices addressed to it.",
)
async def notifications(
    conn: Conn,
    who: Annotated[Principal, Depends(ANY_USER)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    audience = "enterprise" if who.role is Role.ENTERPRISE else None
    return await queries.notifications.list_notifications(conn, who.scope, audience, limit)


@router.get(
    "/{case_id}",
    response_model=CaseDetail,
    responses={404: {"description": "none"}},
    summary="A case with its alerts, steps, responses and tasks",
)
async def get_case(
    case_id: int, conn: Conn, who: Annotated[Principal, Depends(ANY_USER)], lang: AcceptLanguage
) -> dict:
    return await _detail(conn, case_id, who, lang)


async def _detail(conn: Conn, case_id: int, who: Principal, lang: str | None) -> dict:
    """A case as ``who`` may see it: an enterprise is not told of an inspection before
    the visit (``queries.cases.as_enterprise_sees``); the steps the server wrote read in
    the caller's language (people's notes stay as written)."""
    detail = await queries.cases.case_detail(conn, await _case(conn, case_id, who))
    if who.role is Role.ENTERPRISE:
        detail = queries.cases.as_enterprise_sees(detail)
    detail["steps"] = [
        {**s, "note": localise_step(s["kind"], s["note"], lang)} for s in detail["steps"]
    ]
    detail["photos"] = await queries.visits.photos_of_case(conn, case_id)
    return detail


@router.post(
    "/{case_id}/move",
    response_model=CaseDetail,
    summary="Move a case to its next state (with a note saying why)",
    responses={
        404: {"description": "no such case"},
        409: {"description": "the state does not allow it"},
    },
)
async def move_case(
    case_id: int,
    body: CaseMove,
    conn: Conn,
    who: Annotated[Principal, Depends(STAFF)],
    lang: AcceptLanguage,
) -> dict:
    async with conn.transaction():
        case = await _case(conn, case_id, who, lock=True)
        try:
            move(
                case["state"],
                body.to,
                open_tasks=await queries.cases.open_tasks_of_case(conn, case_id),
                note=body.note,
            )
        except InvalidTransition as exc:
            raise HTTPException(409, str(exc)) from exc
        await case_store.move_case(conn, case, body.to, who.user_id, body.note)
    return await _detail(conn, case_id, who, lang)


@router.post(
    "/{case_id}/responses",
    response_model=CaseDetail,
    status_code=201,
    summary="The enterprise answers: an explanation and attachments (base64)",
    openapi_extra=UPLOAD_BODY,
    responses={
        404: {"description": "no such case of this enterprise"},
        409: {"description": "the case is closed, or an attachment quota would be passed"},
        413: {"description": "an attachment (or the request) is too large"},
        422: {"description": "an attachment is not base64"},
    },
)
async def respond(
    case_id: int,
    body: ResponseCreate,
    conn: Conn,
    settings: SettingsDep,
    who: Annotated[Principal, Depends(ENTERPRISE)],
    lang: AcceptLanguage,
) -> dict:
    files = []
    for a in body.attachments:
        try:
            content = base64.b64decode(a.content_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise HTTPException(422, f"attachment {a.filename!r} is not base64: {exc}") from exc
        if len(content) > settings.attachment_max_bytes:
            raise HTTPException(
                413,
                f"attachment {a.filename!r} has {len(content)} bytes; "
                f"at most {settings.attachment_max_bytes}",
            )
        files.append((a.filename, a.content_type, content))
    adding = sum(len(f[2]) for f in files)
    async with conn.transaction():
        case = await _case(conn, case_id, who, lock=True)
        if case["state"] == "closed":
            raise HTTPException(409, f"case {case_id} is closed")
        if adding:
            used_case, used_enterprise = await queries.cases.attachment_usage(
                conn, case_id, case["enterprise_id"]
            )
            for what, used, quota, setting in (
                (f"case {case_id}", used_case, settings.attachment_case_max_bytes, "CASE"),
                (
                    f"enterprise {case['enterprise_id']}",
                    used_enterprise,
                    settings.attachment_enterprise_max_bytes,
                    "ENTERPRISE",
                ),
            ):
                if used + adding > quota:
                    raise HTTPException(
                        409,
                        f"attachment quota: {what} holds {used} bytes of attachments; "
                        f"{adding} more would pass its {quota} "
                        f"(OFFSITE_ATTACHMENT_{setting}_MAX_BYTES)",
                    )
        await case_store.add_response(conn, case, who.user_id, body.explanation, files)
    return await _detail(conn, case_id, who, lang)


@router.post(
    "/{case_id}/responses/{response_id}/verdict",
    response_model=CaseDetail,
    summary="Accept or reject the enterprise's response",
    responses={
        404: {"description": "no such case or response"},
        409: {"description": "already judged"},
    },
)
async def verdict(
    case_id: int,
    response_id: int,
    body: Verdict,
    conn: Conn,
    who: Annotated[Principal, Depends(STAFF)],
    lang: AcceptLanguage,
) -> dict:
    async with conn.transaction():
        case = await _case(conn, case_id, who, lock=True)
        resp = await queries.cases.get_response(conn, case_id, response_id, lock=True)
        if resp is None:
            raise HTTPException(404, f"response {response_id} of case {case_id} not found")
        if resp["verdict"] is not None:
            raise HTTPException(409, f"response {response_id} was already {resp['verdict']}")
        new_due = (
            None
            if body.accept or body.respond_again_hours is None
            else datetime.now(UTC) + timedelta(hours=body.respond_again_hours)
        )
        await case_store.judge_response(
            conn, case, response_id, body.accept, who.user_id, body.note, new_due
        )
    return await _detail(conn, case_id, who, lang)


@router.get(
    "/{case_id}/attachments/{attachment_id}",
    response_class=Response,
    summary="An attachment as it was sent (X-Content-SHA256 to check it), as a download",
    description="Served as its declared type only for PNG, JPEG, GIF, WebP and PDF whose "
    "first bytes prove it; as application/octet-stream otherwise.",
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {"description": "none"}},
)
async def get_attachment(
    case_id: int, attachment_id: int, conn: Conn, who: Annotated[Principal, Depends(ANY_USER)]
) -> Response:
    await _case(conn, case_id, who)
    att = await queries.cases.attachment(conn, case_id, attachment_id)
    if att is None:
        raise HTTPException(404, f"attachment {attachment_id} not found")
    return stored_file_response(att)


@router.post(
    "/{case_id}/tasks",
    response_model=TaskPublic,
    status_code=201,
    summary="Send an inspector: remote verification cannot settle the case",
    responses={
        404: {"description": "no such case"},
        409: {"description": "the case is closed"},
        422: {"description": "the assignee is not an active inspector of the site's region"},
    },
)
async def create_task(
    case_id: int, body: TaskCreate, conn: Conn, who: Annotated[Principal, Depends(STAFF)]
) -> dict:
    async with conn.transaction():
        case = await _case(conn, case_id, who, lock=True)
        if case["state"] == "closed":
            raise HTTPException(409, f"case {case_id} is closed")
        if not await queries.users.inspector_covers(conn, body.assignee, case["enterprise_id"]):
            raise HTTPException(
                422,
                f"{body.assignee!r} is not an active inspector of the region of "
                f"enterprise {case['enterprise_id']}",
            )
        due = (
            None if body.due_hours is None else datetime.now(UTC) + timedelta(hours=body.due_hours)
        )
        task_id = await queries.tasks.create_task(
            conn, case["enterprise_id"], case_id, None, body.reason, body.assignee, who.user_id, due
        )
    task = await queries.tasks.get_task(conn, task_id)
    assert task is not None
    return task

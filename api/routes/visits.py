"""Scan code to enter: check in with the site's signed QR token, check out with findings.

The inspector is whoever is signed in (an inspector's active token), never a name in the
request body. Scanning the same code twice within ``checkin_replay_s`` (a retry over a
bad network, a double tap) returns the open visit instead of creating a second one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from psycopg import AsyncConnection

from offsite.api import queries
from offsite.api.attachments import served_type, stored_file_response
from offsite.api.auth import ANY_USER, ENTERPRISE, INSPECTOR, STAFF, Principal, Role, visible_or_404
from offsite.api.deps import Conn, KeyRingDep, SettingsDep
from offsite.api.errors import TokenError
from offsite.api.guard import UPLOAD_BODY
from offsite.api.models.paging import MAX_OFFSET
from offsite.api.models.visit_guard import NoDisturbance, NoDisturbancePublic, RefusalPublic
from offsite.api.models.visits import (
    RATING_FIELDS,
    CheckIn,
    CheckOut,
    PhotoIn,
    ScanPreview,
    ScanRequest,
    VisitPublic,
    VisitRating,
)
from offsite.api.qr import KeyRing, extract_token
from offsite.core.credentials import token_digest
from offsite.core.settings import Settings
from offsite.rules.visit_guard import GuardPolicy, Justification, judge
from offsite.store import audit

router = APIRouter(prefix="/api/visits", tags=["visits"])


# the frequency guard's list and record (paths of two segments: no clash with /{visit_id})
@router.get(
    "/guard/no-disturbance",
    response_model=list[NoDisturbancePublic],
    summary="Enterprises not to be visited without a recorded reason",
)
async def no_disturbance_list(
    conn: Conn, who: Annotated[Principal, Depends(ANY_USER)]
) -> list[dict]:
    return await queries.visit_guard.list_no_disturbance(conn, who.scope)


@router.put(
    "/guard/no-disturbance/{enterprise_id}",
    status_code=204,
    response_class=Response,
    summary="Put an enterprise on the no-disturbance list (or change its entry)",
    responses={404: {"description": "no such enterprise in your region"}},
)
async def no_disturbance_set(
    enterprise_id: str, body: NoDisturbance, conn: Conn, who: Annotated[Principal, Depends(STAFF)]
) -> Response:
    known = await queries.enterprises.enterprise_exists(conn, enterprise_id)
    visible_or_404(who, enterprise_id if known else None, f"enterprise {enterprise_id}")
    await queries.visit_guard.set_no_disturbance(
        conn, enterprise_id, body.reason, who.user_id, body.until
    )
    return Response(status_code=204)


@router.delete(
    "/guard/no-disturbance/{enterprise_id}",
    status_code=204,
    response_class=Response,
    summary="Take an enterprise off the list",
    responses={404: {"description": "not on the list (in your region)"}},
)
async def no_disturbance_clear(
    enterprise_id: str, conn: Conn, who: Annotated[Principal, Depends(STAFF)]
) -> Response:
    visible_or_404(who, enterprise_id, f"enterprise {enterprise_id}")
    if not await queries.visit_guard.clear_no_disturbance(conn, enterprise_id, who.user_id):
        raise HTTPException(404, f"enterprise {enterprise_id} is not on the list")
    return Response(status_code=204)


@router.get(
    "/guard/refusals",
    response_model=list[RefusalPublic],
    summary="Check-ins the frequency guard refused",
)
async def refusals(
    conn: Conn,
    who: Annotated[Principal, Depends(STAFF)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    return await queries.visit_guard.list_refusals(conn, who.scope, limit)


def _policy(settings: Settings) -> GuardPolicy:
    return GuardPolicy(settings.visit_guard_days, settings.visit_guard_max)


@router.post(
    "/scan",
    response_model=ScanPreview,
    summary="What a scanned code leads to, before checking in",
    description="Verifies the site's QR token like check-in does and records nothing: "
    "the inspector's open tasks at the site, its open cases and open visits "
    "(to join), and whether the frequency guard will ask for a reason.",
    responses={
        400: {"description": "malformed token"},
        401: {"description": "forged, expired or revoked token, or not signed in"},
        403: {"description": "not an inspector, or the site is outside the inspector's region"},
        404: {"description": "token names no known enterprise"},
    },
)
async def scan_preview(
    body: ScanRequest,
    conn: Conn,
    keyring: KeyRingDep,
    settings: SettingsDep,
    who: Annotated[Principal, Depends(INSPECTOR)],
) -> dict:
    enterprise_id = await _scanned_site(conn, keyring, body.token, who)
    ent = await queries.enterprises.enterprise_detail(conn, enterprise_id)
    assert ent is not None
    tasks = await queries.tasks.list_tasks(conn, who.scope, who.user_id, "open", 1000, 0, None)
    cases = await queries.cases.list_cases(conn, who.scope, enterprise_id, None, 100, 0)
    visits = await queries.visits.list_visits(conn, enterprise_id, None, 50, 0, visible=who.scope)
    async with conn.transaction():
        recent = await queries.visit_guard.recent_visits(
            conn, enterprise_id, settings.visit_guard_days
        )
        listed = await queries.visit_guard.on_no_disturbance(conn, enterprise_id)
    policy = _policy(settings)
    plain = judge(policy, recent, listed, Justification(None, None, None))
    return {
        "enterprise_id": enterprise_id,
        "enterprise_name": ent["name"],
        "region": ent.get("region") or "",
        "my_tasks": [t for t in tasks if t["enterprise_id"] == enterprise_id],
        "open_cases": [c for c in cases if c["state"] != "closed"],
        "open_visits": await _complete(
            conn, [v for v in visits if v["checked_out_at"] is None], who
        ),
        "guard": {
            "recent_visits": recent,
            "max_visits": settings.visit_guard_max,
            "days": settings.visit_guard_days,
            "no_disturbance": listed,
            "needs_reason": not plain.allowed,
        },
    }


async def _scanned_site(conn: AsyncConnection, keyring: KeyRing, token: str, who: Principal) -> str:
    """The enterprise a scanned token names, checked as check-in checks it."""
    try:
        claims = keyring.verify(token, time.time())
    except TokenError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    generation = await queries.enterprises.qr_generation(conn, claims.enterprise_id)
    if generation is None:
        raise HTTPException(404, f"QR token names an unknown enterprise ({claims.enterprise_id})")
    if claims.generation != generation:
        raise HTTPException(401, "this printed QR code was revoked: the site has a newer one")
    if not who.can_see(claims.enterprise_id):
        raise HTTPException(403, f"enterprise {claims.enterprise_id} is outside your region")
    return str(claims.enterprise_id)


@router.post(
    "/check-in",
    response_model=VisitPublic,
    status_code=201,
    summary="Check in at a site by presenting its scanned QR token",
    description="Alone (an unscheduled visit, subject to the frequency guard), for "
    "an inspection task (``task_id``: a task visit, or an advisory one "
    "for an invitation), or joining an open visit at the same site "
    "(``join_visit_id``, or the task's open visit): one joint visit.",
    responses={
        200: {
            "model": VisitPublic,
            "description": "a replay: the open visit made with this code, "
            "or a visit this inspector is already in",
        },
        400: {"description": "malformed token"},
        401: {
            "description": "forged, altered, expired, revoked or "
            "unknown-key token, or not signed in"
        },
        403: {"description": "not an inspector"},
        404: {"description": "the token names no enterprise of the inspector's region"},
        409: {
            "description": "refused by the frequency guard (recorded): "
            "give an open case, task or complaint"
        },
        422: {
            "description": "the alert, task, case or visit is unknown, closed or of another site"
        },
    },
)
async def check_in(
    body: CheckIn,
    conn: Conn,
    keyring: KeyRingDep,
    settings: SettingsDep,
    response: Response,
    who: Annotated[Principal, Depends(INSPECTOR)],
) -> dict:
    try:
        claims = keyring.verify(body.token, time.time())
    except TokenError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    enterprise_id = claims.enterprise_id
    generation = await queries.enterprises.qr_generation(conn, enterprise_id)
    # a site outside the inspector's region answers as an unknown one does
    if generation is None or not who.can_see(enterprise_id):
        raise HTTPException(404, f"no enterprise of your region has this code ({enterprise_id})")
    if claims.generation != generation:
        raise HTTPException(401, "this printed QR code was revoked: the site has a newer one")
    digest = token_digest(extract_token(body.token))
    again = await queries.visits.replayed_visit(
        conn, who.user_id, digest, settings.checkin_replay_s
    )
    if again is not None:
        response.status_code = 200
        return await _with_people(conn, again, who)
    # an alert unknown, out of scope or of another site: one answer, which says no more
    if (
        body.alert_id is not None
        and await queries.alerts.alert_enterprise(conn, body.alert_id) != enterprise_id
    ):
        raise HTTPException(422, f"alert {body.alert_id} is not an alert of this site")
    task = await _task_here(conn, body.task_id, enterprise_id)
    joining = await _visit_to_join(conn, body, task, enterprise_id)
    if joining is not None:
        async with conn.transaction():
            added = await queries.visits.add_participant(conn, joining["id"], who.user_id, digest)
            if added:
                await audit.append(
                    conn,
                    who.user_id,
                    "visit.join",
                    f"visit:{joining['id']}",
                    {
                        "enterprise_id": enterprise_id,
                        "qr_kid": claims.kid,
                        "qr_generation": claims.generation,
                    },
                )
        if not added:
            response.status_code = 200
        return await _with_people(conn, joining, who)
    kind, case_id, justification = "unscheduled", body.case_id, None
    if task is not None:
        if task["assignee"] != who.user_id:
            raise HTTPException(
                422,
                f"task {task['id']} is another inspector's: they check in first, "
                "others join their visit",
            )
        kind = "advisory" if task["advisory"] else "task"
        case_id, justification = task["case_id"], f"task {task['id']}"
    else:
        if case_id is not None:
            case = await queries.cases.get_case(conn, case_id)
            if case is None or case["enterprise_id"] != enterprise_id or case["state"] == "closed":
                raise HTTPException(422, f"case {case_id} is not an open case of this site")
        recent = await queries.visit_guard.recent_visits(
            conn, enterprise_id, settings.visit_guard_days
        )
        listed = await queries.visit_guard.on_no_disturbance(conn, enterprise_id)
        decision = judge(
            _policy(settings), recent, listed, Justification(case_id, None, body.complaint)
        )
        if not decision.allowed:
            # what was read so far ends here, so the refusal commits on its own and
            # survives the error answer
            await conn.commit()
            refusal = await queries.visit_guard.record_refusal(
                conn, enterprise_id, who.user_id, decision.reason, recent, listed
            )
            raise HTTPException(
                409, f"visit refused (recorded as refusal {refusal}): {decision.reason}"
            )
        justification = Justification(case_id, None, body.complaint).describe()
    async with conn.transaction():
        visit = await queries.visits.create_visit(
            conn,
            enterprise_id,
            who.user_id,
            body.purpose,
            body.alert_id,
            claims.kid,
            digest,
            kind=kind,
            task_id=task["id"] if task else None,
            case_id=case_id,
            justification=justification,
        )
        await audit.append(
            conn,
            who.user_id,
            "visit.check_in",
            f"visit:{visit['id']}",
            {
                "enterprise_id": enterprise_id,
                "purpose": body.purpose,
                "alert_id": body.alert_id,
                "qr_kid": claims.kid,
                "qr_generation": claims.generation,
                "kind": kind,
                "task_id": visit["task_id"],
                "case_id": case_id,
                "justification": justification,
            },
        )
    return await _with_people(conn, visit, who)


async def _task_here(conn: AsyncConnection, task_id: int | None, enterprise_id: str) -> dict | None:
    if task_id is None:
        return None
    task = await queries.tasks.get_task(conn, task_id)
    if task is None or task["enterprise_id"] != enterprise_id:
        raise HTTPException(422, f"task {task_id} is not a task at this site")
    if task["state"] != "open":
        raise HTTPException(422, f"task {task_id} is already done")
    return task


async def _visit_to_join(
    conn: AsyncConnection, body: CheckIn, task: dict | None, enterprise_id: str
) -> dict | None:
    if body.join_visit_id is not None:
        visit = await queries.visits.get_visit(conn, body.join_visit_id)
        if (
            visit is None
            or visit["enterprise_id"] != enterprise_id
            or visit["checked_out_at"] is not None
        ):
            raise HTTPException(
                422, f"visit {body.join_visit_id} is not an open visit at this site"
            )
        return visit
    if task is not None:
        return await queries.visits.open_visit_of_task(conn, task["id"])
    return None


def _photos(photos: list[PhotoIn], max_bytes: int) -> list[tuple[str, str, bytes, bytes]]:
    """Decoded photos, each within OFFSITE_ATTACHMENT_MAX_BYTES (as a case response's
    attachments) and an image its first bytes prove (PNG, JPEG, GIF, WebP): a phone's
    camera gives one of these, and nothing else may pose as a photo."""
    out = []
    for p in photos:
        try:
            content = base64.b64decode(p.content_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise HTTPException(422, f"photo {p.filename!r} is not base64: {exc}") from exc
        if len(content) > max_bytes:
            raise HTTPException(
                413, f"photo {p.filename!r} has {len(content)} bytes; at most {max_bytes}"
            )
        kind = served_type(p.content_type, content[:16])
        if not kind.startswith("image/"):
            raise HTTPException(422, f"photo {p.filename!r} is not a PNG, JPEG, GIF or WebP image")
        out.append((p.filename, kind, content, hashlib.sha256(content).digest()))
    return out


@router.get(
    "/{visit_id}/photos/{photo_id}",
    response_class=Response,
    summary="A photo taken at check-out, as it was sent (X-Content-SHA256 to check it)",
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "none"}},
)
async def get_photo(
    visit_id: int, photo_id: int, conn: Conn, who: Annotated[Principal, Depends(ANY_USER)]
) -> Response:
    await get_visit(visit_id, conn, who)  # the visit's own visibility, 404 alike
    found = await queries.visits.photo(conn, visit_id, photo_id)
    if found is None:
        raise HTTPException(404, f"photo {photo_id} not found")
    # the photo of a finding does not change: the browser may keep it
    return stored_file_response(found, {"Cache-Control": "private, max-age=3600"})


async def _with_people(conn: AsyncConnection, visit: dict, who: Principal) -> dict:
    return (await _complete(conn, [visit], who))[0]


async def _complete(conn: AsyncConnection, visits: list[dict], who: Principal) -> list[dict]:
    """Add each visit's inspectors; hide the enterprise's rating from inspectors (the
    inspecting side must not see who rated them how)."""
    ids = [v["id"] for v in visits]
    people = await queries.visits.participants(conn, ids)
    photos = await queries.visits.photos_of_visits(conn, ids)
    out = []
    for v in visits:
        v = {
            **v,
            "inspectors": people.get(v["id"], []),
            "photos": [p for p in photos if p["visit_id"] == v["id"]],
        }
        if who.role is Role.INSPECTOR:
            v.update(dict.fromkeys(RATING_FIELDS))
        out.append(v)
    return out


@router.post(
    "/{visit_id}/check-out",
    response_model=VisitPublic,
    summary="Check out of a visit with findings",
    description="Each inspector of a joint visit checks out with their findings; "
    "the visit ends when the last one leaves, and closes its task.",
    openapi_extra=UPLOAD_BODY,
    responses={
        404: {"description": "no such visit of this inspector"},
        409: {"description": "already checked out"},
        413: {"description": "a photo (or the request) is too large"},
        422: {"description": "a photo is not base64, or not an image"},
    },
)
async def check_out(
    visit_id: int,
    body: CheckOut,
    conn: Conn,
    settings: SettingsDep,
    who: Annotated[Principal, Depends(INSPECTOR)],
) -> dict:
    photos = _photos(body.photos, settings.attachment_max_bytes)
    visit = await queries.visits.get_visit(conn, visit_id)
    member = (
        None if visit is None else await queries.visits.is_participant(conn, visit_id, who.user_id)
    )
    # a visit the inspector is not part of does not exist for them (as in GET)
    if (
        visit is None
        or member is False
        or (member is None and visit["inspector_id"] != who.user_id)
    ):
        raise HTTPException(404, f"visit {visit_id} not found")
    async with conn.transaction():
        if member is None:  # a visit from before joint visits
            done = await queries.visits.check_out(conn, visit_id, body.findings)
            ok, over = done is not None, done is not None
        else:
            ok, over = await queries.visits.check_out_participant(
                conn, visit_id, who.user_id, body.findings
            )
        if ok:
            await audit.append(
                conn,
                who.user_id,
                "visit.check_out",
                f"visit:{visit_id}",
                {
                    "findings": body.findings,
                    "visit_over": over,
                    "advisory": visit["advisory"],
                    "photos": [{"filename": p[0], "sha256": p[3].hex()} for p in photos],
                },
            )
            await queries.visits.add_photos(conn, visit_id, who.user_id, photos)
        if over and visit["task_id"] is not None:
            final = await queries.visits.get_visit(conn, visit_id)
            task = await queries.tasks.get_task(conn, visit["task_id"], lock=True)
            if final is not None and task is not None and task["state"] == "open":
                await queries.tasks.finish_task(
                    conn, task, visit_id, final["findings"] or "", who.user_id
                )
    if not ok:
        raise HTTPException(409, f"visit {visit_id} is already checked out")
    final = await queries.visits.get_visit(conn, visit_id)
    assert final is not None
    return await _with_people(conn, final, who)


@router.get(
    "",
    response_model=list[VisitPublic],
    summary="Visits per site or per inspector",
    description="Inspectors see their own visits; enterprises the visits to their "
    "sites; regulators those in their region.",
)
async def list_visits(
    conn: Conn,
    who: Annotated[Principal, Depends(ANY_USER)],
    enterprise: str | None = None,
    inspector: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict]:
    if who.role is Role.INSPECTOR:
        if inspector is not None and inspector != who.user_id:
            return []
        inspector = who.user_id
    return await _complete(
        conn,
        await queries.visits.list_visits(
            conn, enterprise, inspector, limit, offset, visible=who.scope
        ),
        who,
    )


@router.get("/{visit_id}", response_model=VisitPublic, responses={404: {"description": "none"}})
async def get_visit(
    visit_id: int, conn: Conn, who: Annotated[Principal, Depends(ANY_USER)]
) -> dict:
    visit = await queries.visits.get_visit(conn, visit_id)
    if (
        visit is not None
        and who.role is Role.INSPECTOR
        and visit["inspector_id"] != who.user_id
        and not await queries.visits.is_participant(conn, visit_id, who.user_id)
    ):
        visit = None
    visible_or_404(who, visit["enterprise_id"] if visit else None, f"visit {visit_id}")
    assert visit is not None
    return await _with_people(conn, visit, who)


@router.post(
    "/{visit_id}/rating",
    status_code=204,
    response_class=Response,
    summary="The enterprise rates a visit to its site (1–5, optional comment), once",
    responses={
        404: {"description": "no such visit of this enterprise"},
        409: {"description": "already rated: the first rating stands"},
    },
)
async def rate_visit(
    visit_id: int, body: VisitRating, conn: Conn, who: Annotated[Principal, Depends(ENTERPRISE)]
) -> Response:
    visit = await queries.visits.get_visit(conn, visit_id)
    visible_or_404(who, visit["enterprise_id"] if visit else None, f"visit {visit_id}")
    async with conn.transaction():
        if not await queries.visits.rate_visit(conn, visit_id, body.rating, body.comment):
            raise HTTPException(409, f"visit {visit_id} is already rated")
        await audit.append(
            conn,
            who.user_id,
            "visit.rate",
            f"visit:{visit_id}",
            {"rating": body.rating, "comment": body.comment},
        )
    return Response(status_code=204)

"""Scan code to enter: check in with the site's signed QR token, check out with findings.

The inspector is whoever is signed in (an inspector's active token), never a name in the
request body. Scanning the same code twice within ``checkin_replay_s`` (a retry over a
bad network, a double tap) returns the open visit instead of creating a second one.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from api import queries
from api import security_queries as sq
from api.auth import ANY_USER, ENTERPRISE, INSPECTOR, Principal, Role, visible_or_404
from api.deps import Conn, KeyRingDep, SettingsDep
from api.errors import TokenError
from api.models import MAX_OFFSET, CheckIn, CheckOut, VisitPublic, VisitRating
from api.qr import extract_token
from offsite.credentials import token_digest
from store import audit

router = APIRouter(prefix="/api/visits", tags=["visits"])


@router.post("/check-in", response_model=VisitPublic, status_code=201,
             summary="Check in at a site by presenting its scanned QR token",
             responses={200: {"model": VisitPublic,
                              "description": "a replay: the open visit made with this code"},
                        400: {"description": "malformed token"},
                        401: {"description": "forged, altered, expired, revoked or "
                                             "unknown-key token, or not signed in"},
                        403: {"description": "not an inspector, or the site is outside "
                                             "the inspector's region"},
                        404: {"description": "token names no known enterprise"},
                        422: {"description": "the alert is unknown or of another enterprise"}})
async def check_in(body: CheckIn, conn: Conn, keyring: KeyRingDep, settings: SettingsDep,
                   response: Response, who: Annotated[Principal, Depends(INSPECTOR)]) -> dict:
    try:
        claims = keyring.verify(body.token, time.time())
    except TokenError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    enterprise_id = claims.enterprise_id
    generation = await sq.qr_generation(conn, enterprise_id)
    if generation is None:
        raise HTTPException(404, f"QR token names an unknown enterprise ({enterprise_id})")
    if claims.generation != generation:
        raise HTTPException(401, "this printed QR code was revoked: the site has a newer one")
    if not who.can_see(enterprise_id):
        raise HTTPException(403, f"enterprise {enterprise_id} is outside your region")
    digest = token_digest(extract_token(body.token))
    again = await queries.replayed_visit(conn, who.user_id, digest, settings.checkin_replay_s)
    if again is not None:
        response.status_code = 200
        return again
    if body.alert_id is not None:
        owner = await queries.alert_enterprise(conn, body.alert_id)
        if owner is None:
            raise HTTPException(422, f"alert {body.alert_id} not found")
        if owner != enterprise_id:
            raise HTTPException(422, f"alert {body.alert_id} belongs to another enterprise")
    async with conn.transaction():
        visit = await queries.create_visit(conn, enterprise_id, who.user_id, body.purpose,
                                           body.alert_id, claims.kid, digest)
        await audit.append(conn, who.user_id, "visit.check_in", f"visit:{visit['id']}",
                           {"enterprise_id": enterprise_id, "purpose": body.purpose,
                            "alert_id": body.alert_id, "qr_kid": claims.kid,
                            "qr_generation": claims.generation})
    return visit


@router.post("/{visit_id}/check-out", response_model=VisitPublic,
             summary="Check out of a visit with findings",
             responses={403: {"description": "another inspector's visit"},
                        404: {"description": "no such visit"},
                        409: {"description": "already checked out"}})
async def check_out(visit_id: int, body: CheckOut, conn: Conn,
                    who: Annotated[Principal, Depends(INSPECTOR)]) -> dict:
    visit = await queries.get_visit(conn, visit_id)
    if visit is None:
        raise HTTPException(404, f"visit {visit_id} not found")
    if visit["inspector_id"] != who.user_id:
        raise HTTPException(403, "only the inspector who checked in can check out")
    async with conn.transaction():
        done = await queries.check_out(conn, visit_id, body.findings)
        if done is not None:
            await audit.append(conn, who.user_id, "visit.check_out", f"visit:{visit_id}",
                               {"findings": body.findings})
    if done is None:
        raise HTTPException(409, f"visit {visit_id} is already checked out")
    return done


@router.get("", response_model=list[VisitPublic], summary="Visits per site or per inspector",
            description="Inspectors see their own visits; enterprises the visits to their "
                        "sites; regulators those in their region.")
async def list_visits(conn: Conn, who: Annotated[Principal, Depends(ANY_USER)],
                      enterprise: str | None = None, inspector: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                      offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> list[dict]:
    if who.role is Role.INSPECTOR:
        if inspector is not None and inspector != who.user_id:
            return []
        inspector = who.user_id
    return await queries.list_visits(conn, enterprise, inspector, limit, offset,
                                     visible=who.scope)


@router.get("/{visit_id}", response_model=VisitPublic, responses={404: {"description": "none"}})
async def get_visit(visit_id: int, conn: Conn,
                    who: Annotated[Principal, Depends(ANY_USER)]) -> dict:
    visit = await queries.get_visit(conn, visit_id)
    if visit is not None and who.role is Role.INSPECTOR and visit["inspector_id"] != who.user_id:
        visit = None
    visible_or_404(who, visit["enterprise_id"] if visit else None, f"visit {visit_id}")
    assert visit is not None
    return visit


@router.post("/{visit_id}/rating", status_code=204, response_class=Response,
             summary="The enterprise rates a visit to its site (1–5, optional comment)",
             responses={404: {"description": "no such visit of this enterprise"}})
async def rate_visit(visit_id: int, body: VisitRating, conn: Conn,
                     who: Annotated[Principal, Depends(ENTERPRISE)]) -> Response:
    visit = await queries.get_visit(conn, visit_id)
    visible_or_404(who, visit["enterprise_id"] if visit else None, f"visit {visit_id}")
    async with conn.transaction():
        await queries.rate_visit(conn, visit_id, body.rating, body.comment)
        await audit.append(conn, who.user_id, "visit.rate", f"visit:{visit_id}",
                           {"rating": body.rating, "comment": body.comment})
    return Response(status_code=204)

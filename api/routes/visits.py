"""Scan code to enter: check in with the site's signed QR token, check out with findings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api import queries
from api.deps import Conn, KeyRingDep
from api.errors import TokenError
from api.models import CheckIn, CheckOut, VisitPublic

router = APIRouter(prefix="/api/visits", tags=["visits"])


@router.post("/check-in", response_model=VisitPublic, status_code=201,
             summary="Check in at a site by presenting its scanned QR token",
             responses={400: {"description": "malformed token"},
                        401: {"description": "forged, altered or unknown-key token"},
                        404: {"description": "token names no known enterprise"},
                        422: {"description": "the alert is unknown or of another enterprise"}})
async def check_in(body: CheckIn, conn: Conn, keyring: KeyRingDep) -> dict:
    try:
        enterprise_id, kid = keyring.verify(body.token)
    except TokenError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    if not await queries.enterprise_exists(conn, enterprise_id):
        raise HTTPException(404, f"QR token names an unknown enterprise ({enterprise_id})")
    if body.alert_id is not None:
        owner = await queries.alert_enterprise(conn, body.alert_id)
        if owner is None:
            raise HTTPException(422, f"alert {body.alert_id} not found")
        if owner != enterprise_id:
            raise HTTPException(422, f"alert {body.alert_id} belongs to another enterprise")
    return await queries.create_visit(conn, enterprise_id, body.inspector_id, body.purpose,
                                      body.alert_id, kid)


@router.post("/{visit_id}/check-out", response_model=VisitPublic,
             summary="Check out of a visit with findings",
             responses={403: {"description": "another inspector's visit"},
                        404: {"description": "no such visit"},
                        409: {"description": "already checked out"}})
async def check_out(visit_id: int, body: CheckOut, conn: Conn) -> dict:
    visit = await queries.get_visit(conn, visit_id)
    if visit is None:
        raise HTTPException(404, f"visit {visit_id} not found")
    if visit["inspector_id"] != body.inspector_id:
        raise HTTPException(403, "only the inspector who checked in can check out")
    done = await queries.check_out(conn, visit_id, body.findings)
    if done is None:
        raise HTTPException(409, f"visit {visit_id} is already checked out")
    return done


@router.get("", response_model=list[VisitPublic], summary="Visits per site or per inspector")
async def list_visits(conn: Conn, enterprise: str | None = None, inspector: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                      offset: Annotated[int, Query(ge=0)] = 0) -> list[dict]:
    return await queries.list_visits(conn, enterprise, inspector, limit, offset)


@router.get("/{visit_id}", response_model=VisitPublic, responses={404: {"description": "none"}})
async def get_visit(visit_id: int, conn: Conn) -> dict:
    visit = await queries.get_visit(conn, visit_id)
    if visit is None:
        raise HTTPException(404, f"visit {visit_id} not found")
    return visit

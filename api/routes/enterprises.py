"""Enterprises (sites) and their signed QR codes; revoking a printed code."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Response

from offsite.api import qr, queries
from offsite.api.auth import ANY_USER, STAFF, Access, Principal, Role, visible_or_404
from offsite.api.deps import Conn, KeyRingDep, SettingsDep
from offsite.api.models.enterprises import EnterprisePublic, QrRevoked
from offsite.store import audit
from offsite.store import registry as registry_store

PRINTERS = Access(Role.ADMIN, Role.REGULATOR, Role.ENTERPRISE)

router = APIRouter(prefix="/api/enterprises", tags=["enterprises"])


@router.get("", response_model=list[EnterprisePublic], summary="Enterprises with counts")
async def list_enterprises(conn: Conn, who: Annotated[Principal, Depends(ANY_USER)]) -> list[dict]:
    rows = await queries.enterprises.list_enterprises(conn, who.scope)
    for r in rows:
        r["qr_svg"] = f"/api/enterprises/{r['id']}/qr.svg"
        r["qr_png"] = f"/api/enterprises/{r['id']}/qr.png"
    return rows


@router.get(
    "/{enterprise_id}/qr.{kind}",
    summary="The site's signed QR code (SVG or PNG)",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}, "image/png": {}}},
        404: {"description": "no such enterprise"},
    },
)
async def qr_code(
    enterprise_id: str,
    kind: Literal["svg", "png"],
    conn: Conn,
    keyring: KeyRingDep,
    settings: SettingsDep,
    who: Annotated[Principal, Depends(PRINTERS)],
) -> Response:
    generation = await queries.enterprises.qr_generation(conn, enterprise_id)
    visible_or_404(
        who, enterprise_id if generation is not None else None, f"enterprise {enterprise_id}"
    )
    assert generation is not None
    expires = (
        int(time.time()) + settings.qr_code_ttl_days * 86400 if settings.qr_code_ttl_days else None
    )
    url = qr.scan_url(settings.base_url, keyring.sign(enterprise_id, generation, expires))
    media = "image/svg+xml" if kind == "svg" else "image/png"
    return Response(
        qr.render(url, kind),
        media_type=media,
        headers={"X-Offsite-Scan-Url": url, "Cache-Control": "no-store"},
    )


@router.post(
    "/{enterprise_id}/qr/revoke",
    response_model=QrRevoked,
    summary="Revoke the site's printed QR code(s): only a newly printed one checks in",
    responses={404: {"description": "no such enterprise"}},
)
async def revoke_qr(
    enterprise_id: str, conn: Conn, who: Annotated[Principal, Depends(STAFF)]
) -> dict:
    visible_or_404(who, enterprise_id, f"enterprise {enterprise_id}")
    async with conn.transaction():
        generation = await registry_store.bump_qr_generation(conn, enterprise_id)
        if generation is not None:
            await audit.append(
                conn,
                who.user_id,
                "qr.revoke",
                f"enterprise:{enterprise_id}",
                {"generation": generation},
            )
    if generation is None:
        raise HTTPException(404, f"enterprise {enterprise_id} not found")
    return {"enterprise_id": enterprise_id, "generation": generation}

"""Enterprises (sites) and their signed QR codes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Response

from api import qr, queries
from api.deps import Conn, KeyRingDep, SettingsDep
from api.models import EnterprisePublic

router = APIRouter(prefix="/api/enterprises", tags=["enterprises"])


@router.get("", response_model=list[EnterprisePublic], summary="Enterprises with counts")
async def list_enterprises(conn: Conn) -> list[dict]:
    rows = await queries.list_enterprises(conn)
    for r in rows:
        r["qr_svg"] = f"/api/enterprises/{r['id']}/qr.svg"
        r["qr_png"] = f"/api/enterprises/{r['id']}/qr.png"
    return rows


@router.get("/{enterprise_id}/qr.{kind}", summary="The site's signed QR code (SVG or PNG)",
            response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}},
                       404: {"description": "no such enterprise"}})
async def qr_code(enterprise_id: str, kind: Literal["svg", "png"], conn: Conn,
                  keyring: KeyRingDep, settings: SettingsDep) -> Response:
    if not await queries.enterprise_exists(conn, enterprise_id):
        raise HTTPException(404, f"enterprise {enterprise_id} not found")
    url = qr.scan_url(settings.base_url, keyring.sign(enterprise_id))
    media = "image/svg+xml" if kind == "svg" else "image/png"
    return Response(qr.render(url, kind), media_type=media,
                    headers={"X-Offsite-Scan-Url": url, "Cache-Control": "no-store"})

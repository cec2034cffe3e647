"""Monthly reports per enterprise: JSON, CSV, and a printable page that shows the JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import HTMLResponse, Response

from offsite.api import queries
from offsite.api.auth import PUBLIC, Access, Principal, Role, visible_or_404
from offsite.api.deps import Conn

router = APIRouter(prefix="/api/reports", tags=["reports"])
# ratings are in the report: the inspecting side does not read them
REPORT_READERS = Access(Role.ADMIN, Role.REGULATOR, Role.ENTERPRISE)


@router.get("/page", include_in_schema=False, response_model=None)
async def page(_: Annotated[None, Depends(PUBLIC)]) -> HTMLResponse:
    """The printable page (public; the data it fetches is not)."""
    return HTMLResponse(
        resources.files("offsite.api").joinpath("static", "report.html").read_text("utf-8")
    )


async def _report(conn: Conn, who: Principal, enterprise_id: str, month: str) -> dict[str, Any]:
    known = await queries.enterprises.enterprise_exists(conn, enterprise_id)
    visible_or_404(who, enterprise_id if known else None, f"enterprise {enterprise_id}")
    try:
        queries.reports.month_range(month)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return await queries.reports.monthly_report(conn, enterprise_id, month, datetime.now(UTC))


@router.get(
    "/{enterprise_id}/{month}",
    summary="An enterprise's month: exceedance hours, data capture, alerts, cases, "
    "visits and ratings",
    responses={
        404: {"description": "no such enterprise (in your scope)"},
        422: {"description": "month is not YYYY-MM"},
    },
)
async def report_json(
    enterprise_id: str, month: str, conn: Conn, who: Annotated[Principal, Depends(REPORT_READERS)]
) -> dict[str, Any]:
    return await _report(conn, who, enterprise_id, month)


@router.get(
    "/{enterprise_id}/{month}/csv",
    response_class=Response,
    summary="The same report as CSV",
    responses={
        200: {"content": {"text/csv": {}}},
        404: {"description": "no such enterprise (in your scope)"},
        422: {"description": "month is not YYYY-MM"},
    },
)
async def report_csv(
    enterprise_id: str, month: str, conn: Conn, who: Annotated[Principal, Depends(REPORT_READERS)]
) -> Response:
    r = await _report(conn, who, enterprise_id, month)
    return Response(
        queries.reports.to_csv(r),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="offsite-{enterprise_id}-{month}.csv"'
        },
    )

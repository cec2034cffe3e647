"""Devices with their last reading, and a device's readings over a time range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api import queries
from api.deps import Conn
from api.models import DevicePublic, ReadingsPage

router = APIRouter(prefix="/api/devices", tags=["devices"])
MAX_RAW_ROWS = 100_000
MAX_BUCKETS = 20_000


@router.get("", response_model=list[DevicePublic], summary="Devices and their last reading time")
async def list_devices(conn: Conn, enterprise: str | None = None) -> list[dict]:
    return await queries.list_devices(conn, enterprise)


@router.get("/{mn}/readings", response_model=ReadingsPage,
            summary="A device's readings, raw or bucketed (avg/min/max per bucket)",
            responses={404: {"description": "no such device"},
                       422: {"description": "bad time range or bucket"}})
async def device_readings(
    mn: str, conn: Conn,
    start: Annotated[datetime | None, Query(description="inclusive; default end − 1 h")] = None,
    end: Annotated[datetime | None, Query(description="exclusive; default now")] = None,
    pollutant: str | None = None,
    bucket: Annotated[int | None, Query(ge=1, le=31 * 86400,
                                        description="bucket width in seconds")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RAW_ROWS)] = 10_000,
) -> dict:
    end = end or datetime.now(UTC)
    start = start or end - timedelta(hours=1)
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(422, "start and end need a time zone (e.g. Z or +08:00)")
    if start >= end:
        raise HTTPException(422, "start must be before end")
    if not await queries.device_exists(conn, mn):
        raise HTTPException(404, f"device {mn} not found")
    page: dict = {"mn": mn, "start": start, "end": end, "bucket_s": bucket}
    if bucket is None:
        page["readings"] = await queries.readings(conn, mn, start, end, pollutant, limit)
    else:
        if (end - start).total_seconds() / bucket > MAX_BUCKETS:
            raise HTTPException(422, f"more than {MAX_BUCKETS} buckets: widen the bucket")
        page["buckets"] = await queries.buckets(conn, mn, start, end, pollutant, bucket)
    return page

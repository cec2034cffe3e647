"""Devices with their last reading, a device's readings over a time range, and the
registry's device life cycle: onboarding (which issues the device's MQTT credentials)
and revocation (its data is dead-lettered as ``device_revoked`` from then on)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from offsite.api import queries
from offsite.api.auth import ADMIN, ANY_USER, Principal, visible_or_404
from offsite.api.deps import Conn, SettingsDep
from offsite.api.models.devices import DeviceCreate, DeviceCredentials, DevicePublic, DeviceRevoke
from offsite.api.models.readings import ReadingsPage
from offsite.core.credentials import mosquitto_hash, new_device_password
from offsite.ingest.validate import policy_topic
from offsite.store import audit
from offsite.store import registry as registry_store

router = APIRouter(prefix="/api/devices", tags=["devices"])
MAX_RAW_ROWS = 100_000
MAX_BUCKETS = 20_000


@router.get("", response_model=list[DevicePublic], summary="Devices and their last reading time")
async def list_devices(
    conn: Conn, who: Annotated[Principal, Depends(ANY_USER)], enterprise: str | None = None
) -> list[dict]:
    return await queries.devices.list_devices(conn, enterprise, visible=who.scope)


@router.get(
    "/{mn}/readings",
    response_model=ReadingsPage,
    summary="A device's readings, raw or bucketed (avg/min/max per bucket)",
    responses={
        404: {"description": "no such device"},
        422: {"description": "bad time range or bucket"},
    },
)
async def device_readings(
    mn: str,
    conn: Conn,
    who: Annotated[Principal, Depends(ANY_USER)],
    start: Annotated[datetime | None, Query(description="inclusive; default end − 1 h")] = None,
    end: Annotated[datetime | None, Query(description="exclusive; default now")] = None,
    pollutant: str | None = None,
    bucket: Annotated[
        int | None, Query(ge=1, le=31 * 86400, description="bucket width in seconds")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RAW_ROWS)] = 10_000,
) -> dict:
    return await readings_page(conn, who, mn, start, end, pollutant, bucket, limit)


async def readings_page(
    conn: Conn,
    who: Principal,
    mn: str,
    start: datetime | None,
    end: datetime | None,
    pollutant: str | None,
    bucket: int | None,
    limit: int,
) -> dict:
    """The checks and the query behind a readings page (the JSON route and its CSV
    export alike)."""
    end = end or datetime.now(UTC)
    start = start or end - timedelta(hours=1)
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(422, "start and end need a time zone (e.g. Z or +08:00)")
    if start >= end:
        raise HTTPException(422, "start must be before end")
    visible_or_404(who, await queries.devices.device_enterprise(conn, mn), f"device {mn}")
    page: dict = {"mn": mn, "start": start, "end": end, "bucket_s": bucket}
    if bucket is None:
        page["readings"] = await queries.readings.readings(conn, mn, start, end, pollutant, limit)
    else:
        if (end - start).total_seconds() / bucket > MAX_BUCKETS:
            raise HTTPException(422, f"more than {MAX_BUCKETS} buckets: widen the bucket")
        page["buckets"] = await queries.readings.buckets(conn, mn, start, end, pollutant, bucket)
    return page


@router.post(
    "",
    response_model=DeviceCredentials,
    status_code=201,
    summary="Onboard a device (or re-admit a revoked one); returns its MQTT password once",
    responses={
        404: {"description": "no such monitoring point"},
        409: {"description": "the device exists and is not revoked"},
    },
)
async def onboard(
    body: DeviceCreate, conn: Conn, settings: SettingsDep, who: Annotated[Principal, Depends(ADMIN)]
) -> dict:
    if not await queries.devices.point_exists(conn, body.point_id):
        raise HTTPException(404, f"monitoring point {body.point_id} not found")
    password = new_device_password()
    async with conn.transaction():
        if not await registry_store.onboard_device(
            conn,
            body.mn,
            body.point_id,
            body.interval_s,
            body.hj212_password,
            mosquitto_hash(password),
        ):
            raise HTTPException(
                409,
                f"device {body.mn} is already registered; revoke it "
                "first to re-issue its credentials",
            )
        await audit.append(
            conn,
            who.user_id,
            "device.onboard",
            f"device:{body.mn}",
            {
                "point_id": body.point_id,
                "interval_s": body.interval_s,
                "hj212_password_set": body.hj212_password is not None,
            },
        )
    prefix, suffix = policy_topic(settings.mqtt_topic)
    return {
        "mn": body.mn,
        "mqtt_username": body.mn,
        "mqtt_password": password,
        "topic": f"{prefix}/{body.mn}/{suffix}",
    }


@router.post(
    "/{mn}/revoke",
    status_code=204,
    response_class=Response,
    summary="Revoke a device: its data is dead-lettered from now on",
    description="Regenerate the broker's password and ACL files "
    "(`offsite devices export-broker-auth`) to shut it out of the broker "
    "too; ingest refuses its data within OFFSITE_OFFLINE_CHECK_S.",
    responses={404: {"description": "no such device"}, 409: {"description": "already revoked"}},
)
async def revoke(
    mn: str, body: DeviceRevoke, conn: Conn, who: Annotated[Principal, Depends(ADMIN)]
) -> Response:
    async with conn.transaction():
        done = await registry_store.revoke_device(conn, mn, body.reason)
        if done:
            await audit.append(
                conn, who.user_id, "device.revoke", f"device:{mn}", {"reason": body.reason}
            )
    if done is None:
        raise HTTPException(404, f"device {mn} not found")
    if not done:
        raise HTTPException(409, f"device {mn} is already revoked")
    return Response(status_code=204)

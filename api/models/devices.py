"""Device models: the registry's rows, one device's detail, onboarding and revocation."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DevicePublic(BaseModel):
    mn: str
    point_id: str
    point_name: str
    enterprise_id: str
    enterprise_name: str
    interval_s: float
    active: bool
    last_ts: datetime | None
    last_received_at: datetime | None
    readings: int


class LatestValue(BaseModel):
    pollutant: str
    ts: datetime
    value: float
    flag: str
    limit_value: float | None


class DeviceDetail(BaseModel):
    mn: str
    point_id: str
    point_name: str
    point_kind: str
    enterprise_id: str
    enterprise_name: str
    interval_s: float
    active: bool
    registered_at: datetime
    last_ts: datetime | None
    last_received_at: datetime | None
    limits: dict[str, float]
    latest: list[LatestValue]


class DeviceCreate(BaseModel):
    mn: str = Field(pattern=r"^[0-9A-Za-z]{1,24}$")
    point_id: str = Field(min_length=1, max_length=64)
    interval_s: float = Field(default=60.0, gt=0, le=86400)
    hj212_password: str | None = Field(
        default=None,
        pattern=r"^[\x21-\x7e]{1,64}$",
        description="the PW an HJ 212 logger must send",
    )


class DeviceCredentials(BaseModel):
    mn: str
    mqtt_username: str
    mqtt_password: str = Field(description="shown once: the broker keeps only a hash")
    topic: str


class DeviceRevoke(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)

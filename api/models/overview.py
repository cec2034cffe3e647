"""The overview's shape: tiles per region and site, devices with a status, and the
critical alerts nobody has acknowledged yet."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from offsite.api.models.alerts import AlertPublic


class Tile(BaseModel):
    key: str
    name: str
    region: str
    alerts: dict[str, int]  # active alerts per severity
    devices: int
    offline: int  # offline or never reported
    capture_today: float | None  # mean of the devices' capture since local midnight


class DeviceStatus(BaseModel):
    mn: str
    point_id: str
    point_name: str
    enterprise_id: str
    enterprise_name: str
    region: str
    interval_s: float
    active: bool
    last_ts: datetime | None
    last_received_at: datetime | None
    status: str  # online | offline | never | revoked
    capture_today: float | None


class Overview(BaseModel):
    now: datetime
    day_start: datetime  # the sites' local midnight (Asia/Shanghai)
    unseen_count: int
    unseen: list[AlertPublic]
    regions: list[Tile]
    sites: list[Tile]
    devices: list[DeviceStatus]


class UnseenCriticals(BaseModel):
    count: int
    alerts: list[AlertPublic]

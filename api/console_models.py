"""Response models of the console's read endpoints (api/routes/console.py)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel


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


class DayCapturePublic(BaseModel):
    day: date
    expected: int
    received: int
    valid: int
    capture_rate: float | None
    valid_rate: float | None


class CapturePage(BaseModel):
    mn: str
    interval_s: float
    start: datetime
    end: datetime
    days: list[DayCapturePublic]
    capture_rate: float | None
    valid_rate: float | None


class PointDevice(BaseModel):
    mn: str
    interval_s: float
    active: bool
    last_ts: datetime | None
    last_received_at: datetime | None


class PointDetail(BaseModel):
    id: str
    name: str
    kind: str
    o2_ref: float | None
    limits: dict[str, float]
    devices: list[PointDevice]


class EnterpriseDetail(BaseModel):
    id: str
    name: str
    region: str
    points: list[PointDetail]


class AlertFacets(BaseModel):
    rule: list[str]
    pollutant: list[str]

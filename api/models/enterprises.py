"""Enterprise models: the list, one enterprise with its points and devices, QR revocation."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class EnterprisePublic(BaseModel):
    id: str
    name: str
    region: str
    points: int
    devices: int
    open_alerts: int
    qr_svg: str
    qr_png: str


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


class QrRevoked(BaseModel):
    enterprise_id: str
    generation: int

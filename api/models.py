"""Request and response models: separate *Create / *Public shapes per resource."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Severity = Literal["info", "warning", "major", "critical"]
State = Literal["open", "acknowledged", "assigned", "resolved", "cleared"]


class AlertPublic(BaseModel):
    id: int
    rule: str
    mn: str
    pollutant: str
    severity: Severity
    state: State
    first_seen: datetime
    last_seen: datetime
    count: int
    worst_value: float | None
    limit_value: float | None
    message: str
    enterprise_id: str
    point_id: str
    opened_at: datetime
    updated_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    closed_by: str | None
    closed_at: datetime | None
    close_note: str | None
    assignee: str | None = None
    assigned_by: str | None = None
    assigned_at: datetime | None = None
    reopened: int = 0
    suppressed: str | None = Field(default=None, description="why the alert is muted "
                                   "(maintenance flags, a declared silence); null if not")


class AlertEventPublic(BaseModel):
    id: int
    kind: str
    at: datetime
    actor: str | None
    note: str | None


class Evidence(BaseModel):
    """The values the rule saw when it fired: epoch seconds, values, HJ 212 flags."""

    t: list[float]
    v: list[float | None]
    flag: str


class AlertDetail(AlertPublic):
    events: list[AlertEventPublic]
    evidence: Evidence | None = None
    rule_config: dict | None = Field(default=None, description="the rule as it fired: "
                                     "detector, parameters, rules-file version and digest")
    score: float | None = None


class AlertAssign(BaseModel):
    by: str = Field(min_length=1, max_length=100, description="who acts (user id)")
    assignee: str = Field(min_length=1, max_length=100, description="who is to handle it")
    note: str | None = Field(default=None, max_length=4000)


class AlertComment(BaseModel):
    by: str = Field(min_length=1, max_length=100, description="who writes (user id)")
    note: str = Field(min_length=1, max_length=4000)


class AlertAction(BaseModel):
    by: str = Field(min_length=1, max_length=100, description="who acts (user id)")
    note: str | None = Field(default=None, max_length=4000)


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


class ReadingPublic(BaseModel):
    ts: datetime
    pollutant: str
    kind: str
    value: float
    flag: str


class BucketPublic(BaseModel):
    bucket: datetime
    pollutant: str
    avg: float
    min: float
    max: float
    count: int


class ReadingsPage(BaseModel):
    mn: str
    start: datetime
    end: datetime
    bucket_s: int | None
    readings: list[ReadingPublic] | None = None
    buckets: list[BucketPublic] | None = None


class EnterprisePublic(BaseModel):
    id: str
    name: str
    region: str
    points: int
    devices: int
    open_alerts: int
    qr_svg: str
    qr_png: str


class CheckIn(BaseModel):
    token: str = Field(min_length=1, max_length=2048,
                       description="the scanned QR content: the token or the whole URL")
    inspector_id: str = Field(min_length=1, max_length=100)
    purpose: str = Field(min_length=1, max_length=2000)
    alert_id: int | None = Field(default=None, description="the alert that justified it")


class CheckOut(BaseModel):
    inspector_id: str = Field(min_length=1, max_length=100)
    findings: str = Field(min_length=1, max_length=20_000)


class VisitPublic(BaseModel):
    id: int
    enterprise_id: str
    inspector_id: str
    purpose: str
    alert_id: int | None
    checked_in_at: datetime
    checked_out_at: datetime | None
    findings: str | None

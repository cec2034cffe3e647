"""Request and response models: separate *Create / *Public shapes per resource."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

# a page offset beyond this cannot be meant, and beyond 2**63 PostgreSQL refuses it (500)
MAX_OFFSET = 10_000_000
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
    suppressed: str | None = Field(
        default=None,
        description="why the alert is muted (maintenance flags, a declared silence); null if not",
    )


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
    rule_config: dict | None = Field(
        default=None,
        description="the rule as it fired: detector, parameters, rules-file version and digest",
    )
    score: float | None = None


class AlertAssign(BaseModel):
    assignee: str = Field(min_length=1, max_length=100, description="who is to handle it")
    note: str | None = Field(default=None, max_length=4000)


class AlertComment(BaseModel):
    note: str = Field(min_length=1, max_length=4000)


class AlertAction(BaseModel):
    by: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="ignored: the signed-in user acts (kept for old clients)",
    )
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
    token: str = Field(
        min_length=1,
        max_length=2048,
        description="the scanned QR content: the token or the whole URL",
    )
    purpose: str = Field(min_length=1, max_length=2000)
    alert_id: int | None = Field(default=None, description="the alert that justified it")
    task_id: int | None = Field(
        default=None,
        description="the inspection task this visit "
        "carries out (joins the task's open visit if there is one)",
    )
    join_visit_id: int | None = Field(
        default=None,
        description="join this open visit at the same site: one joint visit, several departments",
    )
    case_id: int | None = Field(default=None, description="an open case justifying the visit")
    complaint: str | None = Field(
        default=None, max_length=2000, description="a complaint justifying the visit"
    )


class CheckOut(BaseModel):
    findings: str = Field(min_length=1, max_length=20_000)


class VisitInspector(BaseModel):
    inspector_id: str
    department: str
    checked_in_at: datetime
    checked_out_at: datetime | None
    findings: str | None


class VisitPublic(BaseModel):
    id: int
    enterprise_id: str
    inspector_id: str
    purpose: str
    alert_id: int | None
    checked_in_at: datetime
    checked_out_at: datetime | None
    findings: str | None
    kind: Literal["unscheduled", "task", "advisory"] = "unscheduled"
    advisory: bool = Field(
        default=False, description="an invited check-up: advisory, not a basis for enforcement"
    )
    task_id: int | None = None
    case_id: int | None = None
    justification: str | None = None
    inspectors: list[VisitInspector] = Field(
        default_factory=list, description="everyone of a joint visit"
    )
    rating: int | None = Field(
        default=None, description="the enterprise's rating; hidden from inspectors"
    )
    rating_comment: str | None = None
    rated_at: datetime | None = None


class VisitRating(BaseModel):
    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=4000)


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginResult(BaseModel):
    token: str
    user_id: str
    role: str
    enterprise_id: str | None
    expires_at: datetime


class Me(BaseModel):
    user_id: str
    role: str
    enterprise_id: str | None
    region: str


class UserCreate(BaseModel):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")
    role: Literal["admin", "regulator", "inspector", "enterprise"]
    enterprise_id: str | None = None
    region: str = Field(default="", max_length=200)
    password: str | None = Field(default=None, min_length=12, max_length=1024)
    department: str = Field(
        default="", max_length=200, description="an inspector's department (joint visits list it)"
    )


class UserPublic(BaseModel):
    id: str
    role: str
    enterprise_id: str | None
    region: str
    department: str = ""
    active: bool
    created_at: datetime


class ApiKey(BaseModel):
    user_id: str
    token: str = Field(description="shown once: only its SHA-256 is kept")


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


class QrRevoked(BaseModel):
    enterprise_id: str
    generation: int

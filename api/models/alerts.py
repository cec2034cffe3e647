"""Alert models: the feed's rows, one alert's detail and events, a person's actions."""

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
    # names for people (the ids stay the keys)
    enterprise_name: str | None = None
    point_name: str | None = None
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


class AlertFacets(BaseModel):
    rule: list[str]
    pollutant: list[str]

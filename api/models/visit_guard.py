"""Models of the visit frequency guard: the no-disturbance list and refusals."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class NoDisturbance(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    until: datetime | None = None


class NoDisturbancePublic(NoDisturbance):
    enterprise_id: str
    added_by: str
    added_at: datetime


class RefusalPublic(BaseModel):
    id: int
    at: datetime
    enterprise_id: str
    inspector_id: str
    reason: str
    recent_visits: int
    no_disturbance: bool

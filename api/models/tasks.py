"""Inspection task models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class TaskPublic(BaseModel):
    id: int
    enterprise_id: str
    case_id: int | None
    invitation_id: int | None
    advisory: bool = Field(description="from an invitation: advisory, not a basis for enforcement")
    reason: str
    assignee: str
    created_by: str
    created_at: datetime
    due_at: datetime | None
    state: Literal["open", "done"]
    visit_id: int | None
    findings: str | None
    done_at: datetime | None


class TaskCreate(BaseModel):
    assignee: str = Field(min_length=1, max_length=64, description="an inspector's user id")
    reason: str = Field(min_length=1, max_length=4000)
    due_hours: float | None = Field(default=None, gt=0, le=24 * 365)

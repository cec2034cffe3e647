"""Invitation models: an advisory check-up an enterprise asks for, and its scheduling."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class InvitationCreate(BaseModel):
    scope: str = Field(min_length=1, max_length=4000, description="what to look at")
    preferred_at: datetime | None = None


class InvitationPublic(BaseModel):
    id: int
    enterprise_id: str
    invited_by: str
    scope: str
    preferred_at: datetime | None
    created_at: datetime
    state: Literal["requested", "scheduled", "done", "declined"]
    advisory: bool = True


class InvitationSchedule(BaseModel):
    assignee: str = Field(min_length=1, max_length=64)
    due_at: datetime | None = None

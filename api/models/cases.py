"""Case models of the closed loop: opening, moves, responses with attachments, verdicts."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from offsite.api.models.tasks import TaskPublic
from offsite.api.models.visits import PhotoPublic

CaseStateName = Literal["discovered", "verifying", "rectifying", "feedback", "closed"]


class CaseCreate(BaseModel):
    alert_ids: list[int] = Field(
        min_length=1, max_length=100, description="alerts of one enterprise, in no case yet"
    )
    title: str | None = Field(default=None, min_length=1, max_length=500)
    response_hours: float | None = Field(
        default=None,
        gt=0,
        le=24 * 365,
        description="the enterprise's deadline; default OFFSITE_CASE_RESPONSE_H",
    )


class CasePublic(BaseModel):
    id: int
    enterprise_id: str
    title: str
    state: CaseStateName
    opened_by: str
    opened_at: datetime
    response_due_at: datetime | None
    escalated_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime


class CaseStep(BaseModel):
    id: int
    at: datetime
    actor: str
    kind: str
    from_state: str | None
    to_state: str | None
    note: str | None


class AttachmentPublic(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str


class ResponsePublic(BaseModel):
    id: int
    responder: str
    at: datetime
    explanation: str
    verdict: Literal["accepted", "rejected"] | None
    verdict_by: str | None
    verdict_at: datetime | None
    verdict_note: str | None
    attachments: list[AttachmentPublic]


class CaseDetail(CasePublic):
    alerts: list[int]
    steps: list[CaseStep]
    responses: list[ResponsePublic]
    tasks: list[TaskPublic]
    photos: list[PhotoPublic] = Field(
        default_factory=list, description="taken at check-out on the case's visits that are over"
    )


class CaseMove(BaseModel):
    to: CaseStateName
    note: str = Field(min_length=1, max_length=4000, description="why: every step says")


class AttachmentIn(BaseModel):
    filename: str = Field(min_length=1, max_length=255, pattern=r"^[^/\\\x00]+$")
    content_type: str = Field(default="application/octet-stream", max_length=200)
    # 100 MiB as base64 at most; OFFSITE_ATTACHMENT_MAX_BYTES is checked after decoding
    content_base64: str = Field(max_length=140_000_000, description="the file, base64")


class ResponseCreate(BaseModel):
    explanation: str = Field(min_length=1, max_length=20_000)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=20)


class Verdict(BaseModel):
    accept: bool
    note: str | None = Field(default=None, max_length=4000)
    respond_again_hours: float | None = Field(
        default=None, gt=0, le=24 * 365, description="after a rejection: a new deadline"
    )

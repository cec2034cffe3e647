"""Visit models: check-in and out, a visit with its inspectors, the enterprise's rating."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


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


class PhotoIn(BaseModel):
    filename: str = Field(min_length=1, max_length=255, pattern=r"^[^/\\\x00]+$")
    content_type: str = Field(default="image/jpeg", max_length=200)
    # as a case response's attachments: OFFSITE_ATTACHMENT_MAX_BYTES is checked after decoding
    content_base64: str = Field(max_length=140_000_000, description="the image, base64")


class CheckOut(BaseModel):
    findings: str = Field(min_length=1, max_length=20_000)
    photos: list[PhotoIn] = Field(
        default_factory=list,
        max_length=20,
        description="photos of the findings (PNG, JPEG, GIF or WebP, proven by their bytes)",
    )


class PhotoPublic(BaseModel):
    id: int
    visit_id: int
    inspector_id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime


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
    photos: list[PhotoPublic] = Field(default_factory=list, description="taken at check-out")


# what the enterprise said of a visit: the inspecting side never reads it
RATING_FIELDS = frozenset({"rating", "rating_comment", "rated_at"})


class VisitRating(BaseModel):
    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=4000)


class ScanGuard(BaseModel):
    """Where the site stands with the frequency guard before an unscheduled visit."""

    recent_visits: int
    max_visits: int
    days: float
    no_disturbance: bool
    needs_reason: bool = Field(description="an unscheduled visit needs an open case or complaint")


class ScanPreview(BaseModel):
    """What the scan page shows after a scan, before checking in: the site, the
    inspector's open tasks there, its open cases and visits to join, the guard."""

    enterprise_id: str
    enterprise_name: str
    region: str
    my_tasks: list[dict]
    open_cases: list[dict]
    open_visits: list[VisitPublic]
    guard: ScanGuard


class ScanRequest(BaseModel):
    token: str = Field(min_length=1, max_length=4096, description="the scanned QR content")

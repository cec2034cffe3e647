"""Notification models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class NotificationPublic(BaseModel):
    id: int
    at: datetime
    enterprise_id: str
    audience: Literal["enterprise", "regulator"]
    case_id: int | None
    kind: str
    message: str

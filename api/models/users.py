"""User models: logging in, who am I, creating users and their API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginResult(BaseModel):
    token: str
    user_id: str
    role: str
    enterprise_id: str | None
    expires_at: datetime


Language = Literal["zh-CN", "en"]


class Me(BaseModel):
    user_id: str
    role: str
    enterprise_id: str | None
    region: str
    lang: Language | None = Field(
        default=None, description="the console language chosen; null: the browser's applies"
    )


class LanguageChoice(BaseModel):
    lang: Language | None = Field(description="null forgets the choice (the browser's applies)")


class UserCreate(BaseModel):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")
    role: Literal["admin", "regulator", "inspector", "enterprise"]
    enterprise_id: str | None = None
    region: str = Field(default="", max_length=200)
    password: str | None = Field(default=None, min_length=12, max_length=1024)
    department: str = Field(
        default="", max_length=200, description="an inspector's department (joint visits list it)"
    )
    active: bool | None = Field(
        default=None,
        description="true reactivates, false deactivates (revoking every token); "
        "left out, an existing user stays as it is and a new one is active",
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
    expires_at: datetime = Field(description="OFFSITE_API_KEY_TTL_DAYS after issue")


class UserBrief(BaseModel):
    """A person as a picker lists them (no enterprise, no dates)."""

    id: str
    role: str
    region: str
    department: str

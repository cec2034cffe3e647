"""Dependencies shared by routes, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from psycopg import AsyncConnection

from offsite.api.feed import AlertFeed
from offsite.api.qr import KeyRing
from offsite.core.settings import Settings


async def _conn(request: Request) -> AsyncIterator[AsyncConnection]:
    async with request.app.state.pool.connection() as conn:
        yield conn


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _keyring(request: Request) -> KeyRing:
    return request.app.state.keyring  # type: ignore[no-any-return]


def _accept_language(request: Request) -> str | None:
    return request.headers.get("accept-language")


def _feed(request: Request) -> AlertFeed:
    return request.app.state.feed  # type: ignore[no-any-return]


Conn = Annotated[AsyncConnection, Depends(_conn)]
SettingsDep = Annotated[Settings, Depends(_settings)]
KeyRingDep = Annotated[KeyRing, Depends(_keyring)]
FeedDep = Annotated[AlertFeed, Depends(_feed)]
# the caller's Accept-Language, for server-written text in a response (not only errors)
AcceptLanguage = Annotated[str | None, Depends(_accept_language)]

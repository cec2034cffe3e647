"""Notifications: what the console shows each audience (written with the case or
invitation they are about, by ``store.cases.notify``)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from offsite.api.queries.rows import fetch_all


async def list_notifications(
    conn: AsyncConnection, visible: list[str] | None, audience: str | None, limit: int
) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        """SELECT id, at, enterprise_id, audience, case_id, kind, message
                                FROM notifications
                                WHERE (%s::text[] IS NULL OR enterprise_id = ANY(%s))
                                  AND (%s::text IS NULL OR audience = %s)
                                ORDER BY id DESC LIMIT %s""",
        (visible, visible, audience, audience, limit),
    )

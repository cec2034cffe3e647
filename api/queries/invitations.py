"""Invitations: an enterprise asks for an advisory check-up (scope and time its own)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from offsite.api.queries.rows import fetch_all, fetch_one
from offsite.store import audit
from offsite.store.notices import notify

INVITATION_COLS = "id, enterprise_id, invited_by, scope, preferred_at, created_at, state"


async def create_invitation(
    conn: AsyncConnection, enterprise_id: str, actor: str, scope: str, preferred_at: datetime | None
) -> dict[str, Any]:
    row = await fetch_one(
        conn,
        f"""INSERT INTO invitations (enterprise_id, invited_by, scope,
                                   preferred_at) VALUES (%s, %s, %s, %s)
                               RETURNING {INVITATION_COLS}""",
        (enterprise_id, actor, scope, preferred_at),
    )
    assert row is not None
    await notify(
        conn,
        enterprise_id,
        "regulator",
        None,
        "invitation.created",
        f"{enterprise_id} invites an advisory check-up (invitation {row['id']}): {scope}",
    )
    await audit.append(
        conn,
        actor,
        "invitation.create",
        f"invitation:{row['id']}",
        {"enterprise_id": enterprise_id, "scope": scope, "preferred_at": preferred_at},
    )
    return row


async def get_invitation(
    conn: AsyncConnection, invitation_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        f"SELECT {INVITATION_COLS} FROM invitations WHERE id = %s"
        + (" FOR UPDATE" if lock else ""),
        (invitation_id,),
    )


async def list_invitations(
    conn: AsyncConnection, visible: list[str] | None, limit: int
) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        f"""SELECT {INVITATION_COLS} FROM invitations
                                 WHERE %s::text[] IS NULL OR enterprise_id = ANY(%s)
                                 ORDER BY id DESC LIMIT %s""",
        (visible, visible, limit),
    )


async def mark_done(conn: AsyncConnection, invitation_id: int) -> None:
    """The invitation's advisory check-up took place."""
    await conn.execute("UPDATE invitations SET state = 'done' WHERE id = %s", (invitation_id,))


async def mark_scheduled(conn: AsyncConnection, invitation_id: int) -> None:
    """The invitation has its advisory task."""
    await conn.execute("UPDATE invitations SET state = 'scheduled' WHERE id = %s", (invitation_id,))

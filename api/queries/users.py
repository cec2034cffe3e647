"""Users and their API tokens: who a token is, logging in, the user list."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row


async def principal_for_token(conn: AsyncConnection, digest: bytes) -> dict[str, Any] | None:
    """The active user behind an unexpired, unrevoked token, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT u.id, u.role, u.enterprise_id, u.region
               FROM api_tokens t JOIN users u ON u.id = t.user_id
               WHERE t.token_sha256 = %s AND t.revoked_at IS NULL AND u.active
                 AND (t.expires_at IS NULL OR t.expires_at > now())""",
            (digest,),
        )
        return await cur.fetchone()


async def user_language(conn: AsyncConnection, user_id: str) -> str | None:
    """The console language the user chose, or None (the browser's applies)."""
    cur = await conn.execute("SELECT lang FROM users WHERE id = %s", (user_id,))
    row = await cur.fetchone()
    return str(row[0]) if row and row[0] is not None else None


async def login_user(conn: AsyncConnection, user_id: str) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, role, password_hash FROM users WHERE id = %s AND active", (user_id,)
        )
        return await cur.fetchone()


async def user_role(conn: AsyncConnection, user_id: str) -> str | None:
    cur = await conn.execute("SELECT role FROM users WHERE id = %s AND active", (user_id,))
    row = await cur.fetchone()
    return str(row[0]) if row else None


async def list_users(conn: AsyncConnection) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, role, enterprise_id, region, department, active, "
            "created_at FROM users ORDER BY id"
        )
        return await cur.fetchall()


async def inspector_covers(conn: AsyncConnection, user_id: str, enterprise_id: str) -> bool:
    """Is ``user_id`` an active inspector whose region ('' = every region, else itself and
    its sub-regions) holds the enterprise? A task may be given only to such an inspector."""
    cur = await conn.execute(
        """SELECT 1 FROM users u JOIN enterprises e ON e.id = %s
           WHERE u.id = %s AND u.active AND u.role = 'inspector'
             AND (u.region = '' OR e.region = u.region
                  OR left(e.region, length(u.region) + 1) = u.region || '/')""",
        (enterprise_id, user_id),
    )
    return await cur.fetchone() is not None


async def assignable_users(conn: AsyncConnection, roles: tuple[str, ...]) -> list[dict[str, Any]]:
    """Active people work may be handed to (the assign pickers list these)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, role, region, department FROM users "
            "WHERE active AND role = ANY(%s) ORDER BY role, id",
            (list(roles),),
        )
        return await cur.fetchall()

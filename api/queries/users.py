"""Users and their API tokens: who a token is, logging in, the user list."""

from __future__ import annotations

from datetime import datetime
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


async def insert_token(
    conn: AsyncConnection, digest: bytes, user_id: str, kind: str, expires_at: datetime | None
) -> None:
    await conn.execute(
        "INSERT INTO api_tokens (token_sha256, user_id, kind, expires_at) VALUES (%s, %s, %s, %s)",
        (digest, user_id, kind, expires_at),
    )


async def revoke_token(conn: AsyncConnection, digest: bytes) -> None:
    await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_sha256 = %s AND revoked_at IS NULL",
        (digest,),
    )


async def list_users(conn: AsyncConnection) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, role, enterprise_id, region, department, active, "
            "created_at FROM users ORDER BY id"
        )
        return await cur.fetchall()


async def upsert_user(
    conn: AsyncConnection,
    user_id: str,
    role: str,
    enterprise_id: str | None,
    region: str,
    password_hash: str | None,
    department: str = "",
) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """INSERT INTO users (id, role, enterprise_id, region, password_hash, department)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (id) DO UPDATE SET role = excluded.role,
                   enterprise_id = excluded.enterprise_id, region = excluded.region,
                   department = excluded.department,
                   password_hash = coalesce(excluded.password_hash, users.password_hash),
                   active = true
               RETURNING id, role, enterprise_id, region, department, active, created_at""",
            (user_id, role, enterprise_id, region, password_hash, department),
        )
        row = await cur.fetchone()
        assert row is not None
        return row


async def deactivate_user(conn: AsyncConnection, user_id: str) -> bool:
    cur = await conn.execute("UPDATE users SET active = false WHERE id = %s", (user_id,))
    await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
        (user_id,),
    )
    return cur.rowcount > 0

"""SQL for authentication, users, device onboarding and QR generations (async, API side)."""

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


async def enterprises_in_region(conn: AsyncConnection, region: str) -> list[str]:
    """A region covers itself and its sub-regions: 'Jiangsu' covers 'Jiangsu/Nanjing'."""
    cur = await conn.execute(
        "SELECT id FROM enterprises WHERE region = %s OR left(region, %s) = %s",
        (region, len(region) + 1, region + "/"),
    )
    return [r[0] for r in await cur.fetchall()]


async def login_user(conn: AsyncConnection, user_id: str) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, role, password_hash FROM users WHERE id = %s AND active", (user_id,)
        )
        return await cur.fetchone()


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


async def point_exists(conn: AsyncConnection, point_id: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM points WHERE id = %s", (point_id,))
    return await cur.fetchone() is not None


async def onboard_device(
    conn: AsyncConnection,
    mn: str,
    point_id: str,
    interval_s: float,
    password: str | None,
    mqtt_hash: str,
) -> bool:
    """Insert a new device, or re-admit a revoked one; False if it exists and is active."""
    cur = await conn.execute(
        """INSERT INTO devices (mn, point_id, interval_s, password, mqtt_password_hash)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (mn) DO UPDATE SET point_id = excluded.point_id,
               interval_s = excluded.interval_s, password = excluded.password,
               mqtt_password_hash = excluded.mqtt_password_hash, active = true,
               revoked_at = NULL, revoked_reason = NULL
           WHERE devices.revoked_at IS NOT NULL""",
        (mn, point_id, interval_s, password, mqtt_hash),
    )
    return cur.rowcount > 0


async def revoke_device(conn: AsyncConnection, mn: str, reason: str) -> bool | None:
    """Revoke; None if no such device, False if it was already revoked."""
    cur = await conn.execute(
        """UPDATE devices SET active = false, revoked_at = now(), revoked_reason = %s,
               mqtt_password_hash = NULL
           WHERE mn = %s AND revoked_at IS NULL""",
        (reason, mn),
    )
    if cur.rowcount:
        return True
    cur = await conn.execute("SELECT 1 FROM devices WHERE mn = %s", (mn,))
    return False if await cur.fetchone() else None


async def device_enterprise(conn: AsyncConnection, mn: str) -> str | None:
    cur = await conn.execute(
        "SELECT p.enterprise_id FROM devices d JOIN points p ON p.id = d.point_id WHERE d.mn = %s",
        (mn,),
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def qr_generation(conn: AsyncConnection, enterprise_id: str) -> int | None:
    cur = await conn.execute(
        "SELECT qr_generation FROM enterprises WHERE id = %s", (enterprise_id,)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def bump_qr_generation(conn: AsyncConnection, enterprise_id: str) -> int | None:
    cur = await conn.execute(
        "UPDATE enterprises SET qr_generation = qr_generation + 1 "
        "WHERE id = %s RETURNING qr_generation",
        (enterprise_id,),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else None

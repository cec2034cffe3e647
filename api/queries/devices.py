"""Devices (data loggers, by MN): the registry's view, one device's detail, onboarding
and revocation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row


async def list_devices(
    conn: AsyncConnection, enterprise: str | None, visible: list[str] | None = None
) -> list[dict[str, Any]]:
    sql = """SELECT d.mn, d.point_id, p.name AS point_name, p.enterprise_id,
                    e.name AS enterprise_name, d.interval_s, d.active, s.last_ts,
                    s.last_received_at, coalesce(s.readings, 0) AS readings
             FROM devices d JOIN points p ON p.id = d.point_id
             JOIN enterprises e ON e.id = p.enterprise_id
             LEFT JOIN device_status s ON s.mn = d.mn"""
    where: list[str] = []
    args: list[Any] = []
    if enterprise is not None:
        where.append("p.enterprise_id = %s")
        args.append(enterprise)
    if visible is not None:
        where.append("p.enterprise_id = ANY(%s)")
        args.append(visible)
    if where:
        sql += " WHERE " + " AND ".join(where)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute((sql + " ORDER BY d.mn").encode(), args)
        return await cur.fetchall()


async def device_exists(conn: AsyncConnection, mn: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM devices WHERE mn = %s", (mn,))
    return await cur.fetchone() is not None


async def last_reading_at(conn: AsyncConnection, mn: str) -> datetime | None:
    """The device time of the device's newest reading (None before its first)."""
    cur = await conn.execute("SELECT last_ts FROM device_status WHERE mn = %s", (mn,))
    row = await cur.fetchone()
    return row[0] if row else None


async def device_info(conn: AsyncConnection, mn: str) -> dict[str, Any] | None:
    """A device with its point, enterprise, interval, registration time and limits."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT d.mn, d.point_id, p.name AS point_name, p.kind AS point_kind,
                                    p.enterprise_id, e.name AS enterprise_name, d.interval_s,
                                    d.active, d.registered_at, s.last_ts, s.last_received_at,
                                    coalesce((SELECT jsonb_object_agg(l.pollutant, l.limit_value)
                                              FROM point_limits l WHERE l.point_id = p.id),
                                             '{}'::jsonb) AS limits
                             FROM devices d JOIN points p ON p.id = d.point_id
                             JOIN enterprises e ON e.id = p.enterprise_id
                             LEFT JOIN device_status s ON s.mn = d.mn
                             WHERE d.mn = %s""",
            (mn,),
        )
        return await cur.fetchone()


async def device_enterprise(conn: AsyncConnection, mn: str) -> str | None:
    cur = await conn.execute(
        "SELECT p.enterprise_id FROM devices d JOIN points p ON p.id = d.point_id WHERE d.mn = %s",
        (mn,),
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def point_exists(conn: AsyncConnection, point_id: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM points WHERE id = %s", (point_id,))
    return await cur.fetchone() is not None

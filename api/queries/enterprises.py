"""Enterprises: the list with open-alert counts, one enterprise with its points, the
regions that scope users, and the QR code's generation."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from offsite.rules.alerts import ACTIVE_STATES_SQL


async def list_enterprises(
    conn: AsyncConnection, visible: list[str] | None = None
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""
            SELECT e.id, e.name, e.region,
                   (SELECT count(*) FROM points p WHERE p.enterprise_id = e.id) AS points,
                   (SELECT count(*) FROM devices d JOIN points p ON p.id = d.point_id
                     WHERE p.enterprise_id = e.id) AS devices,
                   (SELECT count(*) FROM alerts a JOIN devices d ON d.mn = a.mn
                     JOIN points p ON p.id = d.point_id
                     WHERE p.enterprise_id = e.id
                       AND a.state IN ({ACTIVE_STATES_SQL}))
                     AS open_alerts
            FROM enterprises e WHERE %s::text[] IS NULL OR e.id = ANY(%s)
            ORDER BY e.id""".encode(),
            (visible, visible),
        )
        return await cur.fetchall()


async def enterprise_exists(conn: AsyncConnection, enterprise_id: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM enterprises WHERE id = %s", (enterprise_id,))
    return await cur.fetchone() is not None


async def enterprise_detail(conn: AsyncConnection, enterprise_id: str) -> dict[str, Any] | None:
    """An enterprise with its monitoring points (limits, devices and their last reading)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, name, region FROM enterprises WHERE id = %s", (enterprise_id,)
        )
        ent = await cur.fetchone()
        if ent is None:
            return None
        await cur.execute(
            """
            SELECT p.id, p.name, p.kind, p.o2_ref,
                   coalesce((SELECT jsonb_object_agg(l.pollutant, l.limit_value)
                             FROM point_limits l WHERE l.point_id = p.id), '{}'::jsonb)
                     AS limits,
                   coalesce((SELECT jsonb_agg(jsonb_build_object(
                                 'mn', d.mn, 'interval_s', d.interval_s, 'active', d.active,
                                 'last_ts', s.last_ts, 'last_received_at', s.last_received_at)
                                 ORDER BY d.mn)
                             FROM devices d LEFT JOIN device_status s ON s.mn = d.mn
                             WHERE d.point_id = p.id), '[]'::jsonb) AS devices
            FROM points p WHERE p.enterprise_id = %s ORDER BY p.id""",
            (enterprise_id,),
        )
        ent["points"] = await cur.fetchall()
        return ent


async def enterprises_in_region(conn: AsyncConnection, region: str) -> list[str]:
    """A region covers itself and its sub-regions: 'Jiangsu' covers 'Jiangsu/Nanjing'."""
    cur = await conn.execute(
        "SELECT id FROM enterprises WHERE region = %s OR left(region, %s) = %s",
        (region, len(region) + 1, region + "/"),
    )
    return [r[0] for r in await cur.fetchall()]


async def qr_generation(conn: AsyncConnection, enterprise_id: str) -> int | None:
    cur = await conn.execute(
        "SELECT qr_generation FROM enterprises WHERE id = %s", (enterprise_id,)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else None

"""What the overview reads: devices with their site and region, active alerts per site
and severity, today's received reporting slots, and criticals nobody has acknowledged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from offsite.api.queries.alerts import ALERT_COLS, ALERT_FROM
from offsite.rules.alerts import ACTIVE_STATES_SQL


async def devices(conn: AsyncConnection, visible: list[str] | None) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT d.mn, d.point_id, p.name AS point_name, p.enterprise_id,
                      e.name AS enterprise_name, e.region, d.interval_s, d.active,
                      d.registered_at, s.last_ts, s.last_received_at
               FROM devices d JOIN points p ON p.id = d.point_id
               JOIN enterprises e ON e.id = p.enterprise_id
               LEFT JOIN device_status s ON s.mn = d.mn
               WHERE %s::text[] IS NULL OR p.enterprise_id = ANY(%s)
               ORDER BY e.name, d.mn""",
            (visible, visible),
        )
        return await cur.fetchall()


async def open_alerts(
    conn: AsyncConnection, visible: list[str] | None
) -> list[tuple[str, str, int]]:
    cur = await conn.execute(
        f"""SELECT p.enterprise_id, a.severity, count(*)
           FROM alerts a JOIN devices d ON d.mn = a.mn JOIN points p ON p.id = d.point_id
           WHERE a.state IN ({ACTIVE_STATES_SQL})
             AND (%s::text[] IS NULL OR p.enterprise_id = ANY(%s))
           GROUP BY 1, 2""",
        (visible, visible),
    )
    return [(str(e), str(s), int(n)) for e, s, n in await cur.fetchall()]


async def received_since(
    conn: AsyncConnection, since: datetime
) -> dict[str, tuple[int, datetime | None]]:
    """Distinct real-time reporting timestamps per device since ``since``, and the first."""
    cur = await conn.execute(
        "SELECT mn, count(DISTINCT ts), min(ts) FROM readings "
        "WHERE kind = 'rtd' AND ts >= %s GROUP BY mn",
        (since,),
    )
    return {str(mn): (int(n), first) for mn, n, first in await cur.fetchall()}


# a critical nobody has acknowledged stays pinned, even after the engine cleared it
UNSEEN = """a.severity = 'critical' AND a.acknowledged_at IS NULL
            AND a.state IN ('open', 'cleared')"""


async def unseen_criticals(
    conn: AsyncConnection, visible: list[str] | None, limit: int = 100
) -> tuple[int, list[dict[str, Any]]]:
    cur = await conn.execute(
        f"""SELECT count(*) {ALERT_FROM} WHERE {UNSEEN}
            AND (%s::text[] IS NULL OR p.enterprise_id = ANY(%s))""".encode(),
        (visible, visible),
    )
    row = await cur.fetchone()
    async with conn.cursor(row_factory=dict_row) as dcur:
        await dcur.execute(
            f"""SELECT {ALERT_COLS} {ALERT_FROM} WHERE {UNSEEN}
                AND (%s::text[] IS NULL OR p.enterprise_id = ANY(%s))
                ORDER BY a.last_seen DESC LIMIT %s""".encode(),
            (visible, visible, limit),
        )
        return (int(row[0]) if row else 0), await dcur.fetchall()

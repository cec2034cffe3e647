"""SQL for the console's read endpoints (api/routes/console.py), one function per
question. Scoping (which enterprises the caller may see) is applied by the routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from offsite.api.capture import DayCount
from offsite.api.queries import ALERT_FROM


async def alert_counts(
    conn: AsyncConnection,
    *,
    severity: str | None,
    enterprise: str | None,
    mn: str | None,
    rule: str | None,
    pollutant: str | None,
    visible: list[str] | None,
) -> dict[str, int]:
    """Alerts per state under the feed's filters (state itself left out: the counts are
    what the state filter chooses between)."""
    where: list[str] = ["TRUE"]
    args: list[Any] = []
    if visible is not None:
        where.append("p.enterprise_id = ANY(%s)")
        args.append(visible)
    for col, val in (
        ("a.severity", severity),
        ("p.enterprise_id", enterprise),
        ("a.mn", mn),
        ("a.rule", rule),
        ("a.pollutant", pollutant),
    ):
        if val is not None:
            where.append(f"{col} = %s")
            args.append(val)
    sql = f"SELECT a.state, count(*) {ALERT_FROM} WHERE {' AND '.join(where)} GROUP BY 1"
    cur = await conn.execute(sql.encode(), args)
    return {state: int(n) for state, n in await cur.fetchall()}


async def alert_facets(conn: AsyncConnection, visible: list[str] | None) -> dict[str, list[str]]:
    """The rules and pollutants that occur among the caller's alerts: the feed's filter
    choices."""
    out: dict[str, list[str]] = {}
    for col in ("rule", "pollutant"):
        cur = await conn.execute(
            f"""SELECT DISTINCT a.{col} {ALERT_FROM}
                                     WHERE %s::text[] IS NULL OR p.enterprise_id = ANY(%s)
                                     ORDER BY 1""".encode(),
            (visible, visible),
        )
        out[col] = [r[0] for r in await cur.fetchall()]
    return out


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


async def latest_values(conn: AsyncConnection, mn: str, last_ts: datetime) -> list[dict]:
    """The newest real-time value of each pollutant with its flag, looked for in the day
    before the device's last reading (bounded, so it never scans a device's history)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT DISTINCT ON (r.pollutant) r.pollutant, r.ts, r.value, r.flag,
                                    l.limit_value
                             FROM readings r JOIN devices d ON d.mn = r.mn
                             LEFT JOIN point_limits l ON l.point_id = d.point_id
                                                    AND l.pollutant = r.pollutant
                             WHERE r.mn = %s AND r.kind = 'rtd'
                               AND r.ts > %s - interval '1 day' AND r.ts <= %s
                             ORDER BY r.pollutant, r.ts DESC""",
            (mn, last_ts, last_ts),
        )
        return await cur.fetchall()


async def day_counts(
    conn: AsyncConnection, mn: str, start: datetime, end: datetime
) -> list[DayCount]:
    """Distinct real-time reporting timestamps per UTC day, and those with a valid value."""
    cur = await conn.execute(
        """SELECT (date_bin(interval '1 day', ts, timestamptz '1970-01-01')
                   AT TIME ZONE 'UTC')::date,
                  count(DISTINCT ts), count(DISTINCT ts) FILTER (WHERE flag = 'N'), min(ts)
           FROM readings WHERE mn = %s AND kind = 'rtd' AND ts >= %s AND ts < %s
           GROUP BY 1 ORDER BY 1""",
        (mn, start, end),
    )
    return [DayCount(d, int(n), int(v), first) for d, n, v, first in await cur.fetchall()]


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

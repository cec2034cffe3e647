"""The visit frequency guard: recent visits per enterprise, the no-disturbance list and
the refusals it records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from offsite.api.queries.rows import fetch_all
from offsite.store import audit


async def recent_visits(conn: AsyncConnection, enterprise_id: str, days: float) -> int:
    """Visits to the enterprise in the period, advisory ones (which it asked for) aside;
    a joint visit is one row, so it counts once.

    Takes a lock per enterprise held to the end of the caller's transaction, so two
    inspectors checking in at once cannot both be the last visit allowed."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
        (f"offsite-visit-guard:{enterprise_id}",),
    )
    cur = await conn.execute(
        """SELECT count(*) FROM visits WHERE enterprise_id = %s
                                AND kind <> 'advisory'
                                AND checked_in_at > now() - make_interval(secs => %s)""",
        (enterprise_id, days * 86400),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def on_no_disturbance(conn: AsyncConnection, enterprise_id: str) -> bool:
    cur = await conn.execute(
        """SELECT 1 FROM no_disturbance WHERE enterprise_id = %s
                                AND (until IS NULL OR until > now())""",
        (enterprise_id,),
    )
    return await cur.fetchone() is not None


async def record_refusal(
    conn: AsyncConnection,
    enterprise_id: str,
    inspector: str,
    reason: str,
    recent: int,
    listed: bool,
) -> int:
    async with conn.transaction():
        cur = await conn.execute(
            """INSERT INTO visit_refusals (enterprise_id, inspector_id,
                                        reason, recent_visits, no_disturbance)
                                    VALUES (%s, %s, %s, %s, %s) RETURNING id""",
            (enterprise_id, inspector, reason, recent, listed),
        )
        row = await cur.fetchone()
        assert row is not None
        await audit.append(
            conn,
            inspector,
            "visit.refused",
            f"enterprise:{enterprise_id}",
            {
                "refusal_id": row[0],
                "reason": reason,
                "recent_visits": recent,
                "no_disturbance": listed,
            },
        )
    return int(row[0])


async def list_refusals(
    conn: AsyncConnection, visible: list[str] | None, limit: int
) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        """SELECT id, at, enterprise_id, inspector_id, reason,
                                       recent_visits, no_disturbance FROM visit_refusals
                                WHERE %s::text[] IS NULL OR enterprise_id = ANY(%s)
                                ORDER BY id DESC LIMIT %s""",
        (visible, visible, limit),
    )


async def set_no_disturbance(
    conn: AsyncConnection, enterprise_id: str, reason: str, actor: str, until: datetime | None
) -> None:
    async with conn.transaction():
        await conn.execute(
            """INSERT INTO no_disturbance (enterprise_id, reason, added_by, until)
                              VALUES (%s, %s, %s, %s)
                              ON CONFLICT (enterprise_id) DO UPDATE SET reason = excluded.reason,
                                  added_by = excluded.added_by, added_at = now(),
                                  until = excluded.until""",
            (enterprise_id, reason, actor, until),
        )
        await audit.append(
            conn,
            actor,
            "no_disturbance.set",
            f"enterprise:{enterprise_id}",
            {"reason": reason, "until": until},
        )


async def clear_no_disturbance(conn: AsyncConnection, enterprise_id: str, actor: str) -> bool:
    async with conn.transaction():
        cur = await conn.execute(
            "DELETE FROM no_disturbance WHERE enterprise_id = %s", (enterprise_id,)
        )
        if cur.rowcount:
            await audit.append(
                conn, actor, "no_disturbance.clear", f"enterprise:{enterprise_id}", {}
            )
    return cur.rowcount > 0


async def list_no_disturbance(
    conn: AsyncConnection, visible: list[str] | None
) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        """SELECT enterprise_id, reason, added_by, added_at, until
                                FROM no_disturbance
                                WHERE %s::text[] IS NULL OR enterprise_id = ANY(%s)
                                ORDER BY enterprise_id""",
        (visible, visible),
    )

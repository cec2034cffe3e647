"""Alerts: the feed (list, counts, filter choices), one alert with its events and
evidence, and a person's lifecycle actions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

ALERT_COLS = """a.id, a.rule, a.mn, a.pollutant, a.severity, a.state, a.first_seen, a.last_seen,
    a.count, a.worst_value, a.limit_value, a.message, p.enterprise_id, d.point_id, a.opened_at,
    a.updated_at, a.acknowledged_by, a.acknowledged_at, a.closed_by, a.closed_at, a.close_note,
    a.assignee, a.assigned_by, a.assigned_at, a.reopened, a.suppressed,
    e.name AS enterprise_name, p.name AS point_name"""


ALERT_FROM = """FROM alerts a JOIN devices d ON d.mn = a.mn JOIN points p ON p.id = d.point_id
    JOIN enterprises e ON e.id = p.enterprise_id"""


async def list_alerts(
    conn: AsyncConnection,
    *,
    states: list[str] | None,
    severity: str | None,
    enterprise: str | None,
    mn: str | None,
    rule: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
    visible: list[str] | None = None,
    pollutant: str | None = None,
    assignee: str | None = None,
) -> list[dict[str, Any]]:
    where: list[str] = []
    args: list[Any] = []
    if visible is not None:  # the caller's scope (api.auth.Principal.scope)
        where.append("p.enterprise_id = ANY(%s)")
        args.append(visible)
    if states:
        where.append("a.state = ANY(%s)")
        args.append(states)
    for col, val in (
        ("a.severity", severity),
        ("p.enterprise_id", enterprise),
        ("a.mn", mn),
        ("a.rule", rule),
        ("a.pollutant", pollutant),
        ("a.assignee", assignee),
    ):
        if val is not None:
            where.append(f"{col} = %s")
            args.append(val)
    if since is not None:
        where.append("a.last_seen >= %s")
        args.append(since)
    if until is not None:
        where.append("a.first_seen < %s")
        args.append(until)
    sql = f"SELECT {ALERT_COLS} {ALERT_FROM}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY a.last_seen DESC, a.id DESC LIMIT %s OFFSET %s"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.encode(), [*args, limit, offset])
        return await cur.fetchall()


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


async def get_alert(conn: AsyncConnection, alert_id: int) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {ALERT_COLS} {ALERT_FROM} WHERE a.id = %s".encode(), (alert_id,))
        row = await cur.fetchone()
        if row is None:
            return None
        await cur.execute(
            "SELECT id, kind, at, actor, note FROM alert_events WHERE alert_id = %s ORDER BY id",
            (alert_id,),
        )
        row["events"] = await cur.fetchall()
        await cur.execute("SELECT detail FROM alerts WHERE id = %s", (alert_id,))
        detail = (await cur.fetchone() or {}).get("detail") or {}
        row["evidence"] = detail.get("evidence")
        row["rule_config"] = detail.get("rule")
        row["score"] = detail.get("score")
        return row


async def alert_enterprise(conn: AsyncConnection, alert_id: int) -> str | None:
    cur = await conn.execute(
        f"SELECT p.enterprise_id {ALERT_FROM} WHERE a.id = %s".encode(), (alert_id,)
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def alert_owners(conn: AsyncConnection, alert_ids: list[int]) -> dict[int, str]:
    cur = await conn.execute(
        """SELECT a.id, p.enterprise_id FROM alerts a
                                JOIN devices d ON d.mn = a.mn JOIN points p ON p.id = d.point_id
                                WHERE a.id = ANY(%s)""",
        (alert_ids,),
    )
    return {int(a): str(e) for a, e in await cur.fetchall()}

"""SQL for the API routes, one function per question. Routes hold no SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from offsite.rules.alerts import AlertState, transition
from offsite.store.rollups import rollup_table

ALERT_COLS = """a.id, a.rule, a.mn, a.pollutant, a.severity, a.state, a.first_seen, a.last_seen,
    a.count, a.worst_value, a.limit_value, a.message, p.enterprise_id, d.point_id, a.opened_at,
    a.updated_at, a.acknowledged_by, a.acknowledged_at, a.closed_by, a.closed_at, a.close_note,
    a.assignee, a.assigned_by, a.assigned_at, a.reopened, a.suppressed"""
ALERT_FROM = """FROM alerts a JOIN devices d ON d.mn = a.mn JOIN points p ON p.id = d.point_id"""


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


async def act_on_alert(
    conn: AsyncConnection,
    alert_id: int,
    target: AlertState | None,
    by: str,
    note: str | None,
    assignee: str | None = None,
) -> bool:
    """Apply a person's action atomically; False if no such alert.

    ``target`` None is a comment (allowed in every state). Raises
    ``rules.errors.InvalidTransition`` (→ 409) when the state forbids the action.
    """
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute("SELECT state FROM alerts WHERE id = %s FOR UPDATE", (alert_id,))
        row = await cur.fetchone()
        if row is None:
            return False
        kind = "commented"
        if target is not None:
            transition(row[0], target)
            kind = target.value
        if target is AlertState.ACKNOWLEDGED:
            await cur.execute(
                """UPDATE alerts SET state = 'acknowledged', acknowledged_by = %s,
                                 acknowledged_at = now(), updated_at = now() WHERE id = %s""",
                (by, alert_id),
            )
        elif target is AlertState.ASSIGNED:
            await cur.execute(
                """UPDATE alerts SET state = 'assigned', assignee = %s,
                                 assigned_by = %s, assigned_at = now(), updated_at = now()
                                 WHERE id = %s""",
                (assignee, by, alert_id),
            )
            note = f"assigned to {assignee}" + (f": {note}" if note else "")
        elif target is AlertState.OPEN:  # a person reopens a closed alert
            await cur.execute(
                """UPDATE alerts SET state = 'open', reopened = reopened + 1,
                                 closed_by = NULL, closed_at = NULL, close_note = NULL,
                                 updated_at = now() WHERE id = %s""",
                (alert_id,),
            )
            kind = "reopened"
        elif target is not None:
            await cur.execute(
                """UPDATE alerts SET state = %s, closed_by = %s, closed_at = now(),
                                 close_note = %s, updated_at = now() WHERE id = %s""",
                (target.value, by, note, alert_id),
            )
        else:
            await cur.execute("UPDATE alerts SET updated_at = now() WHERE id = %s", (alert_id,))
        await cur.execute(
            """INSERT INTO alert_events (alert_id, kind, actor, note)
                             VALUES (%s, %s, %s, %s) RETURNING id""",
            (alert_id, kind, by, note),
        )
        ev = await cur.fetchone()
        assert ev is not None
        await cur.execute("SELECT pg_notify('offsite_alert_events', %s)", (str(ev[0]),))
    return True


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


async def readings(
    conn: AsyncConnection,
    mn: str,
    start: datetime,
    end: datetime,
    pollutant: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    sql = """SELECT ts, pollutant, kind, value, flag FROM readings
             WHERE mn = %s AND ts >= %s AND ts < %s"""
    args: list[Any] = [mn, start, end]
    if pollutant is not None:
        sql += " AND pollutant = %s"
        args.append(pollutant)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute((sql + " ORDER BY ts, pollutant LIMIT %s").encode(), [*args, limit])
        return await cur.fetchall()


async def buckets(
    conn: AsyncConnection,
    mn: str,
    start: datetime,
    end: datetime,
    pollutant: str | None,
    bucket_s: int,
) -> list[dict[str, Any]]:
    """avg/min/max/count of real-time values per bucket: from the hourly or daily rollup
    when that gives exactly the raw answer (whole hours or days, aligned range), else from
    raw rows. Tests hold both to the same numbers."""
    # date_bin is PostgreSQL ≥ 14's time_bucket; the origin aligns buckets to UTC epochs.
    table = rollup_table(bucket_s, start, end)
    if table is not None:
        sql = f"""SELECT date_bin(make_interval(secs => %s), bucket, timestamptz '1970-01-01')
                        AS bucket, pollutant, sum(total) / sum(n)::float8 AS avg,
                        min(min_value) AS min, max(max_value) AS max, sum(n)::bigint AS count
                 FROM {table}
                 WHERE mn = %s AND bucket >= %s AND bucket < %s AND kind = 'rtd'"""
    else:
        sql = """SELECT date_bin(make_interval(secs => %s), ts, timestamptz '1970-01-01')
                        AS bucket, pollutant, avg(value) AS avg, min(value) AS min,
                        max(value) AS max, count(*) AS count
                 FROM readings WHERE mn = %s AND ts >= %s AND ts < %s AND kind = 'rtd'"""
    args: list[Any] = [bucket_s, mn, start, end]
    if pollutant is not None:
        sql += " AND pollutant = %s"
        args.append(pollutant)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute((sql + " GROUP BY 1, 2 ORDER BY 1, 2").encode(), args)
        return await cur.fetchall()


async def list_enterprises(
    conn: AsyncConnection, visible: list[str] | None = None
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            b"""
            SELECT e.id, e.name, e.region,
                   (SELECT count(*) FROM points p WHERE p.enterprise_id = e.id) AS points,
                   (SELECT count(*) FROM devices d JOIN points p ON p.id = d.point_id
                     WHERE p.enterprise_id = e.id) AS devices,
                   (SELECT count(*) FROM alerts a JOIN devices d ON d.mn = a.mn
                     JOIN points p ON p.id = d.point_id
                     WHERE p.enterprise_id = e.id
                       AND a.state IN ('open', 'acknowledged', 'assigned'))
                     AS open_alerts
            FROM enterprises e WHERE %s::text[] IS NULL OR e.id = ANY(%s)
            ORDER BY e.id""",
            (visible, visible),
        )
        return await cur.fetchall()


async def enterprise_exists(conn: AsyncConnection, enterprise_id: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM enterprises WHERE id = %s", (enterprise_id,))
    return await cur.fetchone() is not None


async def alert_enterprise(conn: AsyncConnection, alert_id: int) -> str | None:
    cur = await conn.execute(
        f"SELECT p.enterprise_id {ALERT_FROM} WHERE a.id = %s".encode(), (alert_id,)
    )
    row = await cur.fetchone()
    return row[0] if row else None


VISIT_COLS = (
    "id, enterprise_id, inspector_id, purpose, alert_id, checked_in_at, "
    "checked_out_at, findings, kind, task_id, case_id, justification, "
    "kind = 'advisory' AS advisory, rating, rating_comment, rated_at"
)


async def create_visit(
    conn: AsyncConnection,
    enterprise_id: str,
    inspector_id: str,
    purpose: str,
    alert_id: int | None,
    kid: str,
    token_sha256: bytes | None = None,
    *,
    kind: str = "unscheduled",
    task_id: int | None = None,
    case_id: int | None = None,
    justification: str | None = None,
) -> dict[str, Any]:
    # committed before the response is sent: the client may act on the id at once
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""INSERT INTO visits (enterprise_id, inspector_id, purpose,
                                  alert_id, token_kid, token_sha256, kind, task_id, case_id,
                                  justification)
                              VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                              RETURNING {VISIT_COLS}""".encode(),
            (
                enterprise_id,
                inspector_id,
                purpose,
                alert_id,
                kid,
                token_sha256,
                kind,
                task_id,
                case_id,
                justification,
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        await add_participant(conn, row["id"], inspector_id, token_sha256)
        return row


async def add_participant(
    conn: AsyncConnection, visit_id: int, inspector_id: str, token_sha256: bytes | None
) -> bool:
    """An inspector (with their department) joins a visit; False if already in it."""
    cur = await conn.execute(
        """INSERT INTO visit_inspectors (visit_id, inspector_id,
                                    department, token_sha256)
                                SELECT %s, %s, coalesce((SELECT department FROM users
                                                         WHERE id = %s), ''), %s
                                ON CONFLICT DO NOTHING""",
        (visit_id, inspector_id, inspector_id, token_sha256),
    )
    return cur.rowcount > 0


async def participants(conn: AsyncConnection, visit_ids: list[int]) -> dict[int, list[dict]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT visit_id, inspector_id, department, checked_in_at,
                                    checked_out_at, findings
                             FROM visit_inspectors WHERE visit_id = ANY(%s)
                             ORDER BY checked_in_at, inspector_id""",
            (visit_ids,),
        )
        out: dict[int, list[dict]] = {v: [] for v in visit_ids}
        for r in await cur.fetchall():
            out[r.pop("visit_id")].append(r)
        return out


async def open_visit_of_task(conn: AsyncConnection, task_id: int) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {VISIT_COLS} FROM visits WHERE task_id = %s
                              AND checked_out_at IS NULL ORDER BY id DESC LIMIT 1""".encode(),
            (task_id,),
        )
        return await cur.fetchone()


async def check_out_participant(
    conn: AsyncConnection, visit_id: int, inspector_id: str, findings: str
) -> tuple[bool, bool]:
    """Check one inspector out of a (joint) visit: (done now, the visit is over).

    The visit itself closes when its last inspector leaves, with everyone's findings."""
    cur = await conn.execute(
        """UPDATE visit_inspectors SET checked_out_at = now(),
                                    findings = %s
                                WHERE visit_id = %s AND inspector_id = %s
                                  AND checked_out_at IS NULL""",
        (findings, visit_id, inspector_id),
    )
    if cur.rowcount == 0:
        return False, False
    await conn.execute("SELECT 1 FROM visits WHERE id = %s FOR UPDATE", (visit_id,))
    cur = await conn.execute(
        """SELECT inspector_id, department, findings, checked_out_at
                                FROM visit_inspectors WHERE visit_id = %s
                                ORDER BY checked_in_at, inspector_id""",
        (visit_id,),
    )
    rows = await cur.fetchall()
    if any(r[3] is None for r in rows):
        return True, False
    combined = (
        findings
        if len(rows) == 1
        else "\n".join(
            f"{who}{f' ({dept})' if dept else ''}: {text}" for who, dept, text, _ in rows
        )
    )
    await conn.execute(
        """UPDATE visits SET checked_out_at = now(), findings = %s
                          WHERE id = %s AND checked_out_at IS NULL""",
        (combined, visit_id),
    )
    return True, True


async def is_participant(conn: AsyncConnection, visit_id: int, inspector_id: str) -> bool | None:
    """True/False for a visit with participants; None for one from before joint visits."""
    cur = await conn.execute(
        "SELECT bool_or(inspector_id = %s) FROM visit_inspectors WHERE visit_id = %s",
        (inspector_id, visit_id),
    )
    row = await cur.fetchone()
    return None if row is None or row[0] is None else bool(row[0])


async def replayed_visit(
    conn: AsyncConnection, inspector_id: str, token_sha256: bytes, window_s: float
) -> dict[str, Any] | None:
    """The open visit this inspector checked in with this very token within the window.

    Serialised per (inspector, token) by an advisory lock held to the end of the caller's
    transaction, so two concurrent replays cannot both find nothing and both insert."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s || %s, 0))",
        (inspector_id, token_sha256.hex()),
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {VISIT_COLS} FROM visits WHERE id = (
                                  SELECT visit_id FROM visit_inspectors
                                  WHERE inspector_id = %s AND token_sha256 = %s
                                    AND checked_out_at IS NULL
                                    AND checked_in_at > now() - make_interval(secs => %s)
                                  ORDER BY checked_in_at DESC LIMIT 1)""".encode(),
            (inspector_id, token_sha256, window_s),
        )
        return await cur.fetchone()


async def rate_visit(
    conn: AsyncConnection, visit_id: int, rating: int, comment: str | None
) -> bool:
    cur = await conn.execute(
        """UPDATE visits SET rating = %s, rating_comment = %s,
                                    rated_at = now() WHERE id = %s""",
        (rating, comment, visit_id),
    )
    return cur.rowcount > 0


async def get_visit(conn: AsyncConnection, visit_id: int) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {VISIT_COLS} FROM visits WHERE id = %s".encode(), (visit_id,))
        return await cur.fetchone()


async def check_out(conn: AsyncConnection, visit_id: int, findings: str) -> dict[str, Any] | None:
    """Close an open visit; None if it was already closed (a concurrent check-out)."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""UPDATE visits SET checked_out_at = now(), findings = %s
                              WHERE id = %s AND checked_out_at IS NULL
                              RETURNING {VISIT_COLS}""".encode(),
            (findings, visit_id),
        )
        return await cur.fetchone()


async def list_visits(
    conn: AsyncConnection,
    enterprise: str | None,
    inspector: str | None,
    limit: int,
    offset: int,
    visible: list[str] | None = None,
) -> list[dict[str, Any]]:
    where: list[str] = []
    args: list[Any] = []
    if visible is not None:
        where.append("enterprise_id = ANY(%s)")
        args.append(visible)
    if enterprise is not None:
        where.append("enterprise_id = %s")
        args.append(enterprise)
    if inspector is not None:  # a joint visit is every participant's
        where.append(
            "(inspector_id = %s OR id IN (SELECT visit_id FROM visit_inspectors "
            "WHERE inspector_id = %s))"
        )
        args.extend((inspector, inspector))
    sql = f"SELECT {VISIT_COLS} FROM visits"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY checked_in_at DESC, id DESC LIMIT %s OFFSET %s"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.encode(), [*args, limit, offset])
        return await cur.fetchall()


async def ingest_workers(conn: AsyncConnection) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("""SELECT worker, host, pid, started_at, heartbeat_at,
                                    extract(epoch FROM now() - heartbeat_at) AS heartbeat_age_s,
                                    broker_connected, gateway_connections, inbox, lag_s,
                                    messages, readings_stored, dead_letters, db_errors,
                                    last_commit_at
                             FROM ingest_workers ORDER BY worker""")
        return await cur.fetchall()


async def health(conn: AsyncConnection) -> dict[str, Any]:
    cur = await conn.execute("""SELECT now(), max(last_received_at), count(*) FROM device_status""")
    row = await cur.fetchone()
    assert row is not None
    return {"db_time": row[0], "latest_reading_received_at": row[1], "devices_reporting": row[2]}

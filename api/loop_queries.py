"""SQL for the closed loop's routes (cases, responses, tasks, invitations, the visit guard,
notifications). One function per question or change; changes write their audit entry,
steps and notices in the caller's transaction (``async with conn.transaction()``)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from offsite.rules.cases import Deadline, due_for_escalation
from offsite.store import audit
from offsite.store.cases import (
    INSERT_CASE,
    INSERT_CASE_ALERT,
    INSERT_NOTICE,
    INSERT_OUTBOX,
    INSERT_STEP,
    OUTBOX_NOTIFY,
    notice_args,
    opened_message,
)

CASE_COLS = """id, enterprise_id, title, state, opened_by, opened_at, response_due_at,
    escalated_at, closed_at, updated_at"""
TASK_COLS = """id, enterprise_id, case_id, invitation_id, advisory, reason, assignee,
    created_by, created_at, due_at, state, visit_id, findings, done_at"""


async def _rows(conn: AsyncConnection, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.encode(), args)
        return await cur.fetchall()


async def _row(conn: AsyncConnection, sql: str, args: Sequence[Any] = ()) -> dict[str, Any] | None:
    rows = await _rows(conn, sql, args)
    return rows[0] if rows else None


async def notify(
    conn: AsyncConnection,
    enterprise_id: str,
    audience: str,
    case_id: int | None,
    kind: str,
    message: str,
) -> None:
    """A notice for the console and the same for outside systems (outbox), together."""
    notice, outbox = notice_args(enterprise_id, audience, case_id, kind, message)
    await conn.execute(INSERT_NOTICE, notice)
    await conn.execute(INSERT_OUTBOX, outbox)
    await conn.execute(OUTBOX_NOTIFY)


async def step(
    conn: AsyncConnection,
    case_id: int,
    actor: str,
    kind: str,
    from_state: str | None,
    to_state: str | None,
    note: str | None,
) -> None:
    await conn.execute(INSERT_STEP, (case_id, actor, kind, from_state, to_state, note))
    await conn.execute("UPDATE cases SET updated_at = now() WHERE id = %s", (case_id,))


# -- cases ---------------------------------------------------------------------------
async def alert_owners(conn: AsyncConnection, alert_ids: list[int]) -> dict[int, str]:
    cur = await conn.execute(
        """SELECT a.id, p.enterprise_id FROM alerts a
                                JOIN devices d ON d.mn = a.mn JOIN points p ON p.id = d.point_id
                                WHERE a.id = ANY(%s)""",
        (alert_ids,),
    )
    return {int(a): str(e) for a, e in await cur.fetchall()}


async def alerts_in_cases(conn: AsyncConnection, alert_ids: list[int]) -> dict[int, int]:
    cur = await conn.execute(
        "SELECT alert_id, case_id FROM case_alerts WHERE alert_id = ANY(%s)", (alert_ids,)
    )
    return {int(a): int(c) for a, c in await cur.fetchall()}


async def create_case(
    conn: AsyncConnection,
    enterprise_id: str,
    title: str,
    alert_ids: list[int],
    actor: str,
    due: datetime | None,
) -> int:
    cur = await conn.execute(INSERT_CASE, (enterprise_id, title, actor, due))
    row = await cur.fetchone()
    assert row is not None
    case_id = int(row[0])
    for a in alert_ids:
        await conn.execute(INSERT_CASE_ALERT, (case_id, a))
    await step(
        conn,
        case_id,
        actor,
        "opened",
        None,
        "discovered",
        f"opened from alert(s) {', '.join(map(str, alert_ids))}",
    )
    await notify(
        conn,
        enterprise_id,
        "enterprise",
        case_id,
        "case.opened",
        opened_message(case_id, title, due),
    )
    await audit.append(
        conn,
        actor,
        "case.open",
        f"case:{case_id}",
        {
            "enterprise_id": enterprise_id,
            "alerts": alert_ids,
            "response_due_at": due,
            "title": title,
        },
    )
    return case_id


async def list_cases(
    conn: AsyncConnection,
    visible: list[str] | None,
    enterprise: str | None,
    state: str | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    where = ["(%s::text[] IS NULL OR enterprise_id = ANY(%s))"]
    args: list[Any] = [visible, visible]
    for col, val in (("enterprise_id", enterprise), ("state", state)):
        if val is not None:
            where.append(f"{col} = %s")
            args.append(val)
    return await _rows(
        conn,
        f"""SELECT {CASE_COLS} FROM cases WHERE {" AND ".join(where)}
                                 ORDER BY id DESC LIMIT %s OFFSET %s""",
        [*args, limit, offset],
    )


async def get_case(
    conn: AsyncConnection, case_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    return await _row(
        conn,
        f"SELECT {CASE_COLS} FROM cases WHERE id = %s" + (" FOR UPDATE" if lock else ""),
        (case_id,),
    )


async def case_detail(conn: AsyncConnection, case: dict[str, Any]) -> dict[str, Any]:
    cid = case["id"]
    out = dict(case)
    out["alerts"] = [
        r["alert_id"]
        for r in await _rows(
            conn, "SELECT alert_id FROM case_alerts WHERE case_id = %s ORDER BY alert_id", (cid,)
        )
    ]
    out["steps"] = await _rows(
        conn,
        """SELECT id, at, actor, kind, from_state, to_state, note
                                        FROM case_steps WHERE case_id = %s ORDER BY id""",
        (cid,),
    )
    responses = await _rows(
        conn,
        """SELECT id, responder, at, explanation, verdict, verdict_by,
                                            verdict_at, verdict_note
                                     FROM case_responses WHERE case_id = %s ORDER BY id""",
        (cid,),
    )
    atts = await _rows(
        conn,
        """SELECT a.id, a.response_id, a.filename, a.content_type, a.size,
                                       encode(a.sha256, 'hex') AS sha256
                                FROM case_attachments a JOIN case_responses r
                                  ON r.id = a.response_id
                                WHERE r.case_id = %s ORDER BY a.id""",
        (cid,),
    )
    for r in responses:
        r["attachments"] = [a for a in atts if a["response_id"] == r["id"]]
    out["responses"] = responses
    out["tasks"] = await _rows(
        conn, f"SELECT {TASK_COLS} FROM inspection_tasks WHERE case_id = %s ORDER BY id", (cid,)
    )
    return out


async def open_tasks_of_case(conn: AsyncConnection, case_id: int) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM inspection_tasks WHERE case_id = %s AND state = 'open'", (case_id,)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def move_case(
    conn: AsyncConnection, case: dict[str, Any], target: str, actor: str, note: str | None
) -> None:
    await conn.execute(
        """UPDATE cases SET state = %s, updated_at = now(),
                              closed_at = CASE WHEN %s = 'closed' THEN now() END
                          WHERE id = %s""",
        (target, target, case["id"]),
    )
    await step(conn, case["id"], actor, "moved", case["state"], target, note)
    await notify(
        conn,
        case["enterprise_id"],
        "enterprise",
        case["id"],
        "case.moved",
        f"case {case['id']} is now {target}" + (f": {note}" if note else ""),
    )
    await audit.append(
        conn,
        actor,
        "case.move",
        f"case:{case['id']}",
        {"from": case["state"], "to": target, "note": note},
    )


async def add_response(
    conn: AsyncConnection,
    case: dict[str, Any],
    responder: str,
    explanation: str,
    files: list[tuple[str, str, bytes]],
) -> int:
    cur = await conn.execute(
        """INSERT INTO case_responses (case_id, responder, explanation)
                                VALUES (%s, %s, %s) RETURNING id""",
        (case["id"], responder, explanation),
    )
    row = await cur.fetchone()
    assert row is not None
    rid = int(row[0])
    hashes = []
    for name, ctype, content in files:
        digest = hashlib.sha256(content).digest()
        hashes.append({"filename": name, "size": len(content), "sha256": digest.hex()})
        await conn.execute(
            """INSERT INTO case_attachments (response_id, filename, content_type,
                                  size, sha256, content) VALUES (%s, %s, %s, %s, %s, %s)""",
            (rid, name, ctype, len(content), digest, content),
        )
    await step(
        conn,
        case["id"],
        responder,
        "response",
        None,
        None,
        f"response {rid}" + (f" with {len(files)} attachment(s)" if files else ""),
    )
    await notify(
        conn,
        case["enterprise_id"],
        "regulator",
        case["id"],
        "case.response",
        f"case {case['id']}: the enterprise responded (response {rid})",
    )
    await audit.append(
        conn,
        responder,
        "case.respond",
        f"case:{case['id']}",
        {
            "response_id": rid,
            "explanation_sha256": hashlib.sha256(explanation.encode()).hexdigest(),
            "attachments": hashes,
        },
    )
    return rid


async def get_response(
    conn: AsyncConnection, case_id: int, response_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    return await _row(
        conn,
        "SELECT id, verdict FROM case_responses WHERE id = %s AND case_id = %s"
        + (" FOR UPDATE" if lock else ""),
        (response_id, case_id),
    )


async def judge_response(
    conn: AsyncConnection,
    case: dict[str, Any],
    response_id: int,
    accept: bool,
    actor: str,
    note: str | None,
    new_due: datetime | None,
) -> None:
    verdict = "accepted" if accept else "rejected"
    await conn.execute(
        """UPDATE case_responses SET verdict = %s, verdict_by = %s,
                              verdict_at = now(), verdict_note = %s WHERE id = %s""",
        (verdict, actor, note, response_id),
    )
    # accepted: nothing more is due; rejected: a new deadline if one is given
    await conn.execute(
        "UPDATE cases SET response_due_at = %s, escalated_at = NULL WHERE id = %s",
        (None if accept else new_due, case["id"]),
    )
    await step(
        conn,
        case["id"],
        actor,
        verdict,
        None,
        None,
        f"response {response_id} {verdict}" + (f": {note}" if note else ""),
    )
    await notify(
        conn,
        case["enterprise_id"],
        "enterprise",
        case["id"],
        f"case.response_{verdict}",
        f"case {case['id']}: your response {response_id} was {verdict}"
        + (f": {note}" if note else "")
        + (
            f"; respond again by {new_due.isoformat(timespec='minutes')}"
            if new_due and not accept
            else ""
        ),
    )
    await audit.append(
        conn,
        actor,
        f"case.response_{verdict}",
        f"case:{case['id']}",
        {"response_id": response_id, "note": note, "new_due": new_due},
    )


async def attachment(
    conn: AsyncConnection, case_id: int, attachment_id: int
) -> dict[str, Any] | None:
    return await _row(
        conn,
        """SELECT a.filename, a.content_type, a.content, a.sha256
                               FROM case_attachments a JOIN case_responses r
                                 ON r.id = a.response_id
                               WHERE a.id = %s AND r.case_id = %s""",
        (attachment_id, case_id),
    )


async def escalate_overdue(conn: AsyncConnection, now: datetime) -> list[int]:
    """Escalate every case whose response is overdue at ``now`` (the decision is
    ``rules.cases.due_for_escalation``); each once, in one transaction."""
    async with conn.transaction():
        rows = await _rows(
            conn,
            """
            SELECT c.id, c.state, c.response_due_at, c.escalated_at, c.enterprise_id,
                   (SELECT max(at) FROM case_responses r WHERE r.case_id = c.id) AS last_at,
                   (SELECT count(*) FROM case_responses r WHERE r.case_id = c.id
                      AND r.verdict IS NULL) AS pending
            FROM cases c
            WHERE c.response_due_at IS NOT NULL AND c.escalated_at IS NULL
              AND c.state <> 'closed' AND c.response_due_at <= %s
            FOR UPDATE OF c SKIP LOCKED""",
            (now,),
        )
        due = set(
            due_for_escalation(
                [
                    Deadline(
                        r["id"],
                        r["state"],
                        r["response_due_at"],
                        r["escalated_at"],
                        r["last_at"],
                        r["pending"],
                    )
                    for r in rows
                ],
                now,
            )
        )
        for r in rows:
            if r["id"] not in due:
                continue
            await conn.execute(
                "UPDATE cases SET escalated_at = %s, updated_at = now() WHERE id = %s",
                (now, r["id"]),
            )
            note = f"no response by {r['response_due_at'].isoformat(timespec='minutes')}"
            await step(conn, r["id"], "system", "escalated", None, None, note)
            await notify(
                conn,
                r["enterprise_id"],
                "regulator",
                r["id"],
                "case.escalated",
                f"case {r['id']} escalated: {note}",
            )
            await audit.append(
                conn,
                "system",
                "case.escalate",
                f"case:{r['id']}",
                {"response_due_at": r["response_due_at"], "at": now},
            )
    return sorted(due)


async def list_notifications(
    conn: AsyncConnection, visible: list[str] | None, audience: str | None, limit: int
) -> list[dict[str, Any]]:
    return await _rows(
        conn,
        """SELECT id, at, enterprise_id, audience, case_id, kind, message
                                FROM notifications
                                WHERE (%s::text[] IS NULL OR enterprise_id = ANY(%s))
                                  AND (%s::text IS NULL OR audience = %s)
                                ORDER BY id DESC LIMIT %s""",
        (visible, visible, audience, audience, limit),
    )


# -- tasks ---------------------------------------------------------------------------
async def user_role(conn: AsyncConnection, user_id: str) -> str | None:
    cur = await conn.execute("SELECT role FROM users WHERE id = %s AND active", (user_id,))
    row = await cur.fetchone()
    return str(row[0]) if row else None


async def create_task(
    conn: AsyncConnection,
    enterprise_id: str,
    case_id: int | None,
    invitation_id: int | None,
    reason: str,
    assignee: str,
    actor: str,
    due: datetime | None,
) -> int:
    advisory = invitation_id is not None
    cur = await conn.execute(
        f"""INSERT INTO inspection_tasks (enterprise_id, case_id,
                                     invitation_id, advisory, reason, assignee, created_by,
                                     due_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                                 RETURNING {TASK_COLS}""",
        (enterprise_id, case_id, invitation_id, advisory, reason, assignee, actor, due),
    )
    row = await cur.fetchone()
    assert row is not None
    task_id = int(row[0])
    if case_id is not None:
        await step(
            conn,
            case_id,
            actor,
            "task",
            None,
            None,
            f"inspection task {task_id} for {assignee}: {reason}",
        )
    await audit.append(
        conn,
        actor,
        "task.create",
        f"task:{task_id}",
        {
            "enterprise_id": enterprise_id,
            "case_id": case_id,
            "invitation_id": invitation_id,
            "advisory": advisory,
            "assignee": assignee,
            "reason": reason,
            "due_at": due,
        },
    )
    return task_id


async def get_task(
    conn: AsyncConnection, task_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    return await _row(
        conn,
        f"SELECT {TASK_COLS} FROM inspection_tasks WHERE id = %s" + (" FOR UPDATE" if lock else ""),
        (task_id,),
    )


async def list_tasks(
    conn: AsyncConnection,
    visible: list[str] | None,
    assignee: str | None,
    state: str | None,
    limit: int,
    offset: int,
    alert_id: int | None = None,
) -> list[dict[str, Any]]:
    where = ["(%s::text[] IS NULL OR enterprise_id = ANY(%s))"]
    args: list[Any] = [visible, visible]
    for col, val in (("assignee", assignee), ("state", state)):
        if val is not None:
            where.append(f"{col} = %s")
            args.append(val)
    if alert_id is not None:  # tasks of the case the alert is evidence in
        where.append("case_id = (SELECT case_id FROM case_alerts WHERE alert_id = %s)")
        args.append(alert_id)
    return await _rows(
        conn,
        f"""SELECT {TASK_COLS} FROM inspection_tasks
                                 WHERE {" AND ".join(where)}
                                 ORDER BY id DESC LIMIT %s OFFSET %s""",
        [*args, limit, offset],
    )


async def finish_task(
    conn: AsyncConnection, task: dict[str, Any], visit_id: int, findings: str, actor: str
) -> None:
    await conn.execute(
        """UPDATE inspection_tasks SET state = 'done', visit_id = %s,
                              findings = %s, done_at = now() WHERE id = %s""",
        (visit_id, findings, task["id"]),
    )
    if task["case_id"] is not None:
        await step(
            conn,
            task["case_id"],
            actor,
            "task_done",
            None,
            None,
            f"task {task['id']} done by visit {visit_id}: {findings}",
        )
    if task["invitation_id"] is not None:
        await conn.execute(
            "UPDATE invitations SET state = 'done' WHERE id = %s", (task["invitation_id"],)
        )
    await audit.append(
        conn,
        actor,
        "task.done",
        f"task:{task['id']}",
        {"visit_id": visit_id, "findings": findings, "advisory": task["advisory"]},
    )


# -- invitations ---------------------------------------------------------------------
INVITATION_COLS = "id, enterprise_id, invited_by, scope, preferred_at, created_at, state"


async def create_invitation(
    conn: AsyncConnection, enterprise_id: str, actor: str, scope: str, preferred_at: datetime | None
) -> dict[str, Any]:
    row = await _row(
        conn,
        f"""INSERT INTO invitations (enterprise_id, invited_by, scope,
                                   preferred_at) VALUES (%s, %s, %s, %s)
                               RETURNING {INVITATION_COLS}""",
        (enterprise_id, actor, scope, preferred_at),
    )
    assert row is not None
    await notify(
        conn,
        enterprise_id,
        "regulator",
        None,
        "invitation.created",
        f"{enterprise_id} invites an advisory check-up (invitation {row['id']}): {scope}",
    )
    await audit.append(
        conn,
        actor,
        "invitation.create",
        f"invitation:{row['id']}",
        {"enterprise_id": enterprise_id, "scope": scope, "preferred_at": preferred_at},
    )
    return row


async def get_invitation(
    conn: AsyncConnection, invitation_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    return await _row(
        conn,
        f"SELECT {INVITATION_COLS} FROM invitations WHERE id = %s"
        + (" FOR UPDATE" if lock else ""),
        (invitation_id,),
    )


async def list_invitations(
    conn: AsyncConnection, visible: list[str] | None, limit: int
) -> list[dict[str, Any]]:
    return await _rows(
        conn,
        f"""SELECT {INVITATION_COLS} FROM invitations
                                 WHERE %s::text[] IS NULL OR enterprise_id = ANY(%s)
                                 ORDER BY id DESC LIMIT %s""",
        (visible, visible, limit),
    )


# -- the frequency guard -------------------------------------------------------------
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
    return await _rows(
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
    return await _rows(
        conn,
        """SELECT enterprise_id, reason, added_by, added_at, until
                                FROM no_disturbance
                                WHERE %s::text[] IS NULL OR enterprise_id = ANY(%s)
                                ORDER BY enterprise_id""",
        (visible, visible),
    )

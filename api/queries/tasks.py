"""Inspection tasks: created for a case or an invitation, done by a visit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from offsite.api.queries import invitations
from offsite.api.queries.rows import fetch_all, fetch_one
from offsite.store import audit
from offsite.store.cases import (
    add_step,
)

TASK_COLS = """id, enterprise_id, case_id, invitation_id, advisory, reason, assignee,
    created_by, created_at, due_at, state, visit_id, findings, done_at"""


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
        await add_step(
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
    return await fetch_one(
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
    return await fetch_all(
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
        await add_step(
            conn,
            task["case_id"],
            actor,
            "task_done",
            None,
            None,
            f"task {task['id']} done by visit {visit_id}: {findings}",
        )
    if task["invitation_id"] is not None:
        await invitations.mark_done(conn, task["invitation_id"])
    await audit.append(
        conn,
        actor,
        "task.done",
        f"task:{task['id']}",
        {"visit_id": visit_id, "findings": findings, "advisory": task["advisory"]},
    )

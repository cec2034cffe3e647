"""Cases of the closed loop (discovery -> verification -> rectification -> feedback), read:
the list, one case with its alerts, steps, responses and tasks, attachments. Every change
to a case goes through ``store/cases.py``, the tables' one writer."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from offsite.api.queries.rows import fetch_all, fetch_one
from offsite.api.queries.tasks import TASK_COLS

CASE_COLS = """id, enterprise_id, title, state, opened_by, opened_at, response_due_at,
    escalated_at, closed_at, updated_at"""


async def alerts_in_cases(conn: AsyncConnection, alert_ids: list[int]) -> dict[int, int]:
    cur = await conn.execute(
        "SELECT alert_id, case_id FROM case_alerts WHERE alert_id = ANY(%s)", (alert_ids,)
    )
    return {int(a): int(c) for a, c in await cur.fetchall()}


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
    return await fetch_all(
        conn,
        f"""SELECT {CASE_COLS} FROM cases WHERE {" AND ".join(where)}
                                 ORDER BY id DESC LIMIT %s OFFSET %s""",
        [*args, limit, offset],
    )


async def get_case(
    conn: AsyncConnection, case_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        f"SELECT {CASE_COLS} FROM cases WHERE id = %s" + (" FOR UPDATE" if lock else ""),
        (case_id,),
    )


async def case_detail(conn: AsyncConnection, case: dict[str, Any]) -> dict[str, Any]:
    cid = case["id"]
    out = dict(case)
    out["alerts"] = [
        r["alert_id"]
        for r in await fetch_all(
            conn, "SELECT alert_id FROM case_alerts WHERE case_id = %s ORDER BY alert_id", (cid,)
        )
    ]
    out["steps"] = await fetch_all(
        conn,
        """SELECT id, at, actor, kind, from_state, to_state, note
                                        FROM case_steps WHERE case_id = %s ORDER BY id""",
        (cid,),
    )
    responses = await fetch_all(
        conn,
        """SELECT id, responder, at, explanation, verdict, verdict_by,
                                            verdict_at, verdict_note
                                     FROM case_responses WHERE case_id = %s ORDER BY id""",
        (cid,),
    )
    atts = await fetch_all(
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
    out["tasks"] = await fetch_all(
        conn, f"SELECT {TASK_COLS} FROM inspection_tasks WHERE case_id = %s ORDER BY id", (cid,)
    )
    return out


def as_enterprise_sees(detail: dict[str, Any]) -> dict[str, Any]:
    """A case as its enterprise sees it: an inspection is not announced, so a task still
    open and the step that created it (naming the inspector, the reason and the due time)
    are left out; once the visit has closed the task, the enterprise has met the inspector
    and sees both.

    'task' steps are written by ``queries.tasks.create_task`` in the task's own
    transaction, one per task, so the n-th 'task' step belongs to the n-th task by id."""
    tasks = sorted(detail["tasks"], key=lambda t: t["id"])
    task_steps = [s for s in detail["steps"] if s["kind"] == "task"]
    hidden_steps = {
        s["id"] for s, t in zip(task_steps, tasks, strict=False) if t["state"] != "done"
    }
    # a 'task' step with no task row (cannot happen today) is hidden too
    hidden_steps |= {s["id"] for s in task_steps[len(tasks) :]}
    return {
        **detail,
        "tasks": [t for t in detail["tasks"] if t["state"] == "done"],
        "steps": [s for s in detail["steps"] if s["id"] not in hidden_steps],
    }


async def open_tasks_of_case(conn: AsyncConnection, case_id: int) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM inspection_tasks WHERE case_id = %s AND state = 'open'", (case_id,)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def get_response(
    conn: AsyncConnection, case_id: int, response_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        "SELECT id, verdict FROM case_responses WHERE id = %s AND case_id = %s"
        + (" FOR UPDATE" if lock else ""),
        (response_id, case_id),
    )


async def attachment(
    conn: AsyncConnection, case_id: int, attachment_id: int
) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        """SELECT a.filename, a.content_type, a.content, a.sha256
                               FROM case_attachments a JOIN case_responses r
                                 ON r.id = a.response_id
                               WHERE a.id = %s AND r.case_id = %s""",
        (attachment_id, case_id),
    )


async def attachment_usage(
    conn: AsyncConnection, case_id: int, enterprise_id: str
) -> tuple[int, int]:
    """Bytes of attachments kept for the case, and for all the enterprise's cases.

    Takes a transaction-long lock per enterprise first, so two responses to different
    cases of one enterprise cannot both pass its quota (call it inside the transaction
    that adds the attachments)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('case_attachments:' || %s, 0))",
        (enterprise_id,),
    )
    cur = await conn.execute(
        """SELECT coalesce(sum(a.size) FILTER (WHERE r.case_id = %s), 0),
                  coalesce(sum(a.size), 0)
           FROM case_attachments a JOIN case_responses r ON r.id = a.response_id
           JOIN cases c ON c.id = r.case_id
           WHERE c.enterprise_id = %s""",
        (case_id, enterprise_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])

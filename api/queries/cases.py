"""Cases of the closed loop (discovery -> verification -> rectification -> feedback):
opening from alerts, moves, the enterprise's responses and their verdicts, escalation.
Changes write their audit entry, steps and notices in the caller's transaction."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from offsite.api.queries.rows import fetch_all, fetch_one
from offsite.api.queries.tasks import TASK_COLS
from offsite.rules.cases import Deadline, due_for_escalation
from offsite.store import audit
from offsite.store.cases import (
    INSERT_CASE,
    INSERT_CASE_ALERT,
    add_step,
    notify,
    opened_message,
)

CASE_COLS = """id, enterprise_id, title, state, opened_by, opened_at, response_due_at,
    escalated_at, closed_at, updated_at"""


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
    await add_step(
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
    await add_step(conn, case["id"], actor, "moved", case["state"], target, note)
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
    await add_step(
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
    return await fetch_one(
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
    await add_step(
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
    return await fetch_one(
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
        rows = await fetch_all(
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
            await add_step(conn, r["id"], "system", "escalated", None, None, note)
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

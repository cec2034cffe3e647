"""Cases of the closed loop, the only writer of ``cases``, ``case_alerts``, ``case_steps``,
``case_responses`` and ``case_attachments``: the rule runner opens cases (synchronous,
inside its alert transaction), people open, move and judge them through the API (async,
the routes' transaction), the escalation task escalates them. ``api/queries/cases.py``
only reads.

A case is opened by a regulator from alerts, or by the engine for alerts of the
``[cases] open_for_severity`` of the rules file. Either way the enterprise is told (a
``notifications`` row) and outside systems too (a ``webhook_outbox`` row, sent later by
``api/webhook.py``; both written by ``store/notices.py``), in the same transaction as
the case itself: a case nobody was told about cannot exist, nor a notice about a case
that was rolled back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from offsite.rules.cases import Deadline, due_for_escalation
from offsite.rules.findings import SEVERITY_RANK
from offsite.store import audit
from offsite.store.audit import append_sync
from offsite.store.notices import notify, notify_sync

INSERT_CASE = """INSERT INTO cases (enterprise_id, title, opened_by, response_due_at)
                 VALUES (%s, %s, %s, %s) RETURNING id"""
INSERT_CASE_ALERT = "INSERT INTO case_alerts (case_id, alert_id) VALUES (%s, %s)"
INSERT_STEP = """INSERT INTO case_steps (case_id, actor, kind, from_state, to_state, note)
                 VALUES (%s, %s, %s, %s, %s, %s)"""


async def add_step(
    conn: AsyncConnection,
    case_id: int,
    actor: str,
    kind: str,
    from_state: str | None,
    to_state: str | None,
    note: str | None,
) -> None:
    """One step in a case's history; the case's ``updated_at`` moves with it."""
    await conn.execute(INSERT_STEP, (case_id, actor, kind, from_state, to_state, note))
    await conn.execute("UPDATE cases SET updated_at = now() WHERE id = %s", (case_id,))


def _rank(severity: str) -> int:
    return SEVERITY_RANK.get(severity, -1)


def open_cases_for(
    conn: psycopg.Connection,
    events: Iterable[tuple[int, str]],
    min_severity: str | None,
    response_within: timedelta,
    now: datetime,
) -> list[int]:
    """The engine's share of discovery: for alerts just opened (or escalated) at
    ``min_severity`` or worse and in no case yet, open one case per enterprise.

    Runs in the rule runner's transaction, so an alert and its case commit together.
    Returns the new case ids."""
    if min_severity is None:
        return []
    ids = sorted({a for a, kind in events if kind in ("opened", "updated", "reopened")})
    if not ids:
        return []
    rows = conn.execute(
        """SELECT a.id, a.severity, a.rule, a.pollutant, a.mn, p.enterprise_id
           FROM alerts a JOIN devices d ON d.mn = a.mn JOIN points p ON p.id = d.point_id
           WHERE a.id = ANY(%s)
             AND NOT EXISTS (SELECT 1 FROM case_alerts c WHERE c.alert_id = a.id)
           ORDER BY a.id""",
        (ids,),
    ).fetchall()
    by_enterprise: dict[str, list[tuple[int, str]]] = {}
    for alert_id, severity, rule, pollutant, mn, enterprise in rows:
        if _rank(severity) >= _rank(min_severity):
            label = f"{rule} {pollutant} at {mn}".replace("  ", " ")
            by_enterprise.setdefault(enterprise, []).append((alert_id, label))
    opened = []
    for enterprise, alerts in sorted(by_enterprise.items()):
        title = "; ".join(label for _, label in alerts)[:500]
        case_id = _insert_case(
            conn,
            enterprise,
            f"{min_severity}+: {title}",
            "engine",
            now + response_within,
            [a for a, _ in alerts],
        )
        opened.append(case_id)
    return opened


def _insert_case(
    conn: psycopg.Connection,
    enterprise: str,
    title: str,
    actor: str,
    due: datetime | None,
    alert_ids: list[int],
) -> int:
    row = conn.execute(INSERT_CASE, (enterprise, title, actor, due)).fetchone()
    assert row is not None
    case_id = int(row[0])
    for a in alert_ids:
        conn.execute(INSERT_CASE_ALERT, (case_id, a))
    conn.execute(
        INSERT_STEP,
        (
            case_id,
            actor,
            "opened",
            None,
            "discovered",
            f"opened from alert(s) {', '.join(map(str, alert_ids))}",
        ),
    )
    notify_sync(
        conn, enterprise, "enterprise", case_id, "case.opened", _opened_message(case_id, title, due)
    )
    append_sync(
        conn,
        actor,
        "case.open",
        f"case:{case_id}",
        {"enterprise_id": enterprise, "alerts": alert_ids, "response_due_at": due},
    )
    return case_id


def _opened_message(case_id: int, title: str, due: datetime | None) -> str:
    when = f"; respond by {due.isoformat(timespec='minutes')}" if due else ""
    return f"case {case_id} opened: {title}{when}"


def opened_message(case_id: int, title: str, due: datetime | None) -> str:
    """The notice an enterprise gets when a case about it opens."""
    return _opened_message(case_id, title, due)


def case_counts(conn: psycopg.Connection) -> Mapping[str, int]:
    """Cases per state (for the CLI and metrics)."""
    return dict(conn.execute("SELECT state, count(*) FROM cases GROUP BY state").fetchall())


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


async def escalate_overdue(conn: AsyncConnection, now: datetime) -> list[int]:
    """Escalate every case whose response is overdue at ``now`` (the decision is
    ``rules.cases.due_for_escalation``); each once, in one transaction."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
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
        rows = await cur.fetchall()
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

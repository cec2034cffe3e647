"""Cases of the closed loop, written where they start: the SQL shared by the rule runner
(synchronous, inside its alert transaction) and the API (``api/queries/cases.py``).

A case is opened by a regulator from alerts, or by the engine for alerts of the
``[cases] open_for_severity`` of the rules file. Either way the enterprise is told (a
``notifications`` row) and outside systems too (a ``webhook_outbox`` row, sent later by
``api/webhook.py``), in the same transaction as the case itself: a case nobody was told
about cannot exist, nor a notice about a case that was rolled back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from offsite.rules.findings import SEVERITY_RANK
from offsite.store.audit import append_sync

INSERT_CASE = """INSERT INTO cases (enterprise_id, title, opened_by, response_due_at)
                 VALUES (%s, %s, %s, %s) RETURNING id"""
INSERT_CASE_ALERT = "INSERT INTO case_alerts (case_id, alert_id) VALUES (%s, %s)"
INSERT_STEP = """INSERT INTO case_steps (case_id, actor, kind, from_state, to_state, note)
                 VALUES (%s, %s, %s, %s, %s, %s)"""
INSERT_NOTICE = """INSERT INTO notifications (enterprise_id, audience, case_id, kind, message)
                   VALUES (%s, %s, %s, %s, %s) RETURNING id"""
INSERT_OUTBOX = "INSERT INTO webhook_outbox (event, payload) VALUES (%s, %s) RETURNING id"
OUTBOX_NOTIFY = "SELECT pg_notify('offsite_webhook', '')"


def notice_args(
    enterprise_id: str, audience: str, case_id: int | None, kind: str, message: str
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The arguments of INSERT_NOTICE and INSERT_OUTBOX for one notice: what the console
    shows and what outside systems receive say the same thing."""
    payload = {
        "event": kind,
        "enterprise_id": enterprise_id,
        "audience": audience,
        "case_id": case_id,
        "message": message,
    }
    return ((enterprise_id, audience, case_id, kind, message), (kind, Jsonb(payload)))


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
    notice, outbox = notice_args(
        enterprise, "enterprise", case_id, "case.opened", _opened_message(case_id, title, due)
    )
    conn.execute(INSERT_NOTICE, notice)
    conn.execute(INSERT_OUTBOX, outbox)
    conn.execute(OUTBOX_NOTIFY)
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

"""Persist the engine's alert plans; every change of state is an event and a NOTIFY.

Repeats update the alert (last seen, count, worst value) without an event: an alert
firing every few seconds for a day would otherwise write tens of thousands of rows and
pushes. An escalation of severity is an event ("updated").

The upsert targets the partial unique index ``alerts_one_active``. When there is no
active alert for the key, the newest alert of the key is reopened if it was closed
(resolved by a person or cleared by the engine) no more than ``reopen_within`` before
the condition returned, in device time; otherwise a new alert opens.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from offsite.rules.alerts import (
    ACTIVE_STATES_SQL,
    AlertKey,
    AlertState,
    AlertUpsert,
    Plan,
    transition,
)

NOTIFY_CHANNEL = "offsite_alert_events"

_UPSERT = f"""
WITH prev AS (SELECT severity FROM alerts WHERE rule = %(rule)s AND mn = %(mn)s
              AND pollutant = %(pollutant)s AND state IN ({ACTIVE_STATES_SQL}))
INSERT INTO alerts AS a (rule, mn, pollutant, severity, state, first_seen, last_seen, count,
                         worst_value, limit_value, message, detail, suppressed)
VALUES (%(rule)s, %(mn)s, %(pollutant)s, %(severity)s, 'open', %(first_seen)s,
        %(last_seen)s, %(count)s, %(worst)s, %(limit)s, %(message)s, %(detail)s,
        %(suppressed)s)
ON CONFLICT (rule, mn, pollutant) WHERE state IN ({ACTIVE_STATES_SQL})
DO UPDATE SET
    last_seen = greatest(a.last_seen, excluded.last_seen),
    first_seen = least(a.first_seen, excluded.first_seen),
    count = a.count + excluded.count,
    worst_value = greatest(a.worst_value, excluded.worst_value),
    limit_value = coalesce(excluded.limit_value, a.limit_value),
    severity = CASE WHEN array_position(ARRAY['info','warning','major','critical'],
                                        excluded.severity)
                       > array_position(ARRAY['info','warning','major','critical'], a.severity)
                    THEN excluded.severity ELSE a.severity END,
    message = excluded.message,
    updated_at = now()
RETURNING id, (xmax = 0) AS inserted, a.severity <> (SELECT severity FROM prev) AS escalated
"""

_REOPEN = """
UPDATE alerts AS a SET state = 'open', reopened = a.reopened + 1,
    last_seen = greatest(a.last_seen, %(last_seen)s), count = a.count + %(count)s,
    worst_value = greatest(a.worst_value, %(worst)s),
    severity = CASE WHEN array_position(ARRAY['info','warning','major','critical'],
                                        %(severity)s::text)
                       > array_position(ARRAY['info','warning','major','critical'], a.severity)
                    THEN %(severity)s ELSE a.severity END,
    message = %(message)s, closed_at = NULL, closed_by = NULL, close_note = NULL,
    updated_at = now()
WHERE a.id = (SELECT id FROM alerts WHERE rule = %(rule)s AND mn = %(mn)s
              AND pollutant = %(pollutant)s ORDER BY id DESC LIMIT 1)
  AND a.state IN ('resolved', 'cleared')
  AND %(first_seen)s - a.last_seen <= %(reopen)s
RETURNING id
"""


# (alert id, event kind, device time the event starts an episode at, when the row
# cannot tell: a reopened episode's first reading)
Event = tuple[int, str, datetime | None]


def _upsert(cur: psycopg.Cursor, u: AlertUpsert, reopen_within: timedelta) -> list[Event]:
    args = {
        "rule": u.rule,
        "mn": u.mn,
        "pollutant": u.pollutant,
        "severity": u.severity,
        "first_seen": u.first_seen,
        "last_seen": u.last_seen,
        "count": u.count,
        "worst": u.worst_value,
        "limit": u.limit,
        "message": u.message,
        "detail": Jsonb(dict(u.detail)),
        "suppressed": u.suppressed,
        "reopen": reopen_within,
    }
    if reopen_within > timedelta(0):
        cur.execute(_REOPEN, args)
        reopened = cur.fetchone()
        if reopened is not None:
            return [(reopened[0], "reopened", u.first_seen)]
    cur.execute(_UPSERT, args)
    row = cur.fetchone()
    assert row is not None
    if row[1]:
        return [(row[0], "opened", None)]
    if row[2]:  # a plain repeat is not news; a worse severity is
        return [(row[0], "updated", None)]
    return []


def _clear(cur: psycopg.Cursor, key: AlertKey) -> list[Event]:
    cur.execute(
        f"""UPDATE alerts SET state = 'cleared', closed_at = now(),
                          closed_by = 'engine', updated_at = now(),
                          close_note = 'condition absent'
                   WHERE rule = %s AND mn = %s AND pollutant = %s
                     AND state IN ({ACTIVE_STATES_SQL})
                   RETURNING id""",
        key,
    )
    return [(r[0], "cleared", None) for r in cur.fetchall()]


def apply_plan(
    conn: psycopg.Connection, plan: Plan, reopen_within: timedelta = timedelta(hours=6)
) -> list[tuple[int, str]]:
    """Write a plan in the caller's transaction; return (alert id, event kind) pairs.

    Each event is written as it happens, so the trigger of migration 0030 snapshots
    the alert's device times between one step and the next (an episode that opens and
    clears within one plan gets its own start and end)."""
    events: list[Event] = []
    with conn.cursor() as cur:

        def record(got: list[Event]) -> None:
            for alert_id, kind, device_at in got:
                cur.execute(
                    """INSERT INTO alert_events (alert_id, kind, actor, device_at)
                       VALUES (%s, %s, 'engine', %s) RETURNING id""",
                    (alert_id, kind, device_at),
                )
                row = cur.fetchone()
                assert row is not None
                cur.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(row[0])))
            events.extend(got)

        for u, key in plan.closed:  # episodes over within this plan, in order
            if u is not None:
                record(_upsert(cur, u, reopen_within))
            record(_clear(cur, key))
        for u in plan.upserts:
            record(_upsert(cur, u, reopen_within))
        for key in plan.clears:
            record(_clear(cur, key))
    return [(alert_id, kind) for alert_id, kind, _ in events]


def load_active(conn: psycopg.Connection) -> list[tuple[AlertKey, datetime]]:
    return [
        ((rule, mn, pol), last)
        for rule, mn, pol, last in conn.execute(
            "SELECT rule, mn, pollutant, last_seen FROM alerts "
            f"WHERE state IN ({ACTIVE_STATES_SQL})"
        )
    ]


def count_active(conn: psycopg.Connection) -> int:
    """Alerts that still ask for attention (``rules.alerts.ACTIVE_STATES``)."""
    row = conn.execute(
        f"SELECT count(*) FROM alerts WHERE state IN ({ACTIVE_STATES_SQL})"
    ).fetchone()
    return int(row[0]) if row else 0


def counts_by_rule(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for rule, state, n in conn.execute(
        "SELECT rule, state, count(*) FROM alerts GROUP BY rule, state ORDER BY rule"
    ):
        out.setdefault(rule, {})[state] = n
    return out


async def act(
    conn: AsyncConnection,
    alert_id: int,
    target: AlertState | None,
    by: str,
    note: str | None,
    assignee: str | None = None,
) -> bool:
    """Apply a person's action atomically; False if no such alert.

    The engine's writes (``apply_plan``) and people's actions are the two writers of an
    alert's state; both live here so the table has one owner. ``target`` None is a
    comment (allowed in every state). Raises ``rules.errors.InvalidTransition`` (→ 409)
    when the state forbids the action.
    """
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(
            "SELECT state, acknowledged_at FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)
        )
        row = await cur.fetchone()
        if row is None:
            return False
        kind = "commented"
        # a critical the engine cleared before anyone saw it stays pinned until a person
        # acknowledges it: that records who saw it, and the alert stays cleared
        seen_late = target is AlertState.ACKNOWLEDGED and row[0] == "cleared" and row[1] is None
        if target is not None and not seen_late:
            transition(row[0], target)
        if target is not None:
            kind = target.value
        if seen_late:
            await cur.execute(
                """UPDATE alerts SET acknowledged_by = %s, acknowledged_at = now(),
                                 updated_at = now() WHERE id = %s""",
                (by, alert_id),
            )
        elif target is AlertState.ACKNOWLEDGED:
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
        await cur.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(ev[0])))
    return True

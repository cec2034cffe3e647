"""Notices: the console's ``notifications`` and the ``webhook_outbox`` for outside systems,
the only writer of both.

A notice is written in the same transaction as what it announces (a case opened, moved,
escalated; an invitation), to both tables at once, so the console and outside systems are
told the same thing, and nothing is announced that did not happen. ``api/webhook.py``
drains the outbox through ``claim_due`` / ``mark_sent``.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

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
    """A notice for the console and the same for outside systems, in the caller's
    transaction."""
    notice, outbox = notice_args(enterprise_id, audience, case_id, kind, message)
    await conn.execute(INSERT_NOTICE, notice)
    await conn.execute(INSERT_OUTBOX, outbox)
    await conn.execute(OUTBOX_NOTIFY)


def notify_sync(
    conn: psycopg.Connection,
    enterprise_id: str,
    audience: str,
    case_id: int | None,
    kind: str,
    message: str,
) -> None:
    """``notify`` for the rule runner's synchronous transaction."""
    notice, outbox = notice_args(enterprise_id, audience, case_id, kind, message)
    conn.execute(INSERT_NOTICE, notice)
    conn.execute(INSERT_OUTBOX, outbox)
    conn.execute(OUTBOX_NOTIFY)


async def claim_due(conn: AsyncConnection) -> tuple[int, str, Any, int] | None:
    """The oldest pending outbox row that is due, locked to the end of the caller's
    transaction (``SKIP LOCKED``: several senders never take the same row)."""
    cur = await conn.execute(
        """SELECT id, event, payload, attempts FROM webhook_outbox
           WHERE status = 'pending' AND next_attempt_at <= now()
           ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"""
    )
    row = await cur.fetchone()
    return None if row is None else (int(row[0]), str(row[1]), row[2], int(row[3]))


async def mark_delivered(
    conn: AsyncConnection, row_id: int, attempts: int, status: int | None
) -> None:
    await conn.execute(
        """UPDATE webhook_outbox SET status = 'delivered', attempts = %s, delivered_at = now(),
                                     last_status = %s, last_error = NULL
           WHERE id = %s""",
        (attempts, status, row_id),
    )


async def mark_failed(
    conn: AsyncConnection,
    row_id: int,
    attempts: int,
    status: int | None,
    error: str | None,
    *,
    retry_in_s: float,
    give_up: bool,
) -> None:
    """A failed attempt: try again in ``retry_in_s``, or never (``give_up``)."""
    await conn.execute(
        """UPDATE webhook_outbox SET status = %s, attempts = %s, last_status = %s,
                                     last_error = %s,
                                     next_attempt_at = now() + make_interval(secs => %s)
           WHERE id = %s""",
        ("failed" if give_up else "pending", attempts, status, error, retry_in_s, row_id),
    )

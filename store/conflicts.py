"""Keep rewritten history (table ``reading_conflicts``, migration 0020).

``record_conflicts`` runs inside the readings' transaction, right after the staged rows
were moved with ON CONFLICT DO NOTHING — only when the plain insert met a duplicate, so
a batch with nothing already stored never touches this table. ``take`` and
``mark_alerted`` run in the rule runner's alert transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from offsite.rules.rewritten import Rewrite


def record_conflicts(cur: psycopg.Cursor) -> int:
    """Keep every staged row whose stored twin has another value or flag; return how
    many new rewrites were kept (an identical redelivery is not one, nor a rewrite
    already kept)."""
    cur.execute(b"""
        INSERT INTO reading_conflicts (mn, pollutant, kind, ts, stored_value, stored_flag,
                                       stored_received_at, new_value, new_flag,
                                       new_received_at)
        SELECT s.mn, s.pollutant, s.kind, s.ts, r.value, r.flag, r.received_at,
               s.value, s.flag, s.received_at
        FROM readings_stage s JOIN readings r USING (mn, pollutant, kind, ts)
        WHERE r.value <> s.value OR r.flag <> s.flag
        ON CONFLICT DO NOTHING""")
    return cur.rowcount


def take(conn: psycopg.Connection, limit: int = 1000) -> list[Rewrite]:
    """Lock rewrites not yet alerted, oldest first (another runner skips them)."""
    rows = conn.execute(
        """SELECT id, mn, pollutant, kind, ts, stored_value, stored_flag, stored_received_at,
                  new_value, new_flag, new_received_at
           FROM reading_conflicts WHERE alerted_at IS NULL
           ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED""",
        (limit,),
    ).fetchall()
    return [Rewrite(*row) for row in rows]


def mark_alerted(conn: psycopg.Connection, ids: Sequence[int]) -> None:
    if ids:
        conn.execute(
            "UPDATE reading_conflicts SET alerted_at = now() WHERE id = ANY(%s)", (list(ids),)
        )

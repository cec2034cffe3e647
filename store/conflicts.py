"""Keep rewritten history (table ``reading_conflicts``, migration 0020).

``KEEP_REWRITES`` runs inside the readings' transaction (``store.readings``), right after
the staged rows were moved with ON CONFLICT DO NOTHING — only when the plain insert met a
duplicate, so a batch with nothing already stored never touches this table. A staged row
is a rewrite when its stored twin has another value or flag (an identical redelivery is
not; a rewrite already kept is kept once). ``take`` and ``mark_alerted`` run in the rule
runner's alert transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from offsite.rules.rewritten import Rewrite

# Keeps the rewrites among ``matched``: a CTE of the staged rows joined to their stored
# twins (s_* staged, r_* stored), which store.readings also reads its inserted rows from,
# so the fallback path joins the batch to the table once for both.
KEEP_REWRITES = """
    INSERT INTO reading_conflicts (mn, pollutant, kind, ts, stored_value, stored_flag,
                                   stored_received_at, new_value, new_flag, new_received_at)
    SELECT mn, pollutant, kind, ts, r_value, r_flag, r_received_at, s_value, s_flag,
           s_received_at
    FROM matched WHERE r_value <> s_value OR r_flag <> s_flag
    ON CONFLICT DO NOTHING"""


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

"""Write and read how far an ingest disk spool has been drained (table ``spool_marks``).

Written inside the transaction that stores the drained batch: the position and the
readings commit together, or neither does.
"""

from __future__ import annotations

import psycopg


def mark_drained(
    conn: psycopg.Connection, spool_id: str, worker: str, position: tuple[int, int]
) -> None:
    conn.execute(
        """INSERT INTO spool_marks (spool_id, worker, segment, byte_offset)
           VALUES (%s, %s, %s, %s)
           ON CONFLICT (spool_id) DO UPDATE
             SET worker = EXCLUDED.worker, segment = EXCLUDED.segment,
                 byte_offset = EXCLUDED.byte_offset, drained_at = clock_timestamp()
             WHERE (spool_marks.segment, spool_marks.byte_offset)
                   < (EXCLUDED.segment, EXCLUDED.byte_offset)""",
        (spool_id, worker, position[0], position[1]),
    )


def drained_mark(conn: psycopg.Connection, spool_id: str) -> tuple[int, int] | None:
    row = conn.execute(
        "SELECT segment, byte_offset FROM spool_marks WHERE spool_id = %s", (spool_id,)
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else None

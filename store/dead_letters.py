"""Write dead letters: every refused message, raw bytes included, with its reason."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from offsite.core.readings import DeadLetter


def insert_dead_letters(conn: psycopg.Connection, dead: Sequence[DeadLetter]) -> int:
    if not dead:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO dead_letters (received_at, topic, mn, reason, detail, payload)
               VALUES (%s, %s, %s, %s, %s, %s)""",
            [
                (
                    d.received_at,
                    _text(d.topic),
                    _text(d.mn),
                    d.reason.value,
                    _text(d.detail),
                    d.payload,
                )
                for d in dead
            ],
        )
    return len(dead)


def _text(value: str | None) -> str | None:
    """NUL is the one character a text column refuses (a broker may pass it in a topic);
    written visibly instead, the raw bytes stay exact in ``payload``."""
    return None if value is None else value.replace("\x00", "\\x00")

"""Hold the parts of split HJ 212 packets (table ``hj212_split_parts``, migration 0021).

``hold`` runs in the batch's transaction: it keeps the batch's parts and returns, taken
out of the table, every set this made whole by the rules of ``complete`` (the caller's
pure judgement). Sets are locked per (MN, CN, QN) with a transaction-scoped advisory
lock, so two workers storing the last two parts of one set at once cannot each miss
the other's: the second waits for the first to commit, then sees its part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

SetKey = tuple[str, str, str]  # (mn, cn, qn or '')


@dataclass(frozen=True, slots=True)
class StoredPart:
    mn: str
    cn: str
    qn: str
    pno: int
    pnum: int
    received_at: datetime
    transport: str
    topic: str
    raw: bytes

    @property
    def key(self) -> SetKey:
        return (self.mn, self.cn, self.qn)


_COLUMNS = "mn, cn, qn, pno, pnum, received_at, transport, topic, raw"


def _parts(rows: Sequence[tuple]) -> list[StoredPart]:
    return [
        StoredPart(mn, cn, qn, pno, pnum, at, transport, topic, bytes(raw))
        for mn, cn, qn, pno, pnum, at, transport, topic, raw in rows
    ]


def hold(
    conn: psycopg.Connection,
    parts: Sequence[StoredPart],
    complete: Callable[[list[StoredPart]], bool],
) -> list[list[StoredPart]]:
    """Keep ``parts``; return the sets now complete (by received order), deleted."""
    if not parts:
        return []
    keys = sorted({p.key for p in parts})  # one lock order: no deadlock between workers
    with conn.cursor() as cur:
        for key in keys:
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 212))", ("\x1f".join(key),)
            )
        cur.executemany(
            f"INSERT INTO hj212_split_parts ({_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (p.mn, p.cn, p.qn, p.pno, p.pnum, p.received_at, p.transport, p.topic, p.raw)
                for p in parts
            ],
        )
        out = []
        for mn, cn, qn in keys:
            held = _parts(
                cur.execute(
                    f"""SELECT {_COLUMNS} FROM hj212_split_parts
                        WHERE mn = %s AND cn = %s AND qn = %s ORDER BY received_at, pno""",
                    (mn, cn, qn),
                ).fetchall()
            )
            if held and complete(held):
                cur.execute(
                    "DELETE FROM hj212_split_parts WHERE mn = %s AND cn = %s AND qn = %s",
                    (mn, cn, qn),
                )
                out.append(held)
    return out


def expire(conn: psycopg.Connection, older_than: timedelta) -> list[list[StoredPart]]:
    """Take out every set whose first part arrived more than ``older_than`` ago (by the
    database's clock, which stamped none of them: compared with their receive times)."""
    rows = conn.execute(
        f"""DELETE FROM hj212_split_parts p USING (
                SELECT mn, cn, qn FROM hj212_split_parts GROUP BY mn, cn, qn
                HAVING min(received_at) < now() - %s) old
            WHERE (p.mn, p.cn, p.qn) = (old.mn, old.cn, old.qn)
            RETURNING {", ".join("p." + c.strip() for c in _COLUMNS.split(","))}""",
        (older_than,),
    ).fetchall()
    sets: dict[SetKey, list[StoredPart]] = {}
    for p in sorted(_parts(rows), key=lambda p: (p.received_at, p.pno)):
        sets.setdefault(p.key, []).append(p)
    return list(sets.values())


def held_count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM hj212_split_parts").fetchone()
    return int(row[0]) if row else 0

"""Visits (scan-code check-ins): check-in and out, joint visits' participants, replayed
tokens, ratings, the list."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

VISIT_COLS = (
    "id, enterprise_id, inspector_id, purpose, alert_id, checked_in_at, "
    "checked_out_at, findings, kind, task_id, case_id, justification, "
    "kind = 'advisory' AS advisory, rating, rating_comment, rated_at"
)


async def create_visit(
    conn: AsyncConnection,
    enterprise_id: str,
    inspector_id: str,
    purpose: str,
    alert_id: int | None,
    kid: str,
    token_sha256: bytes | None = None,
    *,
    kind: str = "unscheduled",
    task_id: int | None = None,
    case_id: int | None = None,
    justification: str | None = None,
) -> dict[str, Any]:
    # committed before the response is sent: the client may act on the id at once
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""INSERT INTO visits (enterprise_id, inspector_id, purpose,
                                  alert_id, token_kid, token_sha256, kind, task_id, case_id,
                                  justification)
                              VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                              RETURNING {VISIT_COLS}""".encode(),
            (
                enterprise_id,
                inspector_id,
                purpose,
                alert_id,
                kid,
                token_sha256,
                kind,
                task_id,
                case_id,
                justification,
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        await add_participant(conn, row["id"], inspector_id, token_sha256)
        return row


async def add_participant(
    conn: AsyncConnection, visit_id: int, inspector_id: str, token_sha256: bytes | None
) -> bool:
    """An inspector (with their department) joins a visit; False if already in it."""
    cur = await conn.execute(
        """INSERT INTO visit_inspectors (visit_id, inspector_id,
                                    department, token_sha256)
                                SELECT %s, %s, coalesce((SELECT department FROM users
                                                         WHERE id = %s), ''), %s
                                ON CONFLICT DO NOTHING""",
        (visit_id, inspector_id, inspector_id, token_sha256),
    )
    return cur.rowcount > 0


async def participants(conn: AsyncConnection, visit_ids: list[int]) -> dict[int, list[dict]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT visit_id, inspector_id, department, checked_in_at,
                                    checked_out_at, findings
                             FROM visit_inspectors WHERE visit_id = ANY(%s)
                             ORDER BY checked_in_at, inspector_id""",
            (visit_ids,),
        )
        out: dict[int, list[dict]] = {v: [] for v in visit_ids}
        for r in await cur.fetchall():
            out[r.pop("visit_id")].append(r)
        return out


async def open_visit_of_task(conn: AsyncConnection, task_id: int) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {VISIT_COLS} FROM visits WHERE task_id = %s
                              AND checked_out_at IS NULL ORDER BY id DESC LIMIT 1""".encode(),
            (task_id,),
        )
        return await cur.fetchone()


async def check_out_participant(
    conn: AsyncConnection, visit_id: int, inspector_id: str, findings: str
) -> tuple[bool, bool]:
    """Check one inspector out of a (joint) visit: (done now, the visit is over).

    The visit itself closes when its last inspector leaves, with everyone's findings."""
    cur = await conn.execute(
        """UPDATE visit_inspectors SET checked_out_at = now(),
                                    findings = %s
                                WHERE visit_id = %s AND inspector_id = %s
                                  AND checked_out_at IS NULL""",
        (findings, visit_id, inspector_id),
    )
    if cur.rowcount == 0:
        return False, False
    await conn.execute("SELECT 1 FROM visits WHERE id = %s FOR UPDATE", (visit_id,))
    cur = await conn.execute(
        """SELECT inspector_id, department, findings, checked_out_at
                                FROM visit_inspectors WHERE visit_id = %s
                                ORDER BY checked_in_at, inspector_id""",
        (visit_id,),
    )
    rows = await cur.fetchall()
    if any(r[3] is None for r in rows):
        return True, False
    combined = (
        findings
        if len(rows) == 1
        else "\n".join(
            f"{who}{f' ({dept})' if dept else ''}: {text}" for who, dept, text, _ in rows
        )
    )
    await conn.execute(
        """UPDATE visits SET checked_out_at = now(), findings = %s
                          WHERE id = %s AND checked_out_at IS NULL""",
        (combined, visit_id),
    )
    return True, True


async def is_participant(conn: AsyncConnection, visit_id: int, inspector_id: str) -> bool | None:
    """True/False for a visit with participants; None for one from before joint visits."""
    cur = await conn.execute(
        "SELECT bool_or(inspector_id = %s) FROM visit_inspectors WHERE visit_id = %s",
        (inspector_id, visit_id),
    )
    row = await cur.fetchone()
    return None if row is None or row[0] is None else bool(row[0])


async def replayed_visit(
    conn: AsyncConnection, inspector_id: str, token_sha256: bytes, window_s: float
) -> dict[str, Any] | None:
    """The open visit this inspector checked in with this very token within the window.

    Serialised per (inspector, token) by an advisory lock held to the end of the caller's
    transaction, so two concurrent replays cannot both find nothing and both insert."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s || %s, 0))",
        (inspector_id, token_sha256.hex()),
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {VISIT_COLS} FROM visits WHERE id = (
                                  SELECT visit_id FROM visit_inspectors
                                  WHERE inspector_id = %s AND token_sha256 = %s
                                    AND checked_out_at IS NULL
                                    AND checked_in_at > now() - make_interval(secs => %s)
                                  ORDER BY checked_in_at DESC LIMIT 1)""".encode(),
            (inspector_id, token_sha256, window_s),
        )
        return await cur.fetchone()


async def rate_visit(
    conn: AsyncConnection, visit_id: int, rating: int, comment: str | None
) -> bool:
    """Rate a visit once: False when it is already rated (a second rating would
    replace the first and lose its comment)."""
    cur = await conn.execute(
        """UPDATE visits SET rating = %s, rating_comment = %s, rated_at = now()
           WHERE id = %s AND rated_at IS NULL""",
        (rating, comment, visit_id),
    )
    return cur.rowcount > 0


async def get_visit(conn: AsyncConnection, visit_id: int) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {VISIT_COLS} FROM visits WHERE id = %s".encode(), (visit_id,))
        return await cur.fetchone()


async def check_out(conn: AsyncConnection, visit_id: int, findings: str) -> dict[str, Any] | None:
    """Close an open visit; None if it was already closed (a concurrent check-out)."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""UPDATE visits SET checked_out_at = now(), findings = %s
                              WHERE id = %s AND checked_out_at IS NULL
                              RETURNING {VISIT_COLS}""".encode(),
            (findings, visit_id),
        )
        return await cur.fetchone()


async def list_visits(
    conn: AsyncConnection,
    enterprise: str | None,
    inspector: str | None,
    limit: int,
    offset: int,
    visible: list[str] | None = None,
) -> list[dict[str, Any]]:
    where: list[str] = []
    args: list[Any] = []
    if visible is not None:
        where.append("enterprise_id = ANY(%s)")
        args.append(visible)
    if enterprise is not None:
        where.append("enterprise_id = %s")
        args.append(enterprise)
    if inspector is not None:  # a joint visit is every participant's
        where.append(
            "(inspector_id = %s OR id IN (SELECT visit_id FROM visit_inspectors "
            "WHERE inspector_id = %s))"
        )
        args.extend((inspector, inspector))
    sql = f"SELECT {VISIT_COLS} FROM visits"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY checked_in_at DESC, id DESC LIMIT %s OFFSET %s"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.encode(), [*args, limit, offset])
        return await cur.fetchall()


PHOTO_COLS = """p.id, p.visit_id, p.inspector_id, p.filename, p.content_type, p.size,
    encode(p.sha256, 'hex') AS sha256, p.created_at"""


async def add_photos(
    conn: AsyncConnection,
    visit_id: int,
    inspector_id: str,
    photos: list[tuple[str, str, bytes, bytes]],
) -> None:
    """Keep an inspector's photos of a visit: (filename, content type, content, SHA-256)."""
    for name, ctype, content, digest in photos:
        await conn.execute(
            """INSERT INTO visit_photos (visit_id, inspector_id, filename, content_type, size,
                                        sha256, content) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (visit_id, inspector_id, name, ctype, len(content), digest, content),
        )


async def photos_of_visits(conn: AsyncConnection, visit_ids: list[int]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {PHOTO_COLS} FROM visit_photos p WHERE p.visit_id = ANY(%s) ORDER BY p.id",
            (visit_ids,),
        )
        return await cur.fetchall()


async def photos_of_case(conn: AsyncConnection, case_id: int) -> list[dict[str, Any]]:
    """The photos of the case's visits that are over (a joint visit still under way
    shows its photos when its last inspector leaves)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {PHOTO_COLS} FROM visit_photos p JOIN visits v ON v.id = p.visit_id
                WHERE v.case_id = %s AND v.checked_out_at IS NOT NULL ORDER BY p.id""",
            (case_id,),
        )
        return await cur.fetchall()


async def photo(conn: AsyncConnection, visit_id: int, photo_id: int) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT filename, content_type, content, sha256 FROM visit_photos
               WHERE id = %s AND visit_id = %s""",
            (photo_id, visit_id),
        )
        return await cur.fetchone()

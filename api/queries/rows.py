"""Fetch helpers shared by the query modules: rows as dicts, one call per question."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row


async def fetch_all(
    conn: AsyncConnection, sql: str, args: Sequence[Any] = ()
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.encode(), args)
        return await cur.fetchall()


async def fetch_one(
    conn: AsyncConnection, sql: str, args: Sequence[Any] = ()
) -> dict[str, Any] | None:
    rows = await fetch_all(conn, sql, args)
    return rows[0] if rows else None

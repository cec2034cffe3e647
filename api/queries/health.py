"""Service health: the database's clock, the newest reading, the ingest workers."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row


async def health(conn: AsyncConnection) -> dict[str, Any]:
    cur = await conn.execute("""SELECT now(), max(last_received_at), count(*) FROM device_status""")
    row = await cur.fetchone()
    assert row is not None
    return {"db_time": row[0], "latest_reading_received_at": row[1], "devices_reporting": row[2]}


async def ingest_workers(conn: AsyncConnection) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("""SELECT worker, host, pid, started_at, heartbeat_at,
                                    extract(epoch FROM now() - heartbeat_at) AS heartbeat_age_s,
                                    broker_connected, gateway_connections, inbox, lag_s,
                                    messages, readings_stored, dead_letters, db_errors,
                                    last_commit_at, rules_runner, rules_restarts,
                                    rules_last_exit
                             FROM ingest_workers ORDER BY worker""")
        return await cur.fetchall()

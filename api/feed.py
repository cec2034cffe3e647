"""The live alert feed: one LISTEN connection per API process, fanned out to SSE clients.

Ingest writes an ``alert_events`` row and NOTIFYs its id in the same transaction, so
the feed sees only committed events, from any number of ingest workers. A client that
falls behind is disconnected rather than buffered without bound; it reconnects with
``Last-Event-ID`` and the route replays what it missed from ``alert_events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from offsite.core.retry import Backoff, retry_async
from offsite.store.alerts import NOTIFY_CHANNEL

log = logging.getLogger("offsite.api.feed")

EVENT_SQL = """
SELECT e.id AS event_id, e.kind AS event, e.at, e.actor, e.note,
       a.id, a.rule, a.mn, a.pollutant, a.severity, a.state, a.first_seen, a.last_seen,
       a.count, a.worst_value, a.limit_value, a.message, p.enterprise_id, d.point_id,
       a.assignee, a.suppressed, a.reopened
FROM alert_events e JOIN alerts a ON a.id = e.alert_id
JOIN devices d ON d.mn = a.mn JOIN points p ON p.id = d.point_id
"""

Event = tuple[int, str]  # (event id, JSON)
FEED_APPLICATION_NAME = "offsite-alert-feed"  # names the LISTEN session in pg_stat_activity
FEED_BACKOFF = Backoff(first_s=0.5, factor=2, max_s=30.0)


def event_json(row: dict[str, Any]) -> Event:
    return int(row["event_id"]), json.dumps(row, default=str, separators=(",", ":"))


class AlertFeed:
    def __init__(self, url: str, pool: AsyncConnectionPool, queue_size: int = 1000) -> None:
        self.url = url
        self.pool = pool
        self.queue_size = queue_size
        self.subscribers: set[asyncio.Queue[Event | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        # set once the server is shutting down: open streams are ended, new ones refused
        self.draining = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="offsite-alert-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for q in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)

    def drain(self) -> None:
        """End every open stream now and refuse new ones: the server is going away, and
        a stream never finishes by itself, so the clients would otherwise be cut off
        without ``event: end`` when the graceful shutdown runs out."""
        self.draining = True
        self._disconnect_all()

    async def last_id(self) -> int:
        """The newest alert event's id (0 when there is none): where a fresh stream stands."""
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT coalesce(max(id), 0) FROM alert_events")
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    def subscribe(self) -> asyncio.Queue[Event | None]:
        q: asyncio.Queue[Event | None] = asyncio.Queue(self.queue_size)
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Event | None]) -> None:
        self.subscribers.discard(q)

    async def replay(self, after: int, limit: int = 1000) -> list[Event]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(EVENT_SQL + " WHERE e.id > %s ORDER BY e.id LIMIT %s", (after, limit))
            return [event_json(r) for r in await cur.fetchall()]

    async def _fetch(self, event_id: int) -> Event | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(EVENT_SQL + " WHERE e.id = %s", (event_id,))
            row = await cur.fetchone()
        return event_json(row) if row else None

    async def _listen(self) -> None:
        """Hold the LISTEN connection for the life of the process: (re)connect with
        backoff while the database is away, from the first wait again after each loss."""
        while True:
            conn = await retry_async(
                self._connect,
                retry_on=lambda exc: isinstance(exc, psycopg.OperationalError),
                backoff=FEED_BACKOFF,
                on_retry=lambda exc, delay: log.warning(
                    "alert feed cannot reach the database (%s); retrying in %.1f s", exc, delay
                ),
            )
            try:
                async with conn:
                    self.connected.set()
                    async for note in conn.notifies():
                        try:
                            event = await self._fetch(int(note.payload))
                        except (ValueError, psycopg.Error) as exc:
                            log.warning("could not read alert event %r: %s", note.payload, exc)
                            continue
                        if event is not None:
                            self._broadcast(event)
            except psycopg.OperationalError as exc:
                self.connected.clear()
                # notifications sent while we were away are gone: end every stream so
                # each client reconnects with Last-Event-ID and replays what it missed
                self._disconnect_all()
                log.warning("alert feed lost its database connection (%s); reconnecting", exc)

    async def _connect(self) -> psycopg.AsyncConnection:
        conn = await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, application_name=FEED_APPLICATION_NAME
        )
        try:
            await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except BaseException:
            await conn.close()
            raise
        return conn

    def _disconnect_all(self) -> None:
        for q in list(self.subscribers):
            self.subscribers.discard(q)
            with contextlib.suppress(asyncio.QueueEmpty):
                q.get_nowait()
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)

    def _broadcast(self, event: Event) -> None:
        for q in list(self.subscribers):
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:  # too slow: cut it off; it will replay on reconnect
                self.subscribers.discard(q)
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
                q.put_nowait(None)

"""A background round in the API process: one asyncio task doing one job on an interval.

The database may be away for a while; a failed round is logged and the next one tries
again, so what these jobs serve (escalations, webhook deliveries) is late, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool


class Periodic:
    name = "offsite-periodic"

    def __init__(self, pool: AsyncConnectionPool, interval_s: float) -> None:
        self.pool, self.interval_s = pool, interval_s
        self._task: asyncio.Task[None] | None = None
        self.log = logging.getLogger(f"offsite.{self.name}")

    async def round(self, conn: AsyncConnection) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with self.pool.connection() as conn:
                    await self.round(conn)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away: try again next round
                self.log.exception("%s: a round failed; retrying next round", self.name)
            await asyncio.sleep(self.interval_s)

"""The escalation timer: every ``case_check_s``, escalate cases whose enterprise let the
response deadline pass. The decision is pure (``rules.cases.due_for_escalation``, with
the time passed in); this only owns the clock and the connection. Several API processes
may run it at once: rows are taken ``FOR UPDATE SKIP LOCKED`` and escalate once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from api.loop_queries import escalate_overdue

log = logging.getLogger("offsite.escalation")


class EscalationTimer:
    def __init__(self, pool: AsyncConnectionPool, interval_s: float) -> None:
        self.pool, self.interval_s = pool, interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="offsite-escalation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with self.pool.connection() as conn:
                    done = await escalate_overdue(conn, datetime.now(UTC))
                if done:
                    log.info("escalated %d overdue case(s): %s", len(done), done)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away: try again next round
                log.exception("escalation check failed; retrying next round")
            await asyncio.sleep(self.interval_s)

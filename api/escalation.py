"""The escalation timer: every ``case_check_s``, escalate cases whose enterprise let the
response deadline pass. The decision is pure (``rules.cases.due_for_escalation``, with
the time passed in); this only owns the clock and the connection. Several API processes
may run it at once: rows are taken ``FOR UPDATE SKIP LOCKED`` and escalate once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from psycopg import AsyncConnection

from offsite.api.periodic import Periodic
from offsite.store.cases import escalate_overdue

log = logging.getLogger("offsite.escalation")


class EscalationTimer(Periodic):
    name = "escalation"

    async def round(self, conn: AsyncConnection) -> None:
        done = await escalate_overdue(conn, datetime.now(UTC))
        if done:
            log.info("escalated %d overdue case(s): %s", len(done), done)

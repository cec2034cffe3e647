"""Tell outside systems about case events: an outbox drained by a small sender.

Notices are written to ``webhook_outbox`` in the same transaction as what they announce
(store/notices.py), so nothing is announced that did not happen and nothing that happened
goes unannounced if the receiver is down. The sender (an asyncio task in the API
process) claims due rows with ``FOR UPDATE SKIP LOCKED`` — several API processes never
send one row twice at once — POSTs each as JSON, optionally signed
(``X-Offsite-Signature: sha256=<hex HMAC of the body>``), and records the outcome:
delivered, or retried with exponential backoff until ``max_attempts``, then failed.
Delivery is at least once: a receiver deduplicates by ``X-Offsite-Delivery`` (the row id).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from offsite.api.periodic import Periodic
from offsite.store import notices

log = logging.getLogger("offsite.webhook")
BASE_DELAY_S = 2.0
MAX_DELAY_S = 3600.0
TIMEOUT_S = 10.0
BATCH = 20


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def backoff_s(attempts: int, base: float = BASE_DELAY_S, cap: float = MAX_DELAY_S) -> float:
    """Delay before the next attempt after ``attempts`` failed ones: 2, 4, 8 … s, capped."""
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None
    error: str | None


def post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """One blocking POST (run in a thread). Any 2xx is delivered; anything else a failure."""
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return Outcome(200 <= resp.status < 300, resp.status, None)
    except urllib.error.HTTPError as exc:
        return Outcome(False, exc.code, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return Outcome(False, None, str(getattr(exc, "reason", exc))[:500])


def encode(row_id: int, event: str, payload: Any) -> bytes:
    return json.dumps(
        {"id": row_id, "event": event, "data": payload},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    ).encode("utf-8")


async def deliver_due(
    conn: AsyncConnection, url: str, secret: str | None, max_attempts: int
) -> int:
    """Send every due row once; return how many were attempted. One transaction per row,
    holding its lock while it is sent, so no other sender takes it meanwhile."""
    sent = 0
    for _ in range(BATCH):
        async with conn.transaction():
            row = await notices.claim_due(conn)
            if row is None:
                return sent
            row_id, event, payload, attempts = row
            body = encode(row_id, event, payload)
            headers = {"X-Offsite-Event": event, "X-Offsite-Delivery": str(row_id)}
            if secret:
                headers["X-Offsite-Signature"] = signature(secret, body)
            out = await asyncio.to_thread(post, url, body, headers)
            attempts += 1
            if out.ok:
                await notices.mark_delivered(conn, row_id, attempts, out.status)
            else:
                give_up = attempts >= max_attempts
                await notices.mark_failed(
                    conn,
                    row_id,
                    attempts,
                    out.status,
                    out.error,
                    retry_in_s=backoff_s(attempts),
                    give_up=give_up,
                )
                if give_up:
                    log.warning(
                        "webhook %s (%s) failed for good after %d attempts: %s",
                        row_id,
                        event,
                        attempts,
                        out.error,
                    )
            sent += 1
    return sent


class WebhookSender(Periodic):
    """Drains the outbox every ``interval_s``; the outbox keeps everything meanwhile."""

    name = "webhook"

    def __init__(
        self,
        pool: AsyncConnectionPool,
        url: str,
        secret: str | None,
        max_attempts: int,
        interval_s: float = 1.0,
    ) -> None:
        super().__init__(pool, interval_s)
        self.url, self.secret, self.max_attempts = url, secret, max_attempts

    async def round(self, conn: AsyncConnection) -> None:
        await deliver_due(conn, self.url, self.secret, self.max_attempts)

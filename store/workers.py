"""Ingest workers' rows, the one writer of ``ingest_workers``: heartbeats (read by the API's
/healthz) and each worker's commit promise (read by ``store.rule_inbox.watermark``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg


@dataclass(frozen=True, slots=True)
class Heartbeat:
    worker: str
    host: str
    pid: int
    started_at: datetime
    broker_connected: bool | None
    gateway_connections: int | None
    inbox: int
    lag_s: float
    messages: int
    readings_stored: int
    dead_letters: int
    db_errors: int
    last_commit_at: datetime | None


def beat(conn: psycopg.Connection, hb: Heartbeat) -> None:
    conn.execute(
        """INSERT INTO ingest_workers AS w (worker, host, pid, started_at, heartbeat_at,
               broker_connected, gateway_connections, inbox, lag_s, messages, readings_stored,
               dead_letters, db_errors, last_commit_at)
           VALUES (%s, %s, %s, %s, now(), %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (worker) DO UPDATE SET host = excluded.host, pid = excluded.pid,
               started_at = excluded.started_at, heartbeat_at = now(),
               broker_connected = excluded.broker_connected,
               gateway_connections = excluded.gateway_connections, inbox = excluded.inbox,
               lag_s = excluded.lag_s, messages = excluded.messages,
               readings_stored = excluded.readings_stored, dead_letters = excluded.dead_letters,
               db_errors = excluded.db_errors, last_commit_at = excluded.last_commit_at""",
        (
            hb.worker,
            hb.host,
            hb.pid,
            hb.started_at,
            hb.broker_connected,
            hb.gateway_connections,
            hb.inbox,
            hb.lag_s,
            hb.messages,
            hb.readings_stored,
            hb.dead_letters,
            hb.db_errors,
            hb.last_commit_at,
        ),
    )


def fields() -> list[str]:
    return [f for f in Heartbeat.__dataclass_fields__] + ["heartbeat_at"]


def row_to_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(fields(), row, strict=True))


def committed_through(conn: psycopg.Connection, worker: str, through: datetime) -> None:
    """Record this worker's promise (in the transaction that keeps it, or when idle)."""
    conn.execute(
        "UPDATE ingest_workers SET committed_through = %s WHERE worker = %s", (through, worker)
    )


def runner_state(
    conn: psycopg.Connection, worker: str, state: str, restarts: int, last_exit: str | None
) -> None:
    """The state of the rule runner a worker supervises, on the worker's heartbeat row
    (written by the worker when it changes; the heartbeat leaves these columns alone).
    Inserts the row if the first heartbeat has not been written yet, as long silent, so
    it holds no watermark back until the worker's own heartbeat fills it in."""
    conn.execute(
        """INSERT INTO ingest_workers AS w (worker, host, pid, started_at, heartbeat_at, inbox,
               lag_s, messages, readings_stored, dead_letters, db_errors, rules_runner,
               rules_restarts, rules_last_exit)
           VALUES (%s, '', 0, 'epoch', 'epoch', 0, 0, 0, 0, 0, 0, %s, %s, %s)
           ON CONFLICT (worker) DO UPDATE SET rules_runner = excluded.rules_runner,
               rules_restarts = excluded.rules_restarts,
               rules_last_exit = excluded.rules_last_exit""",
        (worker, state, restarts, last_exit),
    )

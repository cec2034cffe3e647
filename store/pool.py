"""Connection pools. The ingest side is threaded (sync pool); the API is async."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool, ConnectionPool

from offsite.core.secrecy import redact
from offsite.store.errors import StoreUnavailable

__all__ = ["open_async_pool", "open_pool", "redact"]

# Connection settings for a process that must notice a dead server in seconds, not
# minutes: a refused or unanswered connect fails within CONNECT_TIMEOUT_S, and a peer
# that vanished without closing the socket (host down, cable cut) is found by TCP
# keepalives within about idle + interval × count seconds.
CONNECT_TIMEOUT_S = 3
KEEPALIVES: dict[str, Any] = {
    "connect_timeout": CONNECT_TIMEOUT_S,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}

# psycopg_pool retries a lost connection with a delay that doubles without a cap
# (1, 2, 4 … s) until ``reconnect_timeout``: after a 40 s outage the pool served again
# only 17-19 s after the server was back. A short reconnect_timeout ends such a round
# within seconds; the next request for a connection starts a new one at once.
RECONNECT_TIMEOUT_S = 3.0
# And a request for a connection waits for the round under way, not for the server: a
# request made with the default 30 s while the server was down got its connection
# 30 s later although the server was back after 10. Asking again (as ingest's retries
# do) starts a new round, so the wait is kept short.
CONNECTION_WAIT_S = 5.0


def open_pool(
    url: str, *, max_size: int = 8, min_size: int = 1, name: str = "offsite", timeout: float = 15.0
) -> ConnectionPool:
    """Open a pool and wait until one connection works, or raise StoreUnavailable.

    Connections are checked as they are handed out (a server restart leaves dead ones
    in the pool), fail fast to connect, and notice a vanished peer (``KEEPALIVES``)."""
    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        kwargs={"application_name": name, **KEEPALIVES},
        check=ConnectionPool.check_connection,
        reconnect_timeout=RECONNECT_TIMEOUT_S,
        timeout=CONNECTION_WAIT_S,
    )
    try:
        pool.open(wait=True, timeout=timeout)
    except Exception as exc:  # psycopg_pool.PoolTimeout and friends
        pool.close()
        raise StoreUnavailable(f"cannot connect to PostgreSQL at {redact(url)}: {exc}") from exc
    return pool


async def open_async_pool(
    url: str, *, max_size: int = 8, name: str = "offsite-api", timeout: float = 15.0
) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        name=name,
        open=False,
        kwargs={"application_name": name, **KEEPALIVES},
        check=AsyncConnectionPool.check_connection,
        reconnect_timeout=RECONNECT_TIMEOUT_S,
    )
    try:
        await pool.open(wait=True, timeout=timeout)
    except Exception as exc:
        await pool.close()
        raise StoreUnavailable(f"cannot connect to PostgreSQL at {redact(url)}: {exc}") from exc
    return pool

"""Connection pools. The ingest side is threaded (sync pool); the API is async."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool, ConnectionPool

from offsite.core.secrecy import redact
from offsite.store.errors import StoreUnavailable

__all__ = ["open_async_pool", "open_pool", "redact"]


def open_pool(
    url: str, *, max_size: int = 8, min_size: int = 1, name: str = "offsite", timeout: float = 15.0
) -> ConnectionPool:
    """Open a pool and wait until one connection works, or raise StoreUnavailable."""
    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        kwargs={"application_name": name},
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
        url, min_size=1, max_size=max_size, name=name, open=False, kwargs={"application_name": name}
    )
    try:
        await pool.open(wait=True, timeout=timeout)
    except Exception as exc:
        await pool.close()
        raise StoreUnavailable(f"cannot connect to PostgreSQL at {redact(url)}: {exc}") from exc
    return pool

"""Store's error tree (drawn in ``store/__init__.py``), and which database errors are
transient (``unavailable``: retry) rather than a refusal of the data."""

from __future__ import annotations

import psycopg

from offsite.core.retry import Backoff


class StoreError(Exception):
    """Root of the store's errors."""


class MigrationError(StoreError):
    """A migration failed; its transaction was rolled back."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or went away mid-transaction."""


# how long to wait between tries while ``unavailable`` says the database is away
DB_BACKOFF = Backoff(first_s=0.5, factor=2, max_s=30.0)

# SQLSTATE classes and codes that mean "not now" rather than "not this data":
# 08 connection, 25 invalid transaction state (e.g. read-only), 53 insufficient
# resources, 57 operator intervention, 58 system error; 42501 insufficient privilege,
# 42P01 undefined table (a deploy half done), 40001/40P01 serialization/deadlock.
TRANSIENT_CLASSES = frozenset({"08", "25", "53", "57", "58"})
TRANSIENT_STATES = frozenset({"42501", "42P01", "40001", "40P01"})


def unavailable(exc: BaseException) -> bool:
    """Is this database error a "not now" (retry) rather than a "not this data"?"""
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | TimeoutError):
        return True
    if isinstance(exc, psycopg.DatabaseError):
        state = exc.sqlstate or ""
        return state[:2] in TRANSIENT_CLASSES or state in TRANSIENT_STATES
    return type(exc).__name__ in ("PoolClosed", "PoolTimeout")

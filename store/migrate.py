"""Numbered plain-SQL migrations, applied once each, in order, under an advisory lock.

Several workers may start at once; the transaction-scoped advisory lock makes the
second wait and then find nothing to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from offsite.store.errors import MigrationError

_LOCK_KEY = 0x0FF5173  # arbitrary, constant: "offsite migrations"
_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    out = []
    for entry in resources.files("offsite.store").joinpath("migrations").iterdir():
        m = _NAME_RE.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    return sorted(out, key=lambda m: m.version)


def _pending(conn: psycopg.Connection) -> bool:
    """Whether any packaged migration is not applied yet: read-only, so a service that
    connects as the limited application role (no CREATE on the schema) starts on a
    schema the migrating role already brought up to date."""
    with conn.transaction():
        row = conn.execute("SELECT to_regclass('schema_migrations') IS NULL").fetchone()
        if row is None or row[0]:
            return True
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    return any(m.version not in done for m in available())


def migrate(conn: psycopg.Connection) -> list[Migration]:
    """Apply pending migrations; return those applied. ``conn`` must be in autocommit off."""
    applied: list[Migration] = []
    if not _pending(conn):
        return applied
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        # an up-to-date schema is left without any DDL: services that connect as the
        # limited role offsite_app (no CREATE on the schema) start after the owner ran
        # `offsite db migrate` (CREATE TABLE IF NOT EXISTS needs CREATE even when it exists)
        row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not (row and row[0]):
            conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                                version integer PRIMARY KEY, name text NOT NULL,
                                applied_at timestamptz NOT NULL DEFAULT now())""")
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        for mig in available():
            if mig.version in done:
                continue
            try:
                with conn.transaction():
                    conn.execute(mig.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (mig.version, mig.name),
                    )
            except psycopg.errors.InsufficientPrivilege as exc:
                raise MigrationError(
                    f"migration {mig.version:04d}_{mig.name} needs the database's owner: "
                    f"run `offsite db migrate` as the owner first ({exc})"
                ) from exc
            except psycopg.Error as exc:
                raise MigrationError(
                    f"migration {mig.version:04d}_{mig.name} failed: {exc}"
                ) from exc
            applied.append(mig)
    return applied


def current_version(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def timescale_active(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
    ).fetchone()
    return bool(row and row[0])

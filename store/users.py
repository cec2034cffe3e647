"""People, their roles and tokens (synchronous side: the CLI, the demo and tests).

The API reads the same tables through ``api/security_queries.py``. Every change is
written to the audit log in the same transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from offsite.core.credentials import hash_password, new_token, token_digest
from offsite.store.audit import append_sync
from offsite.store.errors import StoreError

ROLES = ("admin", "regulator", "inspector", "enterprise")
MIN_PASSWORD = 12  # the API's UserCreate says the same


class UserError(StoreError):
    """A user could not be created or changed (bad role, unknown enterprise…)."""


def create_user(
    conn: psycopg.Connection,
    user_id: str,
    role: str,
    password: str | None,
    *,
    enterprise_id: str | None = None,
    region: str = "",
    department: str = "",
    actor: str = "system",
) -> None:
    """Create (or, for an existing id, replace the role/scope/password of) a user."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if (role == "enterprise") != (enterprise_id is not None):
        raise UserError("an enterprise user needs --enterprise, and only an enterprise user")
    if password is not None and len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    if enterprise_id is not None and not _enterprise_exists(conn, enterprise_id):
        raise UserError(_no_enterprise(conn, enterprise_id))
    pw_hash = hash_password(password) if password else None
    try:
        with conn.transaction():
            conn.execute(
                """INSERT INTO users (id, role, enterprise_id, region, password_hash, department)
                   VALUES (%s, %s, %s, %s, %s, %s)
                   ON CONFLICT (id) DO UPDATE SET role = excluded.role,
                       enterprise_id = excluded.enterprise_id, region = excluded.region,
                       department = excluded.department,
                       password_hash = coalesce(excluded.password_hash, users.password_hash),
                       active = true""",
                (user_id, role, enterprise_id, region, pw_hash, department),
            )
            append_sync(
                conn,
                actor,
                "user.upsert",
                f"user:{user_id}",
                {
                    "role": role,
                    "enterprise_id": enterprise_id,
                    "region": region,
                    "department": department,
                    "password_set": pw_hash is not None,
                },
            )
    except psycopg.errors.ForeignKeyViolation as exc:  # removed since the check above
        raise UserError(_no_enterprise(conn, enterprise_id)) from exc
    except psycopg.errors.CheckViolation as exc:
        raise UserError(f"user id {user_id!r} is not 1–64 letters, digits or _.@-") from exc


def _enterprise_exists(conn: psycopg.Connection, enterprise_id: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM enterprises WHERE id = %s", (enterprise_id,)).fetchone()
        is not None
    )


def _no_enterprise(conn: psycopg.Connection, enterprise_id: str | None) -> str:
    """Why an enterprise user cannot be saved, and what to do: on a fresh database the
    registry has not been loaded yet, which a foreign-key message does not say."""
    row = conn.execute("SELECT count(*) FROM enterprises").fetchone()
    loaded = row[0] if row else 0
    hint = (
        "the registry is empty: load it first with `offsite db load-registry FILE`"
        if loaded == 0
        else f"the registry holds {loaded} other enterprises; load or fix it with "
        "`offsite db load-registry FILE`"
    )
    return f"enterprise {enterprise_id!r} is not in the registry ({hint})"


def issue_token(
    conn: psycopg.Connection,
    user_id: str,
    *,
    kind: str = "api_key",
    ttl: timedelta | None = None,
    actor: str = "system",
) -> str:
    """A new bearer token for the user; only its SHA-256 is stored, so show it once."""
    token = new_token()
    expires = datetime.now(UTC) + ttl if ttl is not None else None
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO api_tokens (token_sha256, user_id, kind, expires_at) "
                "VALUES (%s, %s, %s, %s)",
                (token_digest(token), user_id, kind, expires),
            )
            append_sync(
                conn, actor, "token.issue", f"user:{user_id}", {"kind": kind, "expires_at": expires}
            )
    except psycopg.errors.ForeignKeyViolation as exc:
        raise UserError(f"no user {user_id!r}") from exc
    return token

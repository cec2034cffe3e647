"""People, their roles and tokens: the one writer of ``users`` and ``api_tokens``.

Synchronous for the CLI, the demo and tests (each change audited in its transaction);
async for the API's routes (which audit in theirs). The API reads the same tables
through ``api/queries/users.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from offsite.core.credentials import hash_password, new_token, token_digest
from offsite.store.audit import append_sync
from offsite.store.errors import StoreError

# ``active`` changes only when asked (None keeps it): saving a deactivated user's role
# or password must not quietly bring it back
_UPSERT_USER = """INSERT INTO users (id, role, enterprise_id, region, password_hash, department,
                                    active)
   VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, true))
   ON CONFLICT (id) DO UPDATE SET role = excluded.role,
       enterprise_id = excluded.enterprise_id, region = excluded.region,
       department = excluded.department,
       password_hash = coalesce(excluded.password_hash, users.password_hash),
       active = coalesce(%s, users.active)
   RETURNING id, role, enterprise_id, region, department, active, created_at"""
_INSERT_TOKEN = (
    "INSERT INTO api_tokens (token_sha256, user_id, kind, expires_at) VALUES (%s, %s, %s, %s)"
)

ROLES = ("admin", "regulator", "inspector", "enterprise")
LANGUAGES = ("zh-CN", "en")  # the console's catalogues; users.lang's CHECK says the same
MIN_PASSWORD = 12  # the API's UserCreate says the same
API_KEY_TTL = timedelta(days=90)  # OFFSITE_API_KEY_TTL_DAYS's default; the API passes its own


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
    active: bool | None = None,
) -> None:
    """Create (or, for an existing id, replace the role/scope/password of) a user;
    ``active`` None leaves an existing user's state alone."""
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
                _UPSERT_USER,
                (user_id, role, enterprise_id, region, pw_hash, department, active, active),
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
    """A new bearer token for the user; only its SHA-256 is stored, so show it once.
    An API key always expires (``API_KEY_TTL`` unless ``ttl`` says otherwise)."""
    token = new_token()
    if ttl is None and kind == "api_key":
        ttl = API_KEY_TTL
    expires = datetime.now(UTC) + ttl if ttl is not None else None
    try:
        with conn.transaction():
            conn.execute(
                _INSERT_TOKEN,
                (token_digest(token), user_id, kind, expires),
            )
            append_sync(
                conn, actor, "token.issue", f"user:{user_id}", {"kind": kind, "expires_at": expires}
            )
    except psycopg.errors.ForeignKeyViolation as exc:
        raise UserError(f"no user {user_id!r}") from exc
    return token


async def insert_token(
    conn: AsyncConnection, digest: bytes, user_id: str, kind: str, expires_at: datetime | None
) -> None:
    """Store a new token's digest (the caller shows the token once, then forgets it)."""
    await conn.execute(
        _INSERT_TOKEN,
        (digest, user_id, kind, expires_at),
    )


async def revoke_token(conn: AsyncConnection, digest: bytes) -> None:
    """Log a session out: the token stops working at once."""
    await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_sha256 = %s AND revoked_at IS NULL",
        (digest,),
    )


async def upsert_user(
    conn: AsyncConnection,
    user_id: str,
    role: str,
    enterprise_id: str | None,
    region: str,
    password_hash: str | None,
    department: str = "",
    active: bool | None = None,
) -> dict[str, Any]:
    """Create a user, or replace an existing one's role, scope and (if given) password.
    ``active`` changes only when given: True reactivates, False deactivates and revokes
    every token; None leaves an existing user as it was."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            _UPSERT_USER,
            (user_id, role, enterprise_id, region, password_hash, department, active, active),
        )
        row = await cur.fetchone()
        assert row is not None
    if active is False:
        await deactivate_user(conn, user_id)
    return row


async def set_language(conn: AsyncConnection, user_id: str, lang: str | None) -> bool:
    """Keep the console language a user chose (None: back to the browser's); False if
    no such active user."""
    if lang is not None and lang not in LANGUAGES:
        raise UserError(f"unknown language {lang!r}: one of {', '.join(LANGUAGES)}")
    cur = await conn.execute("UPDATE users SET lang = %s WHERE id = %s AND active", (lang, user_id))
    return cur.rowcount > 0


async def deactivate_user(conn: AsyncConnection, user_id: str) -> bool:
    """Deactivate a user and revoke every token they hold; False if no such user."""
    cur = await conn.execute("UPDATE users SET active = false WHERE id = %s", (user_id,))
    await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
        (user_id,),
    )
    return cur.rowcount > 0

"""People and their API keys (admin only). Every change goes to the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response
from psycopg import errors
from starlette.concurrency import run_in_threadpool

from offsite.api import queries
from offsite.api.auth import ADMIN, STAFF, Principal
from offsite.api.deps import Conn, SettingsDep
from offsite.api.models.users import ApiKey, UserBrief, UserCreate, UserPublic
from offsite.core.credentials import hash_password, new_token, token_digest
from offsite.store import audit
from offsite.store import users as user_store

router = APIRouter(prefix="/api/users", tags=["users"])
# who work (an alert, an inspection task) may be handed to
ASSIGNABLE_ROLES = ("inspector", "regulator")


def field_error(field: str, message: str, kind: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, naming the body field."""
    return HTTPException(422, [{"loc": ["body", field], "msg": message, "type": kind}])


async def check_assignee(conn: Conn, user_id: str) -> None:
    """Refuse work for a name that is not an active user of an assignable role."""
    role = await queries.users.user_role(conn, user_id)
    if role is None:
        raise field_error("assignee", f"no active user {user_id}", "unknown_user")
    if role not in ASSIGNABLE_ROLES:
        raise field_error(
            "assignee",
            f"user {user_id} is {role}: only {' or '.join(ASSIGNABLE_ROLES)} may be assigned",
            "role_not_assignable",
        )


@router.get(
    "/assignable",
    response_model=list[UserBrief],
    summary="Active users work may be assigned to (the pickers' choices)",
)
async def assignable(conn: Conn, _: Annotated[Principal, Depends(STAFF)]) -> list[dict]:
    return await queries.users.assignable_users(conn, ASSIGNABLE_ROLES)


@router.get("", response_model=list[UserPublic], summary="Users and their roles")
async def list_users(conn: Conn, _: Annotated[Principal, Depends(ADMIN)]) -> list[dict]:
    return await queries.users.list_users(conn)


@router.put(
    "",
    response_model=UserPublic,
    summary="Create or update a user",
    responses={
        422: {"description": "role and enterprise do not fit together, or unknown enterprise"}
    },
)
async def put_user(body: UserCreate, conn: Conn, who: Annotated[Principal, Depends(ADMIN)]) -> dict:
    if (body.role == "enterprise") != (body.enterprise_id is not None):
        raise HTTPException(422, "enterprise_id is required for, and only for, role 'enterprise'")
    pw_hash = await run_in_threadpool(hash_password, body.password) if body.password else None
    try:
        async with conn.transaction():
            row = await user_store.upsert_user(
                conn,
                body.id,
                body.role,
                body.enterprise_id,
                body.region,
                pw_hash,
                body.department,
                active=body.active,
            )
            await audit.append(
                conn,
                who.user_id,
                "user.upsert",
                f"user:{body.id}",
                {
                    "role": body.role,
                    "enterprise_id": body.enterprise_id,
                    "region": body.region,
                    "department": body.department,
                    "password_set": pw_hash is not None,
                    "active": body.active,
                },
            )
    except errors.ForeignKeyViolation as exc:
        raise HTTPException(422, f"enterprise {body.enterprise_id} not found") from exc
    return row


@router.post(
    "/{user_id}/api-keys",
    response_model=ApiKey,
    status_code=201,
    summary="Issue an API key (shown once)",
    responses={404: {"description": "no such user"}},
)
async def issue_key(
    user_id: str,
    conn: Conn,
    settings: SettingsDep,
    who: Annotated[Principal, Depends(ADMIN)],
) -> dict:
    token = new_token()
    expires = datetime.now(UTC) + timedelta(days=settings.api_key_ttl_days)
    try:
        async with conn.transaction():
            await user_store.insert_token(conn, token_digest(token), user_id, "api_key", expires)
            await audit.append(
                conn,
                who.user_id,
                "token.issue",
                f"user:{user_id}",
                {"kind": "api_key", "expires_at": expires},
            )
    except errors.ForeignKeyViolation as exc:
        raise HTTPException(404, f"user {user_id} not found") from exc
    return {"user_id": user_id, "token": token, "expires_at": expires}


@router.post(
    "/{user_id}/deactivate",
    status_code=204,
    response_class=Response,
    summary="Deactivate a user and revoke all their tokens",
    responses={404: {"description": "no such user"}},
)
async def deactivate(
    user_id: str, conn: Conn, who: Annotated[Principal, Depends(ADMIN)]
) -> Response:
    async with conn.transaction():
        found = await user_store.deactivate_user(conn, user_id)
        if found:
            await audit.append(conn, who.user_id, "user.deactivate", f"user:{user_id}", {})
    if not found:
        raise HTTPException(404, f"user {user_id} not found")
    return Response(status_code=204)

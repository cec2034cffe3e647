"""Signing in and out. A login answers with a bearer token and sets it as an HttpOnly,
SameSite=Strict cookie too, so the console's EventSource (which cannot send headers)
is authenticated and page scripts never see the token."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from offsite.api import device_cookie, queries
from offsite.api.auth import ANY_USER, COOKIE, PUBLIC, Principal, too_many
from offsite.api.deps import Conn, SettingsDep
from offsite.api.device_cookie import DEVICE_COOKIE, DEVICE_COOKIE_DAYS
from offsite.api.guard import LOGIN_BODY
from offsite.api.models.users import LanguageChoice, LoginRequest, LoginResult, Me
from offsite.api.ratelimit import RateLimiter
from offsite.core.credentials import DUMMY_HASH, new_token, token_digest, verify_password
from offsite.store import audit
from offsite.store import users as user_store

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/login",
    response_model=LoginResult,
    summary="Sign in with a user name and password",
    openapi_extra=LOGIN_BODY,
    responses={
        401: {"description": "wrong user name or password"},
        429: {"description": "too many attempts"},
    },
)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    conn: Conn,
    settings: SettingsDep,
    _: Annotated[None, Depends(PUBLIC)],
) -> dict:
    limiter: RateLimiter = request.app.state.limiters["login"]
    now = time.monotonic()
    client = request.client.host if request.client else "?"
    # a browser this user signed in from before has a limit of its own: guessing from
    # elsewhere cannot lock the user out of it (device cookies)
    key = request.app.state.device_key
    device = device_cookie.trusted_device(key, request.cookies.get(DEVICE_COOKIE), body.username)
    user_bucket = f"device:{device}" if device else f"user:{body.username}"
    for bucket in (f"ip:{client}", user_bucket):
        wait = limiter.hit(bucket, now)
        if wait is not None:
            raise too_many(wait)
    user = await queries.users.login_user(conn, body.username)
    stored = user["password_hash"] if user and user["password_hash"] else DUMMY_HASH
    # argon2 takes tens of milliseconds of CPU on purpose: keep it off the event loop
    if (
        not await run_in_threadpool(verify_password, stored, body.password)
        or user is None
        or not user["password_hash"]
    ):
        raise HTTPException(
            401, "wrong user name or password", headers={"WWW-Authenticate": "Bearer"}
        )
    limiter.refund(user_bucket, now)  # only wrong passwords count against the user
    secure = settings.base_url.startswith("https://")
    token = new_token()
    expires = datetime.now(UTC) + timedelta(hours=settings.session_ttl_h)
    async with conn.transaction():
        await user_store.insert_token(conn, token_digest(token), user["id"], "session", expires)
        await audit.append(conn, user["id"], "auth.login", f"user:{user['id']}", {"client": client})
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(settings.session_ttl_h * 3600),
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    if device is None:
        response.set_cookie(
            DEVICE_COOKIE,
            device_cookie.issue(key, body.username),
            max_age=DEVICE_COOKIE_DAYS * 86400,
            httponly=True,
            samesite="strict",
            secure=secure,
            path="/auth",
        )
    row = await queries.users.principal_for_token(conn, token_digest(token))
    assert row is not None
    return {
        "token": token,
        "user_id": user["id"],
        "role": user["role"],
        "enterprise_id": row["enterprise_id"],
        "expires_at": expires,
    }


@router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    summary="Revoke the token in use and clear the cookie",
)
async def logout(conn: Conn, who: Annotated[Principal, Depends(ANY_USER)]) -> Response:
    async with conn.transaction():
        await user_store.revoke_token(conn, who.token_sha256)
    out = Response(status_code=204)
    out.delete_cookie(COOKIE, path="/")
    return out


@router.get("/me", response_model=Me, summary="Who the token belongs to")
async def me(conn: Conn, who: Annotated[Principal, Depends(ANY_USER)]) -> dict:
    return {
        "user_id": who.user_id,
        "role": who.role.value,
        "enterprise_id": who.enterprise_id,
        "region": who.region,
        "lang": await queries.users.user_language(conn, who.user_id),
    }


@router.put(
    "/me/language",
    response_model=Me,
    summary="Keep the console language for this user (on every browser and phone)",
)
async def set_language(
    body: LanguageChoice, conn: Conn, who: Annotated[Principal, Depends(ANY_USER)]
) -> dict:
    async with conn.transaction():
        if not await user_store.set_language(conn, who.user_id, body.lang):
            raise HTTPException(404, f"user {who.user_id} not found")
        subject = f"user:{who.user_id}"
        await audit.append(conn, who.user_id, "user.language", subject, {"lang": body.lang})
    return await me(conn, who)

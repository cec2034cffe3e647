"""Who is asking, and may they: bearer tokens (or the console's cookie) and roles.

Every route declares its access as a dependency — ``Access(Role.ADMIN, …)`` or
``PUBLIC`` — and ``require_declared`` refuses to build an app with a route that declares
neither, so no route is left open by accident.

Roles and what they see:

- admin: everything; the registry and users.
- regulator: the enterprises of their region ('' = every region) and sub-regions;
  acts on alerts, revokes QR codes.
- inspector: reads like a regulator of their region; checks in and out; sees their own
  visits only.
- enterprise: only its own sites, devices, readings, alerts and visits; rates visits.

Data of an enterprise a principal may not see answers 404, as if it did not exist.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import BaseRoute, Route

from offsite.api import queries
from offsite.api.ratelimit import RateLimiter
from offsite.core.credentials import token_digest

COOKIE = "offsite_session"
_bearer = HTTPBearer(
    auto_error=False,
    description="a token from POST /auth/login or an API key from `offsite users token`",
)


class Role(StrEnum):
    ADMIN = "admin"
    REGULATOR = "regulator"
    INSPECTOR = "inspector"
    ENTERPRISE = "enterprise"


ALL_ROLES = frozenset(Role)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: Role
    enterprise_id: str | None
    region: str
    visible: frozenset[str] | None  # enterprises this principal may see; None: all
    token_sha256: bytes

    def can_see(self, enterprise_id: str | None) -> bool:
        return self.visible is None or enterprise_id in self.visible

    @property
    def scope(self) -> list[str] | None:
        """For SQL: ``enterprise_id = ANY(scope)`` unless None (no restriction)."""
        return None if self.visible is None else sorted(self.visible)


def unauthenticated(detail: str = "sign in: send 'Authorization: Bearer <token>'") -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def too_many(retry_after: float) -> HTTPException:
    wait = max(1, math.ceil(retry_after))
    return HTTPException(
        429, f"too many requests: retry in {wait} s", headers={"Retry-After": str(wait)}
    )


def token_of(request: Request, creds: HTTPAuthorizationCredentials | None) -> str | None:
    if creds is not None and creds.scheme.lower() == "bearer":
        return creds.credentials
    return request.cookies.get(COOKIE)


async def authenticate(request: Request, token: str) -> Principal | None:
    digest = token_digest(token)
    async with request.app.state.auth_pool.connection() as conn:
        row = await queries.users.principal_for_token(conn, digest)
        if row is None:
            return None
        role = Role(row["role"])
        visible: frozenset[str] | None
        if role is Role.ENTERPRISE:
            visible = frozenset({row["enterprise_id"]})
        elif role in (Role.REGULATOR, Role.INSPECTOR) and row["region"]:
            visible = frozenset(
                await queries.enterprises.enterprises_in_region(conn, row["region"])
            )
        else:
            visible = None
    return Principal(row["id"], role, row["enterprise_id"], row["region"], visible, digest)


async def optional_principal(request: Request) -> Principal | None:
    """Who is asking on a public route, if anyone: the bearer token or the console's
    cookie; None for nobody or a token that does not hold."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token = credentials if scheme.lower() == "bearer" and credentials else None
    token = token or request.cookies.get(COOKIE)
    return await authenticate(request, token) if token else None


async def still_holds(request: Request, principal: Principal) -> bool:
    """Does the token a long-lived request (the live feed) started with still stand for
    the same user and role? False after logout, deactivation, expiry or a role change."""
    try:
        async with request.app.state.auth_pool.connection(timeout=5) as conn:
            row = await queries.users.principal_for_token(conn, principal.token_sha256)
    except Exception:  # the database is away: keep the stream; the next check decides
        return True
    return (
        row is not None
        and row["id"] == principal.user_id
        and row["role"] == principal.role.value
        and row["enterprise_id"] == principal.enterprise_id
        and row["region"] == principal.region
    )


class Access:
    """The dependency a route uses to say which roles may call it (and, optionally,
    which rate limit applies, keyed by user)."""

    def __init__(self, *roles: Role, limit: str | None = None) -> None:
        if not roles:
            raise ValueError("Access needs at least one role (use PUBLIC for open routes)")
        self.roles = frozenset(roles)
        self.limit = limit

    async def __call__(
        self,
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        token = token_of(request, creds)
        if not token:
            raise unauthenticated()
        principal = await authenticate(request, token)
        if principal is None:
            raise unauthenticated("the token is unknown, expired or revoked: sign in again")
        if principal.role not in self.roles:
            raise HTTPException(
                403,
                f"role {principal.role.value} may not do this (needs "
                f"{' or '.join(sorted(r.value for r in self.roles))})",
            )
        if self.limit is not None:
            limiter: RateLimiter = request.app.state.limiters[self.limit]
            wait = limiter.hit(principal.user_id, time.monotonic())
            if wait is not None:
                raise too_many(wait)
        return principal

    def __repr__(self) -> str:
        return f"Access({', '.join(sorted(self.roles))})"


class Public:
    """The dependency of a route anyone may call (health, login, the console's pages)."""

    async def __call__(self) -> None:
        return None

    def __repr__(self) -> str:
        return "PUBLIC"


PUBLIC = Public()
# the usual combinations
ANY_USER = Access(*ALL_ROLES)
READERS = ANY_USER  # every role reads, each within its scope
STAFF = Access(Role.ADMIN, Role.REGULATOR)
ADMIN = Access(Role.ADMIN)
INSPECTOR = Access(Role.INSPECTOR, limit="checkin")
ENTERPRISE = Access(Role.ENTERPRISE)

OPEN_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


def declared_access(route: APIRoute) -> Access | Public | None:
    found: list[Access | Public] = []

    def walk(dep: Any) -> None:
        if isinstance(dep.call, Access | Public):
            found.append(dep.call)
        for sub in dep.dependencies:
            walk(sub)

    walk(route.dependant)
    if len(found) > 1:
        raise RuntimeError(f"route {route.path} declares its access more than once")
    return found[0] if found else None


def all_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, including those of included routers: FastAPI ≥ 0.16x keeps an included
    router as one entry of ``app.routes`` (its ``original_router`` holds the routes)."""
    for route in routes:
        sub = getattr(route, "original_router", None)
        if sub is not None:
            yield from all_routes(sub.routes)
        else:
            yield route


def require_declared(app: FastAPI) -> None:
    """Refuse an app with an undeclared route; document 401/403/429 on the declared ones.

    Call before the first request: FastAPI copies each route's responses when it first
    routes or documents the app."""
    for route in all_routes(app.routes):
        if isinstance(route, APIRoute):
            access = declared_access(route)
            if access is None:
                raise RuntimeError(
                    f"route {sorted(route.methods or ())} {route.path} declares no "
                    "access: add Access(...) or PUBLIC (api/auth.py)"
                )
            if isinstance(access, Access):
                route.responses.setdefault(401, {"description": "not signed in"})
                route.responses.setdefault(403, {"description": "role not allowed"})
                if access.limit:
                    route.responses.setdefault(429, {"description": "rate limited"})
        elif isinstance(route, Route) and route.path not in OPEN_PATHS:
            raise RuntimeError(
                f"route {route.path} is not an APIRoute: its access cannot be declared"
            )


def visible_or_404(principal: Principal, enterprise_id: str | None, what: str) -> None:
    """Something of an enterprise the principal may not see does not exist for them."""
    if enterprise_id is None or not principal.can_see(enterprise_id):
        raise HTTPException(404, f"{what} not found")

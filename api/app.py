"""The FastAPI application: ``create_app(settings, database_url)``.

The pool and the alert feed live in the lifespan, so nothing connects at import time
and tests can build as many apps as they like.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata, resources
from typing import Annotated, Any
from urllib.parse import urlsplit

import psycopg
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from offsite.api.auth import PUBLIC, all_routes, require_declared
from offsite.api.device_cookie import device_key
from offsite.api.escalation import EscalationTimer
from offsite.api.feed import AlertFeed
from offsite.api.guard import BODY_METHODS, LIMIT_KEY, BodyLimits, RequestGuard
from offsite.api.messages import localise
from offsite.api.metrics import RequestLatency, database_metrics, render
from offsite.api.qr import KeyRing
from offsite.api.ratelimit import RateLimiter
from offsite.api.routes import (
    alerts,
    auth,
    cases,
    devices,
    enterprises,
    health,
    invitations,
    reports,
    tasks,
    users,
    visits,
)
from offsite.api.routes import console as console_routes
from offsite.api.webhook import WebhookSender
from offsite.core.local_secrets import local_secret
from offsite.core.settings import Settings
from offsite.store.pool import open_async_pool

log = logging.getLogger("offsite.api")


def _page(name: str) -> str:
    return resources.files("offsite.api").joinpath("static", name).read_text("utf-8")


class DrainingServer(uvicorn.Server):
    """uvicorn waits for open responses before it shuts the app down, and an alert stream
    never finishes by itself: end every stream first (``event: end``, reason
    ``reconnect``) so the console resumes from where it was instead of timing out."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.offsite_app = app

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        feed = getattr(self.offsite_app.state, "feed", None)
        if isinstance(feed, AlertFeed):
            feed.drain()
        await super().shutdown(sockets)


def create_app(settings: Settings, database_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_async_pool(database_url, max_size=settings.db_pool_max)
        # authentication has its own few connections: a request holding one of the main
        # pool's must never wait for another from it (8 concurrent requests would deadlock)
        auth_pool = await open_async_pool(
            database_url, max_size=max(2, settings.db_pool_max // 2), name="offsite-api-auth"
        )
        feed = AlertFeed(database_url, pool)
        feed.start()
        app.state.pool = pool
        app.state.auth_pool = auth_pool
        app.state.feed = feed
        # the closed loop's clocks: overdue responses escalate; case events go out
        escalation = EscalationTimer(pool, settings.case_check_s)
        escalation.start()
        sender = None
        if settings.webhook_url:
            sender = WebhookSender(
                pool, settings.webhook_url, settings.webhook_secret, settings.webhook_max_attempts
            )
            sender.start()
        try:
            yield
        finally:
            if sender is not None:
                await sender.stop()
            await escalation.stop()
            await feed.stop()
            await auth_pool.close()
            await pool.close()

    app = FastAPI(
        title="Offsite",
        version=metadata.version("offsite"),
        lifespan=lifespan,
        description="Off-site inspection: anomaly feed, devices, readings and QR-coded visits.",
    )
    app.state.settings = settings
    # no constant signs anything: without OFFSITE_QR_SECRET, a random secret generated
    # once and kept in the data directory (production refuses to start without one)
    qr_secret = settings.qr_secret or local_secret(settings.data_dir, "qr_secret")
    app.state.keyring = KeyRing(
        {**settings.qr_verify_keys, settings.qr_key_id: qr_secret}, settings.qr_key_id
    )
    app.state.device_key = device_key(qr_secret)
    app.state.limiters = {
        name: RateLimiter(rate, max(5, math.ceil(rate / 4)))  # 15 s burst
        for name, rate in (
            ("login", settings.login_rate_per_min),
            ("checkin", settings.checkin_rate_per_min),
        )
    }
    for r in (
        health.router,
        auth.router,
        alerts.router,
        devices.router,
        enterprises.router,
        visits.router,
        users.router,
        console_routes.router,
        cases.router,
        tasks.router,
        invitations.router,
        reports.router,
    ):
        app.include_router(r)
    registry = CollectorRegistry()  # per app: tests build many apps in one process
    app.add_middleware(RequestLatency, registry=registry)
    # added last, so outermost: limits and refusals come before routing and authentication
    public = urlsplit(settings.public_url).netloc.lower() if settings.public_url else None
    app.add_middleware(
        RequestGuard, limits=body_limits(app, settings), trusted_origins=[public] if public else []
    )

    # Prometheus scrapes without credentials, like /healthz; it exposes counts, never
    # readings or names — keep it on the internal network (README, Observability)
    @app.get("/metrics", include_in_schema=False, response_model=None)
    async def metrics(_: Annotated[None, Depends(PUBLIC)]) -> Response:
        """Prometheus exposition: request latency here, alerts and workers from the
        database (left out, not failed, while the database is unreachable)."""
        extra = []
        try:
            async with app.state.pool.connection(timeout=5) as conn:
                extra = await database_metrics(conn)
        except Exception as exc:  # a scrape must still answer with what this process knows
            log.warning("/metrics without database figures: %s", exc)
        return Response(render(registry, extra), media_type=CONTENT_TYPE_LATEST)

    # the pages are public; the data they fetch is not
    @app.get("/", include_in_schema=False, response_model=None)
    async def console(_: Annotated[None, Depends(PUBLIC)]) -> HTMLResponse:
        return HTMLResponse(_page("index.html"))

    @app.get("/scan", include_in_schema=False, response_model=None)
    async def scan(_: Annotated[None, Depends(PUBLIC)]) -> HTMLResponse:
        return HTMLResponse(_page("scan.html"))

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon(_: Annotated[None, Depends(PUBLIC)]) -> RedirectResponse:
        """Browsers ask for it at the root: the console's icon is an SVG."""
        return RedirectResponse("/static/console/favicon.svg", status_code=301)

    @app.get("/console", include_in_schema=False)
    async def console_alias(_: Annotated[None, Depends(PUBLIC)]) -> RedirectResponse:
        return RedirectResponse("/")

    @app.exception_handler(psycopg.DataError)
    async def refused_value(request: Request, exc: psycopg.DataError) -> JSONResponse:
        """A value PostgreSQL cannot hold (a NUL character in text, a number out of range)
        is the client's mistake, not a server error."""
        # the shape of FastAPI's own 422, which is what the schema documents
        return JSONResponse(
            {
                "detail": [
                    {
                        "loc": ["request"],
                        "type": "value_error",
                        "msg": f"a value was refused: {exc}",
                    }
                ]
            },
            status_code=422,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, without repeating large inputs back (a 100 MB login body once
        came back as a 200 MB error)."""
        return JSONResponse({"detail": [brief_error(e) for e in exc.errors()]}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def localised_error(request: Request, exc: StarletteHTTPException) -> Response:
        """FastAPI's own answer, with the human message in the caller's language
        (``Accept-Language``); status and error codes stay as they are."""
        localised = StarletteHTTPException(
            exc.status_code,
            localise(exc.detail, request.headers.get("accept-language")),  # type: ignore[arg-type]
            headers=exc.headers,
        )
        return await http_exception_handler(request, localised)

    require_declared(app)
    document_limits(app)
    return app


INPUT_ECHO_MAX = 64  # characters of a refused value repeated in a 422


def brief_error(error: Any) -> dict[str, Any]:
    """A validation error with its ``input`` cut short: scalars stay (strings clipped to
    ``INPUT_ECHO_MAX`` characters), objects and lists are left out."""
    out = {k: v for k, v in dict(error).items() if k not in ("input", "ctx", "url")}
    value = error.get("input")
    if isinstance(value, str):
        out["input"] = value if len(value) <= INPUT_ECHO_MAX else value[:INPUT_ECHO_MAX] + "…"
    elif value is None or isinstance(value, bool | int | float):
        out["input"] = value
    ctx = error.get("ctx")
    if isinstance(ctx, dict):  # e.g. {"max_length": 255}, or the exception a validator raised
        out["ctx"] = {
            k: v if isinstance(v, bool | int | float) else str(v)[:200] for k, v in ctx.items()
        }
    return jsonable_encoder(out)


def body_limits(app: FastAPI, settings: Settings) -> BodyLimits:
    """Each route's body limit, from what it declares in ``openapi_extra`` (``LOGIN_BODY``,
    ``UPLOAD_BODY``); the rest get ``OFFSITE_HTTP_BODY_MAX_BYTES``."""
    by_kind = {"login": settings.http_login_max_bytes, "upload": settings.http_upload_max_bytes}
    routes = []
    for route in all_routes(app.routes):
        if isinstance(route, APIRoute) and route.openapi_extra:
            kind = route.openapi_extra.get(LIMIT_KEY)
            if kind is not None:
                routes.append((route.path_regex, by_kind[kind]))
    return BodyLimits(settings.http_body_max_bytes, tuple(routes))


def document_limits(app: FastAPI) -> None:
    """Every route that takes a body may answer 413 (too large) and 403 (a cross-site or
    non-JSON request refused by ``RequestGuard``)."""
    for route in all_routes(app.routes):
        if isinstance(route, APIRoute) and set(route.methods or ()) & BODY_METHODS:
            route.responses.setdefault(413, {"description": "the request body is too large"})
            route.responses.setdefault(
                403, {"description": "a cross-site or non-JSON request that changes something"}
            )

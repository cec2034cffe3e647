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
from typing import Annotated

import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from offsite.api.auth import PUBLIC, require_declared
from offsite.api.escalation import EscalationTimer
from offsite.api.feed import AlertFeed
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
from offsite.core.settings import Settings
from offsite.store.pool import open_async_pool

log = logging.getLogger("offsite.api")


def _page(name: str) -> str:
    return resources.files("offsite.api").joinpath("static", name).read_text("utf-8")


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
    app.state.keyring = KeyRing(
        {**settings.qr_verify_keys, settings.qr_key_id: settings.qr_secret}, settings.qr_key_id
    )
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
    return app

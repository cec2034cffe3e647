"""The FastAPI application: ``create_app(settings, database_url)``.

The pool and the alert feed live in the lifespan, so nothing connects at import time
and tests can build as many apps as they like.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from api.feed import AlertFeed
from api.metrics import RequestLatency, database_metrics, render
from api.qr import KeyRing
from api.routes import alerts, devices, enterprises, health, visits
from offsite import __version__
from offsite.settings import Settings
from store.pool import open_async_pool

log = logging.getLogger("offsite.api")


def _page(name: str) -> str:
    return resources.files("api").joinpath("static", name).read_text("utf-8")


def create_app(settings: Settings, database_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_async_pool(database_url, max_size=settings.db_pool_max)
        feed = AlertFeed(database_url, pool)
        feed.start()
        app.state.pool = pool
        app.state.feed = feed
        try:
            yield
        finally:
            await feed.stop()
            await pool.close()

    app = FastAPI(title="Offsite", version=__version__, lifespan=lifespan,
                  description="Off-site inspection: anomaly feed, devices, readings and "
                              "QR-coded visits.")
    app.state.settings = settings
    app.state.keyring = KeyRing({settings.qr_key_id: settings.qr_secret}, settings.qr_key_id)
    for r in (health.router, alerts.router, devices.router, enterprises.router, visits.router):
        app.include_router(r)
    registry = CollectorRegistry()  # per app: tests build many apps in one process
    app.add_middleware(RequestLatency, registry=registry)

    @app.get("/metrics", include_in_schema=False, response_model=None)
    async def metrics() -> Response:
        """Prometheus exposition: request latency here, alerts and workers from the
        database (left out, not failed, while the database is unreachable)."""
        extra = []
        try:
            async with app.state.pool.connection(timeout=5) as conn:
                extra = await database_metrics(conn)
        except Exception as exc:  # a scrape must still answer with what this process knows
            log.warning("/metrics without database figures: %s", exc)
        return Response(render(registry, extra), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False, response_model=None)
    async def console() -> HTMLResponse:
        return HTMLResponse(_page("index.html"))

    @app.get("/scan", include_in_schema=False, response_model=None)
    async def scan() -> HTMLResponse:
        return HTMLResponse(_page("scan.html"))

    @app.get("/console", include_in_schema=False)
    async def console_alias() -> RedirectResponse:
        return RedirectResponse("/")

    return app

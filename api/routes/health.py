"""Liveness and readiness: is the database reachable, and how fresh is the data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api import queries

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Database reachability and data freshness")
async def healthz(request: Request) -> JSONResponse:
    body: dict[str, Any] = {"status": "ok"}
    try:
        async with request.app.state.pool.connection(timeout=5) as conn:
            body["database"] = "ok"
            body.update({k: v.isoformat() if isinstance(v, datetime) else v
                         for k, v in (await queries.health(conn)).items()})
    except (psycopg.Error, TimeoutError, OSError) as exc:
        body.update(status="degraded", database=f"unreachable: {type(exc).__name__}")
    except Exception as exc:  # psycopg_pool.PoolTimeout
        body.update(status="degraded", database=f"unreachable: {type(exc).__name__}")
    body["alert_feed"] = "ok" if request.app.state.feed.connected.is_set() else "reconnecting"
    ingest = getattr(request.app.state, "ingest_stats", None)
    if ingest is not None:
        body["ingest"] = {"messages": ingest.messages, "readings_stored": ingest.readings_stored,
                          "dead_letters": ingest.dead_letters}
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

"""Liveness and readiness: is the database reachable, and how fresh is the data."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from offsite.api import queries
from offsite.api.auth import PUBLIC, Role, optional_principal

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="Database, live feed and every ingest worker's state",
    description="503 only when this API cannot serve (database unreachable). Each "
    "ingest worker reports by heartbeat: broker connection, messages "
    "in hand and the age of the oldest (lag), last commit; a worker "
    "silent for 15 s is 'stale'; one whose rule runner process died and is being "
    "restarted is 'rules restarting' (rules_restarts counts restarts, rules_last_exit "
    "says how the last runner ended). Which host and process each worker is "
    "(``worker``, ``host``, ``pid``) is shown to a signed-in admin only.",
)
async def healthz(request: Request, _: Annotated[None, Depends(PUBLIC)]) -> JSONResponse:
    body: dict[str, Any] = {"status": "ok"}
    try:
        who = await optional_principal(request)
        admin = who is not None and who.role is Role.ADMIN
        async with request.app.state.pool.connection(timeout=5) as conn:
            body["database"] = "ok"
            body.update(
                {
                    k: v.isoformat() if isinstance(v, datetime) else v
                    for k, v in (await queries.health.health(conn)).items()
                }
            )
            workers = await queries.health.ingest_workers(conn)
            body["ingest"] = [_worker(w, identify=admin) for w in workers]
    except (psycopg.Error, TimeoutError, OSError) as exc:
        body.update(status="degraded", database=f"unreachable: {type(exc).__name__}")
    except Exception as exc:  # psycopg_pool.PoolTimeout
        body.update(status="degraded", database=f"unreachable: {type(exc).__name__}")
    body["alert_feed"] = "ok" if request.app.state.feed.connected.is_set() else "reconnecting"
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


STALE_S = 15.0


IDENTITY = ("worker", "host", "pid")  # where the workers run: not for anonymous callers


def _worker(w: dict[str, Any], *, identify: bool) -> dict[str, Any]:
    """A worker's heartbeat, judged: 'ok', 'stale' (no heartbeat for STALE_S: down or
    cut off from the database), 'broker down', 'rules restarting' (its rule runner
    process died), or 'behind' (oldest uncommitted > 60 s). Without ``identify``,
    nothing says which host or process it is."""
    age = float(w["heartbeat_age_s"])
    if age > STALE_S:
        state = "stale"
    elif w["broker_connected"] is False:
        state = "broker down"
    elif w.get("rules_runner") == "restarting":
        state = "rules restarting"
    elif w["lag_s"] > 60:
        state = "behind"
    else:
        state = "ok"
    out = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in w.items()}
    out["heartbeat_age_s"] = round(age, 1)
    out["state"] = state
    if not identify:
        for key in IDENTITY:
            out.pop(key, None)
    return out

"""HJ 212 gateway throughput: simulated data loggers over TCP, through the gateway, into
PostgreSQL, every packet answered (CN 9014) only after its commit.

    python -m offsite.bench.gateway [--devices 200] [--minutes 60] [--rate 60] [--connections 50]
                            [--json]

Uses OFFSITE_DATABASE_URL's server (a scratch database is created and dropped). The
loggers run in a process of their own. Prints packets/s and readings/s from the first
packet to the last answer, and checks that every packet was stored once and answered.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from datetime import UTC, datetime, timedelta

import psycopg

from offsite.bench.report import emit
from offsite.core.settings import load_settings
from offsite.ingest.service import IngestService
from offsite.simulators.scenarios import build_fleet
from offsite.simulators.tcp_logger import run_tcp_loggers
from offsite.store.migrate import migrate
from offsite.store.registry import save_registry
from offsite.store.scratch import scratch_database


def _loggers(
    args: argparse.Namespace, start: datetime, port: int, out: multiprocessing.Queue[dict[str, int]]
) -> None:
    fleet = build_fleet(args.devices, seed=1, start=start, rate_s=args.rate, faults=())
    st = run_tcp_loggers(
        fleet,
        "127.0.0.1",
        port,
        duration_s=args.minutes * 60,
        start=start,
        realtime=False,
        connections=args.connections,
    )
    res = {
        k: getattr(st, k)
        for k in ("connections", "packets", "readings", "responses", "missing", "resent")
    }
    res["elapsed_ms"] = round(st.elapsed_s * 1000)
    out.put(res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=60.0, help="device time replayed")
    ap.add_argument("--rate", type=float, default=60.0, help="seconds between packets")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    admin = os.environ.get("OFFSITE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    with scratch_database(admin, "offsite_bench") as db:
        emit(_run(args, db), args.json)


def _run(args: argparse.Namespace, db: str) -> dict[str, object]:
    start = datetime.now(UTC) - timedelta(minutes=args.minutes)
    fleet = build_fleet(args.devices, seed=1, start=start, rate_s=args.rate, faults=())
    with psycopg.connect(db) as conn:
        migrate(conn)
        save_registry(conn, fleet.registry)
    svc = IngestService(load_settings(database_url=db, gateway_port=0), db, None, gateway=True)
    svc.start()
    assert svc.gateway is not None
    t0 = time.perf_counter()
    # the loggers run in a process of their own, as real ones would: in this process they
    # would contend with the gateway for the GIL and measure that instead
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[dict[str, int]] = ctx.Queue()
    child = ctx.Process(target=_loggers, args=(args, start, svc.gateway.port, out))
    child.start()
    st = out.get()
    child.join()
    wall = time.perf_counter() - t0
    elapsed = st["elapsed_ms"] / 1000  # first packet sent → last answer received
    svc.stop()
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM packets)"
        ).fetchone()
    stored, archived = (int(row[0]), int(row[1])) if row else (0, 0)
    return {
        "devices": args.devices,
        "connections": st["connections"],
        "packets": st["packets"],
        "readings": st["readings"],
        "stored": stored,
        "packets_archived": archived,
        "responses": st["responses"],
        "missing": st["missing"],
        "resent": st["resent"],
        "seconds": round(elapsed, 2),
        "wall_s_with_spawn": round(wall, 2),
        "packets_per_s": round(st["packets"] / elapsed),
        "readings_per_s": round(stored / elapsed),
        "batches": svc.stats.batches,
    }


if __name__ == "__main__":
    main()

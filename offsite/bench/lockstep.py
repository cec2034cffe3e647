"""One HJ 212 logger in lock step against the real gateway: what a logger that waits for
every answer (split parts included) gets.

    python -m offsite.bench.lockstep [--packets 200] [--parts 3]

Uses OFFSITE_DATABASE_URL's server (a scratch database, created and dropped) and starts
the gateway alone (``offsite gateway``'s service, rule runner external). Sends
``--packets`` whole packets, then ``--packets`` split packets of ``--parts`` parts,
each packet or part only after the answer to the one before. Prints the round trip
(send → 9014) p50/p99 and packets per second for each, and checks every reading was
stored.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg

from offsite.core.registry import registry_from_dict
from offsite.core.settings import load_settings
from offsite.ingest.codecs import hj212
from offsite.ingest.service import IngestService
from offsite.simulators.tcp_logger import LockstepLogger
from offsite.store.migrate import migrate
from offsite.store.registry import save_registry
from offsite.store.scratch import scratch_database

MN = "055555A8900016F000169DC0"
CODES = ["a21026", "a21002", "a34013", "a19001", "a01011", "a01012", "a01013", "a01014"]


def _whole(ts: datetime) -> bytes:
    return hj212.build_data_packet(
        mn=MN, pw="1", cn="2011", ts=ts, st="31", flag=5, values=[("a21026", 10.0, "N")]
    )


def _split(ts: datetime, parts: int) -> list[bytes]:
    qn, dt = hj212.qn_of(ts), hj212.data_time(ts)
    return [
        hj212.frame(
            f"QN={qn};ST=31;CN=2011;PW=1;MN={MN};Flag=7;PNUM={parts};PNO={i + 1};"
            f"CP=&&DataTime={dt};{CODES[i % len(CODES)]}-Rtd={i + 1.0},"
            f"{CODES[i % len(CODES)]}-Flag=N&&"
        )
        for i in range(parts)
    ]


def _pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200)
    ap.add_argument("--parts", type=int, default=3)
    args = ap.parse_args()
    if not 1 <= args.parts <= len(CODES):
        raise SystemExit(f"--parts must be 1..{len(CODES)}")
    admin = os.environ.get("OFFSITE_DATABASE_URL")
    if not admin:
        raise SystemExit("set OFFSITE_DATABASE_URL to a PostgreSQL server (a scratch db is made)")
    with scratch_database(admin, "offsite_bench_lockstep") as url:
        with psycopg.connect(url) as conn:
            migrate(conn)
            save_registry(
                conn,
                registry_from_dict(
                    {
                        "enterprises": [
                            {
                                "id": "EL",
                                "name": "Lock step",
                                "points": [
                                    {"id": "EL-P", "kind": "flue_gas", "devices": [{"mn": MN}]}
                                ],
                            }
                        ]
                    }
                ),
            )
        settings = load_settings(database_url=url, gateway_port=0, rules_runner="external")
        svc = IngestService(settings, url, None, gateway=True)
        svc.start()
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
        figures: dict[str, tuple[list[float], float, int]] = {}
        try:
            assert svc.gateway is not None
            with LockstepLogger("127.0.0.1", svc.gateway.port, response_timeout_s=10) as log:
                for name, packets in (
                    (
                        "whole packets",
                        [[_whole(t0 + timedelta(seconds=i))] for i in range(args.packets)],
                    ),
                    (
                        f"split packets of {args.parts} parts",
                        [
                            _split(t0 + timedelta(hours=1, seconds=i), args.parts)
                            for i in range(args.packets)
                        ],
                    ),
                ):
                    trips: list[float] = []
                    start = time.perf_counter()
                    for parts in packets:
                        for raw in parts:
                            t = time.perf_counter()
                            if not log.exchange(raw, resend=False).answered:
                                raise SystemExit(f"{name}: a packet went unanswered: stalled")
                            trips.append(time.perf_counter() - t)
                    figures[name] = (trips, time.perf_counter() - start, len(packets))
                    print(f"{name}: done", flush=True)
        except KeyboardInterrupt:
            raise SystemExit("interrupted") from None
        finally:
            svc.stop()
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
        stored = int(row[0]) if row else 0
    expected = args.packets * (1 + args.parts)
    for name, (trips, elapsed, n) in figures.items():
        print(
            f"{name:<28} {n / elapsed:7.1f} packets/s  round trip p50 "
            f"{statistics.median(trips) * 1000:6.1f} ms  p99 {_pct(trips, 0.99):6.1f} ms"
        )
    print(f"readings stored: {stored} of {expected}" + ("" if stored == expected else "  LOST"))
    if stored != expected:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

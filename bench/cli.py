"""``offsite bench …``: benchmarks that print figures (``--json``: one JSON object).

Each runs against ``OFFSITE_DATABASE_URL``'s server (a scratch database is created and
dropped) and a private Mosquitto configured for lossless ingest.
"""

from __future__ import annotations

import argparse

from bench.report import emit
from offsite.settings import Settings

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def add_bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    b = sub.add_parser("bench", help="benchmarks: ingest, latency, query")
    bs = b.add_subparsers(dest="bench_command", required=True)
    i = bs.add_parser("ingest", help="Offsite ingest vs a bare subscriber, same run")
    i.add_argument("--devices", type=int, default=1000)
    i.add_argument("--ticks", type=int, default=60, help="messages per device")
    i.add_argument("--publishers", type=int, default=2, help="publisher processes")
    i.add_argument("--workers", type=int, default=1,
                   help="ingest workers (and bare subscribers) sharing the stream")
    i.add_argument("--json", action="store_true")


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    admin = settings.database_url or DEFAULT_ADMIN_URL
    out = (lambda _s: None) if args.json else (lambda s: print(s, flush=True))
    if args.bench_command == "ingest":
        from bench.ingest import IngestBenchArgs, run_ingest_bench

        result = run_ingest_bench(IngestBenchArgs(
            devices=args.devices, ticks=args.ticks, publishers=args.publishers,
            workers=args.workers), admin, out)
        emit(result, args.json)
        return 0 if result["lost"] == 0 else 1
    raise AssertionError(args.bench_command)

"""``offsite bench …``: benchmarks that print figures (``--json``: one JSON object).

Each runs against ``OFFSITE_DATABASE_URL``'s server (a scratch database is created and
dropped) and a private Mosquitto configured for lossless ingest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from offsite.bench.report import emit
from offsite.core.settings import Settings

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def add_bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    b = sub.add_parser("bench", help="benchmarks: ingest, latency, query, storage, rules, runners")
    bs = b.add_subparsers(dest="bench_command", required=True)
    i = bs.add_parser(
        "ingest", help="Offsite ingest vs the minimal lossless ingest and a bare subscriber"
    )
    i.add_argument("--devices", type=int, default=1000, help="simulated devices publishing")
    i.add_argument("--ticks", type=int, default=60, help="messages per device")
    i.add_argument("--publishers", type=int, default=2, help="publisher processes")
    i.add_argument(
        "--workers",
        type=int,
        default=1,
        help="ingest workers (and bare subscribers) sharing the stream",
    )
    i.add_argument(
        "--rounds", type=int, default=3, help="alternating minimal/offsite pairs (medians)"
    )
    i.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    lat = bs.add_parser("latency", help="publish → alert on the SSE feed under steady load")
    lat.add_argument("--rate", type=int, default=10_000, help="background readings/s")
    lat.add_argument("--probes", type=int, default=100, help="exceedances injected")
    lat.add_argument("--probe-every", type=float, default=0.25, help="seconds between them")
    lat.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    q = bs.add_parser("query", help="the console's queries over a large stored history")
    q.add_argument("--devices", type=int, default=1000, help="devices in the queried history")
    q.add_argument("--days", type=float, default=6.0, help="days of minute data")
    q.add_argument("--repeats", type=int, default=40, help="timed runs of each query")
    q.add_argument("--fresh", action="store_true", help="regenerate the kept history")
    q.add_argument(
        "--compress",
        action="store_true",
        help="TimescaleDB: run the compression policy, then time the readings queries again",
    )
    q.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    st = bs.add_parser(
        "storage", help="plain PostgreSQL against TimescaleDB: ingest, queries, compression"
    )
    st.add_argument(
        "--backend",
        choices=("both", "plain", "timescaledb"),
        default="both",
        help="which backends to measure (default both, side by side)",
    )
    st.add_argument("--plain-url", help="plain PostgreSQL server (default: OFFSITE_DATABASE_URL's)")
    st.add_argument(
        "--timescale-url",
        default="postgresql://postgres@127.0.0.1:5433/postgres",
        help="a server with TimescaleDB preloaded",
    )
    st.add_argument("--devices", type=int, default=12, help="8 pollutants each")
    st.add_argument("--days", type=int, default=30, help="days of minute data (145 × 30: 50M)")
    st.add_argument("--ingest-rows", type=int, default=200_000, help="through insert_readings")
    st.add_argument("--batch", type=int, default=5000, help="readings per ingest batch")
    st.add_argument("--repeats", type=int, default=40, help="timed runs of each query")
    st.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    r = bs.add_parser("rules", help="rule evaluation alone, whole catalog (no services)")
    r.add_argument("--devices", type=int, default=2000, help="CEMS stacks, 8 series each")
    r.add_argument("--rounds", type=int, default=60, help="timed readings per series")
    r.add_argument("--repeat", type=int, default=3, help="runs (the median is reported)")
    r.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    r.add_argument(
        "--rules-file",
        type=Path,
        default=None,
        help="judge with this rules file instead of the packaged one (compare two in turns)",
    )
    rr = bs.add_parser(
        "runners", help="1 against N sharded rule runners (judged/s, lag after last commit)"
    )
    rr.add_argument("--devices", type=int, default=10_000, help="CEMS stacks, 6 series each")
    rr.add_argument("--runners", type=int, default=2, help="runners (and shards) against 1")
    rr.add_argument("--backlog", type=int, default=4, help="rounds queued before they start")
    rr.add_argument("--stream", type=int, default=4, help="rounds written while they lead")
    rr.add_argument("--rounds", type=int, default=3, help="alternating 1/N pairs (medians)")
    rr.add_argument("--json", action="store_true", help="the figures as JSON on stdout")


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    admin = settings.database_url or DEFAULT_ADMIN_URL
    out = (lambda _s: None) if args.json else (lambda s: print(s, flush=True))
    if args.bench_command == "ingest":
        from offsite.bench.ingest import IngestBenchArgs, run_ingest_bench

        result = run_ingest_bench(
            IngestBenchArgs(
                devices=args.devices,
                ticks=args.ticks,
                publishers=args.publishers,
                workers=args.workers,
                rounds=args.rounds,
            ),
            admin,
            out,
        )
        emit(result, args.json)
        return 0 if result["lost"] == 0 else 1
    if args.bench_command == "latency":
        from offsite.bench.latency import LatencyBenchArgs, run_latency_bench

        result = run_latency_bench(
            LatencyBenchArgs(
                readings_per_s=args.rate, probes=args.probes, probe_every_s=args.probe_every
            ),
            admin,
            out,
        )
        emit(result, args.json)
        return 0 if result["lost"] == 0 and result["alerts_seen"] == result["probes"] else 1
    if args.bench_command == "query":
        from offsite.bench.query import NotTimescale, QueryBenchArgs, run_query_bench

        try:
            result = run_query_bench(
                QueryBenchArgs(
                    devices=args.devices,
                    days=args.days,
                    repeats=args.repeats,
                    fresh=args.fresh,
                    compress=args.compress,
                ),
                admin,
                out,
            )
        except NotTimescale as exc:
            print(f"offsite bench query: {exc}")
            return 2
        emit(result, args.json)
        return 0
    if args.bench_command == "storage":
        import json

        from offsite.bench.backends import StorageBenchArgs, run_storage_bench, side_by_side

        urls = {}
        if args.backend in ("both", "plain"):
            urls["plain"] = args.plain_url or admin
        if args.backend in ("both", "timescaledb"):
            urls["timescaledb"] = args.timescale_url
        result = run_storage_bench(
            StorageBenchArgs(
                devices=args.devices,
                days=args.days,
                ingest_rows=args.ingest_rows,
                batch=args.batch,
                repeats=args.repeats,
            ),
            urls,
            out,
        )
        print(json.dumps(result) if args.json else side_by_side(result))
        return 0
    if args.bench_command == "rules":
        from offsite.bench.rules_bench import main as rules_main

        return rules_main(
            [
                "--devices",
                str(args.devices),
                "--rounds",
                str(args.rounds),
                "--repeat",
                str(args.repeat),
                *(["--json"] if args.json else []),
                *(["--rules-file", str(args.rules_file)] if args.rules_file else []),
            ]
        )
    if args.bench_command == "runners":
        from offsite.bench.runners import RunnersBenchArgs, run_runners_bench

        emit(
            run_runners_bench(
                RunnersBenchArgs(
                    devices=args.devices,
                    runners=args.runners,
                    backlog=args.backlog,
                    stream=args.stream,
                    rounds=args.rounds,
                ),
                admin,
                out,
            ),
            args.json,
        )
        return 0
    raise AssertionError(args.bench_command)

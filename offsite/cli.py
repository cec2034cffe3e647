"""The ``offsite`` command: demo | ingest | gateway | serve | simulate | db.

Every subcommand builds the one Settings object from ``OFFSITE_*`` (validated before
anything starts), prints what it started and where, and stops cleanly on Ctrl-C or
SIGTERM with a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from offsite.errors import OffsiteError
from offsite.logs import setup_logging
from offsite.settings import Settings, load_settings


class _Stop:
    """A stop flag set by SIGINT/SIGTERM; a second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            if self.event.is_set():
                raise KeyboardInterrupt
            print("\nstopping… (Ctrl-C again to abort)", flush=True)
            self.event.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def _print(*parts: object) -> None:
    print(*parts, flush=True)


# -- db ----------------------------------------------------------------------------------
def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.embedded import services
    from offsite.registry import load_registry_file
    from store.migrate import current_version, migrate, timescale_active
    from store.pool import open_pool
    from store.registry import save_registry
    from store.status import db_status

    with services(settings.database_url, "mqtt://unused:1", settings.data_dir) as (db, _, notes):
        for n in notes:
            _print(f"started {n}")
        pool = open_pool(db, max_size=1, name="offsite-db")
        try:
            with pool.connection() as conn:
                applied = migrate(conn)
                if args.db_command == "migrate":
                    for m in applied:
                        _print(f"applied {m.version:04d}_{m.name}")
                    ts = ("active" if timescale_active(conn)
                          else "not available (plain PostgreSQL)")
                    _print(f"schema at version {current_version(conn)}; TimescaleDB {ts}")
                elif args.db_command == "status":
                    _print_status(db_status(conn))
                elif args.db_command == "load-registry":
                    reg = load_registry_file(Path(args.file))
                    save_registry(conn, reg)
                    _print(f"registry loaded: {len(reg.enterprises)} enterprises, "
                           f"{len(reg.points)} points, {len(reg.devices)} devices")
        finally:
            pool.close()
    return 0


def _print_status(st: object) -> None:
    from store.status import DbStatus

    assert isinstance(st, DbStatus)
    _print(f"PostgreSQL {st.server_version}; schema version {st.schema_version} of "
           f"{st.latest_migration}")
    _print(f"TimescaleDB: {'active' if st.timescaledb else 'not available'}; readings "
           f"{'a hypertable' if st.hypertable else 'a plain table'}")
    _print(f"readings from {st.oldest_reading or '-'} to {st.newest_reading or '-'}")
    for name, (rows, size) in st.tables.items():
        count = f"~{rows:,}" if rows >= 0 else "? (not analysed yet)"
        _print(f"  {name:<16} {count:>20} rows  {size / 2**20:>10.1f} MiB")


# -- ingest ------------------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.service import IngestService
    from offsite.embedded import services
    from offsite.registry import load_registry_file
    from store.migrate import migrate
    from store.pool import open_pool
    from store.registry import save_registry

    gateway_only = args.command == "gateway"
    with_gateway = gateway_only or args.gateway
    stop = _Stop()
    stop.install()
    mqtt_url = "mqtt://unused:1" if gateway_only else settings.mqtt_url
    with services(settings.database_url, mqtt_url, settings.data_dir) as (db, mq, notes):
        for n in notes:
            _print(f"started {n}")
        if settings.registry_file is not None:
            pool = open_pool(db, max_size=1)
            with pool.connection() as conn:
                migrate(conn)
                save_registry(conn, load_registry_file(settings.registry_file))
            pool.close()
        svc = IngestService(settings, db, None if gateway_only else mq, gateway=with_gateway)
        svc.start()
        if not gateway_only:
            _print(f"ingest consuming {settings.mqtt_topic} from {mq}")
        if svc.gateway is not None:
            _print(f"HJ 212 gateway listening on {settings.gateway_host}:{svc.gateway.port}")
        _print("Ctrl-C to stop")
        t0 = time.monotonic()
        try:
            while not stop.event.wait(args.progress):
                if not svc.alive:
                    break
                s = svc.stats
                g = svc.gateway.stats if svc.gateway else None
                conns = f"  connections {g.open_connections}" if g else ""
                _print(f"[{time.monotonic() - t0:6.0f}s] messages {s.messages}  stored "
                       f"{s.readings_stored}  dead letters {s.dead_letters}  alerts opened "
                       f"{s.alerts_opened}{conns}")
        finally:
            svc.stop()
        s = svc.stats
        _print(f"ingest stopped: {s.messages} messages, {s.readings_stored} readings stored, "
               f"{s.duplicates} duplicates ignored, {s.dead_letters} dead letters, "
               f"{s.alerts_opened} alerts opened")
        return 1 if svc.error is not None else 0


# -- serve -------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app
    from offsite.embedded import services

    with services(settings.database_url, "mqtt://unused:1", settings.data_dir) as (db, _, notes):
        for n in notes:
            _print(f"started {n}")
        from store.migrate import migrate
        from store.pool import open_pool

        pool = open_pool(db, max_size=1)
        with pool.connection() as conn:
            migrate(conn)
        pool.close()
        _print(f"API on http://{settings.http_host}:{settings.http_port} "
               f"(OpenAPI at /docs); Ctrl-C to stop")
        uvicorn.run(create_app(settings, db), host=settings.http_host, port=settings.http_port,
                    log_level=settings.log_level.lower(), timeout_graceful_shutdown=5)
    return 0


# -- simulate ----------------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import timedelta, timezone

    from simulators.faults import FaultKind
    from simulators.scenarios import build_fleet

    tcp = args.transport == "tcp"
    if tcp and args.protocol != "hj212":
        raise OffsiteError("--transport tcp speaks HJ 212 only: add --protocol hj212")
    if not tcp and settings.mqtt_url is None:
        raise OffsiteError("offsite simulate needs a broker: set OFFSITE_MQTT_URL "
                           "(or use --transport tcp --protocol hj212 for the gateway)")
    # HJ 212 times carry no zone: send them in the one the platform reads them in.
    hj212_tz = timezone(timedelta(hours=settings.hj212_utc_offset_h))
    start = datetime.now(UTC)
    fleet = build_fleet(args.devices, seed=args.seed, start=start, rate_s=args.rate,
                        faults=[FaultKind(f) for f in args.fault] if args.fault else (),
                        fault_after_s=args.fault_after, fault_duration_s=args.fault_duration)
    if args.registry_out:
        _write_registry(fleet.registry, Path(args.registry_out))
        _print(f"registry written to {args.registry_out}")
    if settings.database_url and not args.no_register:
        _register(settings.database_url, fleet.registry)
        _print(f"registered {len(fleet.registry.devices)} devices in the database")
    for f in fleet.faults:
        _print(f"fault {f.kind.value:<10} {f.mn} {f.pollutant or '-':<7} "
               f"{f.start.isoformat(timespec='seconds')} → {f.end.isoformat(timespec='seconds')}")
    stop = _Stop()
    stop.install()
    if tcp:
        from simulators.tcp_logger import TcpStats, run_tcp_loggers

        def tcp_progress(t: TcpStats) -> None:
            _print(f"sent {t.packets} packets ({t.readings} readings), {t.responses} answered, "
                   f"{t.resent} resent, {t.missing} missing")

        _print(f"HJ 212 loggers → {settings.gateway_host}:{settings.gateway_port}")
        t = run_tcp_loggers(fleet, settings.gateway_host, settings.gateway_port,
                            duration_s=args.duration, start=start, realtime=not args.fast,
                            stop=stop.event, on_progress=tcp_progress,
                            connections=args.connections,
                            response_timeout_s=args.response_timeout, tz=hj212_tz)
        _print(f"simulation done over {t.connections} connection(s): {t.packets} packets, "
               f"{t.readings} readings in {t.elapsed_s:.1f} s "
               f"({t.readings / max(t.elapsed_s, 1e-9):.0f} readings/s); responses received "
               f"{t.responses}, missing {t.missing}; {t.resent} resent, {t.unmatched} "
               f"unmatched responses, {t.reconnects} reconnects")
        return 0 if t.missing == 0 else 1

    from simulators.publisher import PublishStats, publish_fleet

    def progress(st: PublishStats) -> None:
        _print(f"published {st.messages} messages, {st.readings} readings")

    assert settings.mqtt_url is not None
    st = publish_fleet(fleet, settings.mqtt_url, duration_s=args.duration, start=start,
                       realtime=not args.fast, stop=stop.event, on_progress=progress,
                       protocol=args.protocol, hj212_tz=hj212_tz)
    _print(f"simulation done ({args.protocol} over MQTT): {st.messages} messages, "
           f"{st.readings} readings in {st.elapsed_s:.1f} s "
           f"({st.readings / max(st.elapsed_s, 1e-9):.0f} readings/s)")
    return 0


def _write_registry(reg: object, path: Path) -> None:
    import json

    path.write_text(json.dumps(reg.to_dict(), indent=2, ensure_ascii=False))  # type: ignore[attr-defined]


def _register(database_url: str, reg: object) -> None:
    from store.migrate import migrate
    from store.pool import open_pool
    from store.registry import save_registry

    pool = open_pool(database_url, max_size=1)
    try:
        with pool.connection() as conn:
            migrate(conn)
            save_registry(conn, reg)  # type: ignore[arg-type]
    finally:
        pool.close()


# -- soak ----------------------------------------------------------------------------------
def cmd_soak(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.soak import run_soak

    stop = _Stop()
    stop.install()
    r = run_soak(settings.database_url, duration_s=args.duration, devices=args.devices,
                 rate=args.rate, seed=args.seed, stop=stop.event, out=_print,
                 faults=tuple(args.faults.split(",")), keep_db=args.keep_db)
    _print(f"soak: faults {', '.join(r.faults) or 'none'}")
    _print(f"soak: published {r.published_messages} messages = {r.published_readings} "
           f"readings; stored {r.stored} ({r.distinct} distinct); duplicates {r.duplicates}; "
           f"dead letters {r.dead_letters}; backlog stored {r.catch_up_s:.1f} s after the "
           f"stream ended")
    _print("soak: BALANCED" if r.balanced else "soak: MISMATCH")
    return 0 if r.balanced else 1


# -- demo --------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.demo import run_demo

    stop = _Stop()
    stop.install()
    with _demo_dir(settings, args.keep_data) as data_dir:
        return run_demo(settings, data_dir, devices=args.devices, duration_s=args.duration,
                        rate_s=args.rate, seed=args.seed, stop=stop.event,
                        progress_s=args.progress, out=_print, fault_after_s=args.fault_after,
                        protocol=args.protocol)


@contextlib.contextmanager
def _demo_dir(settings: Settings, keep: bool) -> Iterator[Path]:
    if keep:
        yield settings.data_dir / "demo"
        return
    with tempfile.TemporaryDirectory(prefix="offsite-demo-") as d:
        yield Path(d)


# -- parser ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="offsite", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="simulators → MQTT → ingest → rules → API, all in one")
    d.add_argument("--devices", type=int, default=20)
    d.add_argument("--duration", type=float, default=None, help="seconds; default until Ctrl-C")
    d.add_argument("--rate", type=float, default=1.0, help="seconds between readings")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--progress", type=float, default=5.0, help="seconds between progress lines")
    d.add_argument("--fault-after", type=float, default=15.0,
                   help="seconds before the injected faults begin")
    d.add_argument("--protocol", choices=["json", "hj212"], default="json",
                   help="payload the simulated devices publish over MQTT")
    d.add_argument("--keep-data", action="store_true",
                   help="keep the embedded database in OFFSITE_DATA_DIR/demo")

    i = sub.add_parser("ingest", help="MQTT → store → rules")
    i.add_argument("--progress", type=float, default=10.0)
    i.add_argument("--gateway", action="store_true",
                   help="also run the HJ 212 TCP gateway (OFFSITE_GATEWAY_HOST/PORT)")
    g = sub.add_parser("gateway", help="HJ 212 over TCP → store → rules (no MQTT)")
    g.add_argument("--progress", type=float, default=10.0)

    sub.add_parser("serve", help="the HTTP API and console")

    s = sub.add_parser("simulate", help="simulated devices → OFFSITE_MQTT_URL (JSON or HJ 212) "
                                        "or the HJ 212 TCP gateway")
    s.add_argument("--devices", type=int, default=20)
    s.add_argument("--rate", type=float, default=1.0, help="seconds between readings")
    s.add_argument("--duration", type=float, default=None, help="seconds; default until Ctrl-C")
    s.add_argument("--fault", action="append", default=[],
                   choices=["flatline", "spike", "drift", "offline", "exceedance"])
    s.add_argument("--fault-after", type=float, default=15.0)
    s.add_argument("--fault-duration", type=float, default=60.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--fast", action="store_true",
                   help="replay device time as fast as the broker (or gateway) takes it")
    s.add_argument("--protocol", choices=["json", "hj212"], default="json",
                   help="payload format (default json)")
    s.add_argument("--transport", choices=["mqtt", "tcp"], default="mqtt",
                   help="mqtt: OFFSITE_MQTT_URL; tcp: the HJ 212 gateway at "
                        "OFFSITE_GATEWAY_HOST/PORT (needs --protocol hj212)")
    s.add_argument("--connections", type=int, default=None,
                   help="tcp: sockets shared by the devices (default one per device)")
    s.add_argument("--response-timeout", type=float, default=10.0,
                   help="tcp: seconds before an unanswered packet is resent once")
    s.add_argument("--registry-out", help="write the fleet's registry (.json)")
    s.add_argument("--no-register", action="store_true",
                   help="do not write the fleet into OFFSITE_DATABASE_URL's registry")

    k = sub.add_parser("soak", help="stream with random faults (kill -9, database cut, broker "
                                    "restart); fails unless published = stored, once each")
    k.add_argument("--duration", type=float, default=120.0)
    k.add_argument("--devices", type=int, default=8)
    k.add_argument("--rate", type=float, default=100.0, help="messages per second")
    k.add_argument("--seed", type=int, default=1)
    k.add_argument("--faults", default="kill9,db_cut,broker_restart",
                   help="comma-separated fault kinds to draw from")
    k.add_argument("--keep-db", action="store_true", help="keep the scratch database")

    db = sub.add_parser("db", help="database tasks")
    dbs = db.add_subparsers(dest="db_command", required=True)
    dbs.add_parser("migrate", help="apply pending schema migrations")
    dbs.add_parser("status", help="schema version, backend features, table sizes, data span")
    lr = dbs.add_parser("load-registry", help="load enterprises/points/devices from .toml/.json")
    lr.add_argument("file")

    from bench.cli import add_bench_parser

    add_bench_parser(sub)
    return p


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from bench.cli import cmd_bench as run

    return run(args, settings)


COMMANDS = {"demo": cmd_demo, "ingest": cmd_ingest, "gateway": cmd_ingest, "serve": cmd_serve,
            "simulate": cmd_simulate, "db": cmd_db, "soak": cmd_soak,
            "bench": cmd_bench}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        setup_logging(settings.log_level if args.command != "demo" else "WARNING")
        return COMMANDS[args.command](args, settings)
    except OffsiteError as exc:
        print(f"offsite: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # the other packages' roots: clear message, no traceback for expected failures
        from api.errors import ApiError
        from ingest.errors import IngestError
        from rules.errors import RuleError
        from simulators.errors import SimulatorError
        from store.errors import StoreError

        if isinstance(exc, IngestError | StoreError | RuleError | ApiError | SimulatorError):
            cause = f" (caused by: {exc.__cause__})" if exc.__cause__ else ""
            print(f"offsite: error: {exc}{cause}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

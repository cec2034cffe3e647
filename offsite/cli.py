"""The ``offsite`` command: demo | ingest | gateway | serve | simulate | db | users | devices
| audit.

Every subcommand builds the one Settings object from ``OFFSITE_*`` (validated before
anything starts), prints what it started and where, and stops cleanly on Ctrl-C or
SIGTERM with a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

from offsite.core.errors import OffsiteError, SettingsError
from offsite.core.logs import setup_logging
from offsite.core.secrecy import redact
from offsite.core.settings import Settings, load_settings

if TYPE_CHECKING:
    import psycopg


class _Stop:
    """A stop flag set by SIGINT/SIGTERM; a second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def wait(self, timeout: float) -> bool:
        """Like ``Event.wait``, in short slices: a signal the kernel hands to another
        thread is only run by the main thread between two of its waits."""
        deadline = time.monotonic() + timeout
        while not self.event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.event.wait(min(left, 0.5))
        return True

    def install(self) -> None:
        # `kill -USR1 <pid>` prints every thread's stack: what a stuck stop is doing
        with contextlib.suppress(AttributeError, ValueError, OSError):
            faulthandler.register(signal.SIGUSR1, all_threads=True)

        def handler(signum: int, frame: FrameType | None) -> None:
            if self.event.is_set():
                raise KeyboardInterrupt
            # set first, and never print() here: a signal landing while the main thread
            # is inside print() makes a second print() raise "reentrant call", which
            # unwinds the command without stopping its threads (a hang, not a stop)
            self.event.set()
            _notice("\nstopping… (Ctrl-C again to abort)\n")

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def _print(*parts: object, err: bool = False) -> None:
    print(*parts, file=sys.stderr if err else sys.stdout, flush=True)


def _notice(text: str) -> None:
    """Write to standard output from a signal handler: straight to the file descriptor,
    past the buffered stream the interrupted code may be in the middle of."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # no descriptor (a test's captured stdout): the stop matters, not the line
    with contextlib.suppress(OSError):
        os.write(fd, text.encode("utf-8", "replace"))


# -- db ----------------------------------------------------------------------------------
def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.core.registry import load_registry_file
    from offsite.embedded import services
    from offsite.store.migrate import current_version, migrate, timescale_active
    from offsite.store.pool import open_pool
    from offsite.store.registry import save_registry
    from offsite.store.status import db_status

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
                    ts = "active" if timescale_active(conn) else "not available (plain PostgreSQL)"
                    _print(f"schema at version {current_version(conn)}; TimescaleDB {ts}")
                elif args.db_command == "status":
                    st = db_status(conn)
                    _print_status(st)
                    r = settings.retention
                    _print(
                        f"retention: {f'{r.days} days of raw readings' if r else 'none'}; "
                        f"{settings.partition_months_ahead} months made ahead"
                        if st.partitioned
                        else f"retention: {f'{r.days} days of raw readings' if r else 'none'}"
                        f" (setting); policy in the database: "
                        f"{_duration(st.retention_policy) if st.retention_policy else 'none'}"
                        " (offsite db maintain sets it)"
                    )
                elif args.db_command == "maintain":
                    _maintain(conn, settings)
                elif args.db_command == "rebuild-rollups":
                    from offsite.store.rollups import rebuild_rollups

                    h, d = rebuild_rollups(conn)  # commits (TimescaleDB: refreshes)
                    _print(f"rollups rebuilt: {h:,} hourly rows, {d:,} daily rows")
                elif args.db_command == "load-registry":
                    reg = load_registry_file(Path(args.file))
                    save_registry(conn, reg, actor="cli")
                    _print(
                        f"registry loaded: {len(reg.enterprises)} enterprises, "
                        f"{len(reg.points)} points, {len(reg.devices)} devices"
                    )
        finally:
            pool.close()
    return 0


def _maintain(conn: psycopg.Connection, settings: Settings) -> None:
    from offsite.store.partitions import maintain

    r = maintain(
        conn,
        datetime.now(UTC),
        months_ahead=settings.partition_months_ahead,
        retention=settings.retention,
    )
    if r.skipped:
        _print("another maintainer is running; nothing done")
        return
    _print(f"backend: {r.backend}")
    if r.backend == "partitioned":
        _print(
            f"created {', '.join(r.created) or 'none'}; dropped "
            f"{', '.join(r.dropped) or 'none'}; {r.moved_rows} rows moved out of the "
            f"DEFAULT partition; {r.purged_rows} rows past retention purged from it"
        )
    elif r.backend == "timescaledb":
        keep = f"chunks older than {r.retention.days} days dropped" if r.retention else "none"
        _print(f"retention policy {r.retention_policy}: {keep}")


def _duration(d: timedelta) -> str:
    """'1 day', '12 h', '15 min' — a policy's interval as people write it."""
    secs = int(d.total_seconds())
    for unit, n in (("day", 86400), ("h", 3600), ("min", 60)):
        if secs and secs % n == 0:
            k = secs // n
            return f"{k} {unit}{'s' if unit == 'day' and k != 1 else ''}"
    return str(d)


def _print_status(st: object) -> None:
    from offsite.store.status import DbStatus

    assert isinstance(st, DbStatus)
    _print(
        f"PostgreSQL {st.server_version}; schema version {st.schema_version} of "
        f"{st.latest_migration}"
    )
    _print(
        f"TimescaleDB: {'active' if st.timescaledb else 'not available'}; readings "
        f"{'a hypertable' if st.hypertable else 'a plain table'}"
    )
    _print(f"readings from {st.oldest_reading or '-'} to {st.newest_reading or '-'}")
    if st.partitioned:
        first = st.partitions[0].start.date() if st.partitions else "-"
        last = st.partitions[-1].end.date() if st.partitions else "-"
        _print(
            f"partitions: {len(st.partitions)} monthly, {first} → {last}; "
            f"{st.default_rows} rows in DEFAULT"
        )
    if st.hypertable:
        every = _duration(st.chunk_interval) if st.chunk_interval else "?"
        _print(f"chunks: {st.chunks} of {every}, {st.compressed_chunks} compressed")
    _print(f"rollups (hourly, daily): {st.rollups}")
    for view, until in st.materialized_until.items():
        _print(f"  {view} materialised up to {until or '- (nothing yet)'}, later: real-time")
    for j in st.jobs:
        last = f"{j.last_status} at {j.last_run:%Y-%m-%d %H:%M}" if j.last_run else "never run"
        state = "" if j.scheduled else " (paused)"
        failed = f", {j.failures} failed runs" if j.failures else ""
        nxt = f"{j.next_start:%Y-%m-%d %H:%M}" if j.next_start else "-"
        _print(
            f"  job {j.id} {j.kind} every {_duration(j.schedule)}{state}: {last}{failed}; "
            f"next {nxt}"
        )
    if st.compression is not None:
        before, after = st.compression
        _print(
            f"compression: {before / 2**20:.1f} MiB → {after / 2**20:.1f} MiB "
            f"({before / max(after, 1):.1f}×)"
        )
    for name, (rows, size) in st.tables.items():
        count = f"~{rows:,}" if rows >= 0 else "? (not analysed yet)"
        _print(f"  {name:<16} {count:>20} rows  {size / 2**20:>10.1f} MiB")


# -- ingest ------------------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.core.registry import load_registry_file
    from offsite.embedded import services
    from offsite.ingest.service import IngestService
    from offsite.store.migrate import migrate
    from offsite.store.pool import open_pool
    from offsite.store.registry import save_registry

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
            _print(f"ingest consuming {settings.mqtt_topic} from {redact(mq)}")
        if svc.gateway is not None:
            _print(f"HJ 212 gateway listening on {settings.gateway_host}:{svc.gateway.port}")
        _print("Ctrl-C to stop")
        t0 = time.monotonic()
        try:
            while not stop.wait(args.progress):
                if not svc.alive:
                    break
                s = svc.stats
                g = svc.gateway.stats if svc.gateway else None
                conns = f"  connections {g.open_connections}" if g else ""
                r = svc.rules_figures()
                restarts = f"  rule runner restarts {r.restarts}" if r.restarts else ""
                _print(
                    f"[{time.monotonic() - t0:6.0f}s] messages {s.messages}  stored "
                    f"{s.readings_stored}  dead letters {s.dead_letters}  alerts opened "
                    f"{r.opened}{conns}{restarts}"
                )
        finally:
            svc.stop()
        s = svc.stats
        _print(
            f"ingest stopped: {s.messages} messages, {s.readings_stored} readings stored, "
            f"{s.duplicates} duplicates ignored, {s.dead_letters} dead letters, "
            f"{svc.rules_figures().opened} alerts opened"
        )
        return 1 if svc.error is not None else 0


# -- rules -------------------------------------------------------------------------------
def cmd_rules(args: argparse.Namespace, settings: Settings) -> int:
    """The rule runner on its own, for workers run with OFFSITE_RULES_RUNNER=external."""
    from offsite.embedded import services
    from offsite.ingest.service import runner_config
    from offsite.runner.rule_process import figures_in, new_counts, release_freed_memory, run_rules

    stop = _Stop()
    stop.install()
    with services(settings.database_url, "mqtt://unused:1", settings.data_dir) as (db, _, notes):
        for n in notes:
            _print(f"started {n}")
        _migrate(db)
        _print("rule runner: judging what ingest workers queue (Ctrl-C to stop)")
        release_freed_memory()
        counts = new_counts()
        runner = threading.Thread(
            target=run_rules,
            name="offsite-rules",
            args=(db, runner_config(settings), stop.event, counts),
            daemon=True,  # a second Ctrl-C aborts at once, as it says
        )
        runner.start()
        t0 = time.monotonic()
        try:
            while not stop.wait(args.progress) and runner.is_alive():
                f = figures_in(counts)
                _print(
                    f"[{time.monotonic() - t0:6.0f}s] "
                    f"{'leading' if f.leading else 'standing by'}"
                    f"  judged {f.judged}  alerts opened {f.opened}  cleared {f.cleared}"
                )
        finally:  # whatever ends the loop, the runner thread must not outlive it
            stop.event.set()
            runner.join()
        f = figures_in(counts)
        _print(
            f"rule runner stopped: {f.judged} readings judged, {f.opened} alerts opened, "
            f"{f.cleared} cleared"
        )
        return 0


def _migrate(db: str) -> None:
    from offsite.store.migrate import migrate
    from offsite.store.pool import open_pool

    pool = open_pool(db, max_size=1)
    with pool.connection() as conn:
        migrate(conn)
    pool.close()


# -- serve -------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from offsite.api.app import DrainingServer, create_app
    from offsite.embedded import services

    with services(settings.database_url, "mqtt://unused:1", settings.data_dir) as (db, _, notes):
        for n in notes:
            _print(f"started {n}")
        _migrate(db)
        _print(
            f"API on http://{settings.http_host}:{settings.http_port} "
            f"(OpenAPI at /docs); Ctrl-C to stop"
        )
        app = create_app(settings, db)
        config = uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=5,
            log_config=None,
            # X-Forwarded-For only from proxies named in the settings: uvicorn's default
            # believes any local one, so a client on the host could pick its address
            # (and dodge the per-address login limit)
            proxy_headers=bool(settings.forwarded_allow_ips),
            forwarded_allow_ips=settings.forwarded_allow_ips or None,
        )  # uvicorn's lines go through ours (JSON off a terminal)
        # alert streams are ended (clients resume) before uvicorn waits for responses;
        # uvicorn re-raises the Ctrl-C it handled once it has shut down (uvicorn.run()
        # swallows it, Server.run() does not): a clean stop, not an abort
        with contextlib.suppress(KeyboardInterrupt):
            DrainingServer(config, app).run()
    return 0


# -- simulate ----------------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.simulators.faults import FaultKind
    from offsite.simulators.scenarios import build_fleet

    if args.replay:
        return _replay(args, settings)
    gateway_host, gateway_port = settings.gateway_host, settings.gateway_port
    if args.gateway:
        gateway_host, gateway_port = _host_port(args.gateway, "--gateway")
    tcp = args.transport == "tcp" or args.gateway is not None
    if args.transport == "mqtt" and args.gateway is not None:
        raise OffsiteError("--gateway sends over TCP: drop --transport mqtt")
    protocol = args.protocol or ("hj212" if tcp else "json")
    if tcp and protocol != "hj212":
        raise OffsiteError("the HJ 212 gateway (TCP) speaks HJ 212 only: drop --protocol json")
    if not tcp and settings.mqtt_url is None:
        raise OffsiteError(
            "offsite simulate needs a broker: set OFFSITE_MQTT_URL "
            "(or use --transport tcp --protocol hj212 for the gateway)"
        )
    # HJ 212 times carry no zone: send them in the one the platform reads them in.
    hj212_tz = settings.hj212_tz
    start = datetime.now(UTC)
    fleet = build_fleet(
        args.devices,
        seed=args.seed,
        start=start,
        rate_s=args.rate,
        faults=[FaultKind(f) for f in args.fault] if args.fault else (),
        fault_after_s=args.fault_after,
        fault_duration_s=args.fault_duration,
        model=args.model,
    )
    if args.registry_out:
        _write_registry(fleet.registry, Path(args.registry_out))
        _print(f"registry written to {args.registry_out}")
    if settings.database_url and not args.no_register:
        _register(settings.database_url, fleet.registry)
        _print(f"registered {len(fleet.registry.devices)} devices in the database")
    for f in fleet.faults:
        _print(
            f"fault {f.kind.value:<10} {f.mn} {f.pollutant or '-':<7} "
            f"{f.start.isoformat(timespec='seconds')} → {f.end.isoformat(timespec='seconds')}"
        )
    stop = _Stop()
    stop.install()
    if tcp:
        from offsite.simulators.tcp_logger import TcpStats, run_tcp_loggers

        def tcp_progress(t: TcpStats) -> None:
            _print(
                f"sent {t.packets} packets ({t.readings} readings), {t.responses} answered, "
                f"{t.resent} resent, {t.missing} missing"
                + (f", {t.malformed} malformed" if t.malformed else "")
            )

        _print(f"HJ 212 loggers → {gateway_host}:{gateway_port}")
        t = run_tcp_loggers(
            fleet,
            gateway_host,
            gateway_port,
            duration_s=args.duration,
            start=start,
            realtime=not args.fast,
            stop=stop.event,
            on_progress=tcp_progress,
            connections=args.connections,
            response_timeout_s=args.response_timeout,
            tz=hj212_tz,
            malformed=args.malformed,
        )
        _print(
            f"simulation done over {t.connections} connection(s): {t.packets} packets, "
            f"{t.readings} readings in {t.elapsed_s:.1f} s "
            f"({t.readings / max(t.elapsed_s, 1e-9):.0f} readings/s); responses received "
            f"{t.responses}, missing {t.missing}; {t.resent} resent, {t.unmatched} "
            f"unmatched responses, {t.reconnects} reconnects" + _malformed_note(t.malformed)
        )
        return 0 if t.missing == 0 else 1

    from offsite.simulators.publisher import PublishStats, publish_fleet

    def progress(st: PublishStats) -> None:
        _print(f"published {st.messages} messages, {st.readings} readings")

    assert settings.mqtt_url is not None
    st = publish_fleet(
        fleet,
        settings.mqtt_url,
        duration_s=args.duration,
        start=start,
        realtime=not args.fast,
        stop=stop.event,
        on_progress=progress,
        protocol=protocol,
        hj212_tz=hj212_tz,
        topic_template=_topic_template(settings),
        malformed=args.malformed,
    )
    _print(
        f"simulation done ({protocol} over MQTT): {st.messages} messages, "
        f"{st.readings} readings in {st.elapsed_s:.1f} s "
        f"({st.readings / max(st.elapsed_s, 1e-9):.0f} readings/s)" + _malformed_note(st.malformed)
    )
    return 0


def _malformed_note(n: int) -> str:
    return f"; {n} malformed copies sent (ingest dead-letters each)" if n else ""


def _host_port(value: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) → (host, port), or a message naming the option."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise OffsiteError(f"{option} must be HOST:PORT, e.g. 127.0.0.1:9212, not {value!r}")
    return host, int(port)


def _topic_template(settings: Settings) -> str:
    """Where a device publishes: OFFSITE_MQTT_TOPIC with the device MN for its ``+``, so a
    simulator and an ingest worker given the same settings meet on the same topics."""
    from offsite.ingest.validate import policy_topic

    prefix, suffix = policy_topic(settings.mqtt_topic)
    return f"{prefix}/{{mn}}/{suffix}"


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    """``offsite simulate --replay FILE.csv``: a recorded series through MQTT as one device."""
    from datetime import timedelta, timezone

    from offsite.simulators.publisher import PublishStats, publish_records, replay_encoder
    from offsite.simulators.replay import parse_csv, parse_map

    if settings.mqtt_url is None:
        raise OffsiteError("offsite simulate --replay needs a broker: set OFFSITE_MQTT_URL")
    if not args.mn:
        raise OffsiteError("--replay needs --mn: the device the recording is published as")
    tz = None
    if args.tz is not None:
        try:
            tz = timezone(timedelta(hours=float(args.tz)))
        except (ValueError, OverflowError) as exc:
            raise OffsiteError(
                f"--tz must be a UTC offset in hours (8, -5.5), not {args.tz!r}"
            ) from exc
    try:
        with open(args.replay, encoding="utf-8-sig", newline="") as fh:
            records = parse_csv(fh, parse_map(args.map), tz)
    except OSError as exc:
        raise OffsiteError(f"cannot read {args.replay}: {exc}") from exc
    protocol = args.protocol or "json"
    encode = replay_encoder(
        protocol,
        password=args.password,
        st=args.st,
        hj212_tz=settings.hj212_tz,
    )
    _print(
        f"replaying {len(records)} records of {args.replay} as {args.mn} "
        f"({records[0].ts.isoformat()} → {records[-1].ts.isoformat()}, "
        f"speed {args.speed:g}{' = as fast as possible' if args.speed == 0 else '×'})"
    )
    stop = _Stop()
    stop.install()

    def progress(st: PublishStats) -> None:
        _print(f"published {st.messages} of {len(records)} records, {st.readings} readings")

    st = publish_records(
        records,
        settings.mqtt_url,
        args.mn,
        speed=args.speed,
        encode=encode,
        stop=stop.event,
        on_progress=progress,
        topic_template=_topic_template(settings),
    )
    _print(
        f"replay done ({protocol} over MQTT): {st.messages} messages, "
        f"{st.readings} readings in {st.elapsed_s:.1f} s"
    )
    return 0


def _write_registry(reg: object, path: Path) -> None:
    import json

    path.write_text(json.dumps(reg.to_dict(), indent=2, ensure_ascii=False))  # type: ignore[attr-defined]


def _register(database_url: str, reg: object) -> None:
    from offsite.store.migrate import migrate
    from offsite.store.pool import open_pool
    from offsite.store.registry import save_registry

    pool = open_pool(database_url, max_size=1)
    try:
        with pool.connection() as conn:
            migrate(conn)
            save_registry(conn, reg)  # type: ignore[arg-type]
    finally:
        pool.close()


# -- security: users, devices' broker credentials, audit ---------------------------------
@contextlib.contextmanager
def _db(settings: Settings) -> Iterator[psycopg.Connection]:
    """A migrated connection to OFFSITE_DATABASE_URL (or the embedded database)."""
    from offsite.embedded import services
    from offsite.store.migrate import migrate
    from offsite.store.pool import open_pool

    with services(settings.database_url, "mqtt://unused:1", settings.data_dir) as (db, _, _n):
        pool = open_pool(db, max_size=1, name="offsite-cli")
        try:
            with pool.connection() as conn:
                migrate(conn)
                yield conn
        finally:
            pool.close()


def _ask_password(user: str) -> str:
    """The new password, typed twice without echo; a mismatch or an empty input (Ctrl-D)
    stops with a message rather than saving a password nobody meant."""
    import getpass

    try:
        first = getpass.getpass(f"password for {user}: ")
        if not first:
            raise OffsiteError(
                "no password given (use --no-password for a user with API keys only)"
            )
        second = getpass.getpass(f"password for {user} (again): ")
    except EOFError as exc:
        raise OffsiteError(
            "no password given: input ended (use --password-stdin to pipe one in, "
            "or --no-password for a user with API keys only)"
        ) from exc
    if first != second:
        raise OffsiteError("the two passwords differ; nothing saved")
    return first


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.store.users import create_user, issue_token

    password = None
    if args.users_command == "add":  # asked before any database work, so Ctrl-D leaves none
        if args.password_stdin:
            line = sys.stdin.readline()
            if not line.strip():
                raise OffsiteError("--password-stdin: no password on standard input")
            password = line.rstrip("\r\n")
        elif not args.no_password:
            password = _ask_password(args.user)
    with _db(settings) as conn:
        if args.users_command == "add":
            create_user(
                conn,
                args.user,
                args.role,
                password,
                enterprise_id=args.enterprise,
                region=args.region,
                department=args.department,
                actor="cli",
            )
            _print(f"user {args.user} ({args.role}) saved")
        else:
            from datetime import timedelta

            ttl = timedelta(days=args.days or settings.api_key_ttl_days)
            _print(issue_token(conn, args.user, ttl=ttl, actor="cli"))
    return 0


def cmd_devices(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.broker_auth import render
    from offsite.core.credentials import mosquitto_hash, new_device_password
    from offsite.ingest.subscriber import parse_mqtt_url
    from offsite.ingest.validate import policy_topic
    from offsite.store.registry import device_mqtt_hashes, set_device_mqtt_hash

    with _db(settings) as conn:
        if args.devices_command == "set-mqtt-password":
            password = new_device_password()
            if not set_device_mqtt_hash(conn, args.mn, mosquitto_hash(password), actor="cli"):
                _print(f"offsite: no active device {args.mn}")
                return 2
            _print(password)
            return 0
        prefix, suffix = policy_topic(settings.mqtt_topic)
        user: str | None = None
        ingest_pw: str | None = None
        if settings.mqtt_url:
            _, _, user, ingest_pw = parse_mqtt_url(settings.mqtt_url)
        sim = (
            (args.simulator_user, args.simulator_password)
            if args.simulator_user and args.simulator_password
            else None
        )
        auth = render(device_mqtt_hashes(conn), prefix, suffix, user, ingest_pw, simulator=sim)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "passwd").write_text(auth.passwd)
    (out / "passwd").chmod(0o644)  # hashes only; the broker drops root before reading
    (out / "acl").write_text(auth.acl)
    _print(
        f"wrote {out / 'passwd'} and {out / 'acl'}: {auth.devices} devices"
        + (f", ingest user {user}" if user else " (no ingest user: OFFSITE_MQTT_URL has none)")
    )
    return 0


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.store.audit import AuditError, Head, verify

    kept: Head | None = None
    if args.audit_command == "verify" and args.head is not None:
        try:
            kept = Head.from_text(Path(args.head).read_text(encoding="utf-8"))
        except OSError as exc:
            _print(f"audit: cannot read the kept head {args.head}: {exc.strerror}")
            return 2
        except AuditError as exc:
            _print(f"audit: {args.head}: {exc}")
            return 2
    quiet = args.audit_command == "head"  # stdout carries the head alone
    _print("audit: verifying the hash chain …", err=quiet)
    with _db(settings) as conn:
        report = verify(conn, kept)
    if report.broken is not None:
        _print(
            f"audit: BROKEN at row {report.broken.seq}: {report.broken.reason} "
            f"({report.rows} rows verified before it)",
            err=quiet,
        )
        return 1
    head = Head(report.head_seq, report.head_hash)
    if args.audit_command == "head":
        # the head alone on stdout, so `offsite audit head > head.json` keeps it
        print(head.to_json(), flush=True)
        _print(
            f"audit: OK, {report.rows} rows; store this head where the database's owner "
            "cannot edit it, and check against it with `offsite audit verify --head FILE`",
            err=True,
        )
        return 0
    if kept is not None:
        _print(
            f"audit: OK, {report.rows} rows; head {head.seq} {head.hash}; the kept head "
            f"(row {kept.seq}) matches, {head.seq - kept.seq} rows appended since"
        )
        return 0
    _print(
        f"audit: OK, {report.rows} rows; head {report.head_seq} {report.head_hash} "
        "(without a kept head, deleting the newest rows or recomputing the chain is "
        "invisible: keep `offsite audit head` elsewhere and pass it with --head)"
    )
    return 0


# -- alerts export -------------------------------------------------------------------------
def _device_time(text: str | None, what: str) -> datetime | None:
    if text is None:
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError as exc:
        raise OffsiteError(f"{what}: not an ISO 8601 time: {text!r}") from exc
    if ts.tzinfo is None:
        raise OffsiteError(f"{what}: give a zone, e.g. {text}+08:00 or {text}Z")
    return ts


def cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    """Every alert episode as JSON lines or CSV on stdout; progress and the count on
    stderr. A reader that stops early (``| head``) ends the export quietly."""
    import csv
    import json

    from offsite.store.alert_export import COLUMNS, export_episodes

    since = _device_time(args.since, "--since")
    until = _device_time(args.until, "--until")
    if since and until and until <= since:
        raise OffsiteError("--until must be after --since")
    out = sys.stdout
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n") if args.format == "csv" else None
    episodes = alerts = 0
    last_alert = None
    try:
        if writer is not None:
            writer.writeheader()
        with _db(settings) as conn:
            for ep in export_episodes(conn, since, until):
                row = ep.as_dict()
                if writer is not None:
                    writer.writerow({k: "" if v is None else v for k, v in row.items()})
                else:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                episodes += 1
                if ep.alert_id != last_alert:
                    alerts, last_alert = alerts + 1, ep.alert_id
                if episodes % 10000 == 0:
                    print(f"… {episodes} episodes", file=sys.stderr, flush=True)
        out.flush()
    except BrokenPipeError:
        # the reader went away: point stdout at nothing so the interpreter's final
        # flush does not complain, and stop without a traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    print(f"exported {episodes} episodes of {alerts} alerts", file=sys.stderr)
    return 0


# -- soak ----------------------------------------------------------------------------------
def cmd_soak(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.soak import run_soak

    stop = _Stop()
    stop.install()
    r = run_soak(
        duration_s=args.duration,
        devices=args.devices,
        rate=args.rate,
        stop=stop.event,
        out=_print,
        scenarios=tuple(s for s in args.scenarios.split(",") if s),
        outage_s=args.outage,
        keep=args.keep,
        spool=not args.no_spool,
    )
    if stop.event.is_set():
        _print("soak: interrupted")
        return 130
    _print("soak: BALANCED" if r.balanced else "soak: MISMATCH")
    return 0 if r.balanced else 1


# -- eval --------------------------------------------------------------------------------
def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.evaluation.command import run_eval
    from offsite.evaluation.runner import EngineConfig

    config = EngineConfig(settings.rules_file, settings.alert_clear_s)
    workers = args.workers if args.workers else min(2, os.cpu_count() or 1)
    if args.generic or args.nab:
        from offsite.evaluation.generic import run_generic

        return run_generic(
            seeds=args.seeds,
            split=args.split,
            nab=args.nab,
            synthetic=args.generic,
            workers=workers,
            as_json=args.json,
            config=config,
            out=_print,
            err=lambda line: print(line, file=sys.stderr, flush=True),
        )
    return run_eval(
        seeds=args.seeds,
        kinds=args.kinds,
        split=args.split,
        profiles=args.profiles or None,
        devices_per_kind=args.devices_per_kind,
        clean_per_profile=args.clean_per_profile,
        days=args.days,
        rate_s=args.rate,
        workers=workers,
        as_json=args.json,
        strict=args.strict,
        config=config,
        out=_print,
        err=lambda line: print(line, file=sys.stderr, flush=True),
    )


# -- demo --------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.embedded import require_embedded

    require_embedded(settings.database_url, settings.mqtt_url)
    from offsite.demo import run_demo

    # the demo speaks in progress lines: its rule-runner process logs warnings only, as
    # this process does (main), not every alert it opens
    settings = settings.model_copy(update={"log_level": "WARNING"})
    stop = _Stop()
    stop.install()
    with _demo_dir(settings, args.keep_data) as data_dir:
        return run_demo(
            settings,
            data_dir,
            devices=args.devices,
            duration_s=args.duration,
            rate_s=args.rate,
            seed=args.seed,
            stop=stop.event,
            progress_s=args.progress,
            out=_print,
            fault_after_s=args.fault_after,
            protocol=args.protocol,
            model=args.model,
        )


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
    d.add_argument("--devices", type=int, default=20, help="simulated devices (default 20)")
    d.add_argument("--duration", type=float, default=None, help="seconds; default until Ctrl-C")
    d.add_argument("--rate", type=float, default=1.0, help="seconds between readings")
    d.add_argument("--seed", type=int, default=0, help="fleet and fault draw (same seed, same run)")
    d.add_argument(
        "--model",
        choices=["plant", "simple"],
        default="plant",
        help="device model: plant (one load drives every channel: daily cycle, wander, "
        "stops, soot blowing, fuel changes) or simple (independent channels)",
    )
    d.add_argument("--progress", type=float, default=5.0, help="seconds between progress lines")
    d.add_argument(
        "--fault-after", type=float, default=15.0, help="seconds before the injected faults begin"
    )
    d.add_argument(
        "--protocol",
        choices=["json", "hj212"],
        default="json",
        help="json: devices publish JSON over MQTT; hj212: HJ 212 data loggers on the TCP "
        "gateway, a share of packets also sent with a broken CRC",
    )
    d.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the embedded database in OFFSITE_DATA_DIR/demo",
    )

    i = sub.add_parser("ingest", help="MQTT → store → rules")
    i.add_argument("--progress", type=float, default=10.0, help="seconds between progress lines")
    i.add_argument(
        "--gateway",
        action="store_true",
        help="also run the HJ 212 TCP gateway (OFFSITE_GATEWAY_HOST/PORT)",
    )
    g = sub.add_parser("gateway", help="HJ 212 over TCP → store → rules (no MQTT)")
    g.add_argument("--progress", type=float, default=10.0, help="seconds between progress lines")

    ru = sub.add_parser(
        "rules",
        help="the rule runner alone (for ingest workers run with OFFSITE_RULES_RUNNER=external)",
    )
    ru.add_argument("--progress", type=float, default=10.0, help="seconds between lines")
    sub.add_parser("serve", help="the HTTP API and console")

    s = sub.add_parser(
        "simulate",
        help="simulated devices → OFFSITE_MQTT_URL (JSON or HJ 212) or the HJ 212 TCP gateway",
    )
    s.add_argument("--devices", type=int, default=20, help="simulated devices (default 20)")
    s.add_argument("--rate", type=float, default=1.0, help="seconds between readings")
    s.add_argument("--duration", type=float, default=None, help="seconds; default until Ctrl-C")
    s.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=_fault_kinds(),
        metavar="KIND",
        help="inject this fault into one device (repeat for more); one of: "
        + ", ".join(_fault_kinds()),
    )
    s.add_argument(
        "--fault-after", type=float, default=15.0, help="seconds before the faults begin"
    )
    s.add_argument("--fault-duration", type=float, default=60.0, help="seconds each fault lasts")
    s.add_argument(
        "--seed", type=int, default=0, help="fleet and fault draw (same seed, same devices)"
    )
    s.add_argument(
        "--model",
        choices=["plant", "simple"],
        default="plant",
        help="device model: plant (one load drives every channel: daily cycle, wander, "
        "stops, soot blowing, fuel changes) or simple (independent channels)",
    )
    s.add_argument(
        "--fast",
        action="store_true",
        help="replay device time as fast as the broker (or gateway) takes it",
    )
    s.add_argument(
        "--protocol",
        choices=["json", "hj212"],
        default=None,
        help="payload format (default json over MQTT, hj212 to the gateway)",
    )
    s.add_argument(
        "--transport",
        choices=["mqtt", "tcp"],
        default=None,
        help="mqtt (default): OFFSITE_MQTT_URL; tcp: the HJ 212 gateway at "
        "OFFSITE_GATEWAY_HOST/PORT (HJ 212 only)",
    )
    s.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        help="send HJ 212 over TCP to the gateway at HOST:PORT, as field loggers do "
        "(implies --transport tcp --protocol hj212)",
    )
    s.add_argument(
        "--malformed",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="also send this share (0-1) of the messages broken, just before the good "
        "copy: HJ 212 with a bad CRC, JSON cut short; ingest dead-letters each",
    )
    s.add_argument(
        "--connections",
        type=int,
        default=None,
        help="tcp: sockets shared by the devices (default one per device)",
    )
    s.add_argument(
        "--response-timeout",
        type=float,
        default=10.0,
        help="tcp: seconds before an unanswered packet is resent once",
    )
    s.add_argument("--registry-out", help="write the fleet's registry (.json)")
    s.add_argument(
        "--no-register",
        action="store_true",
        help="do not write the fleet into OFFSITE_DATABASE_URL's registry",
    )
    s.add_argument(
        "--replay",
        metavar="FILE.csv",
        help="publish a recorded series instead of a simulated fleet (the device "
        "must be registered): a timestamp column, value columns named by "
        "pollutant code or --map, optional <column>_flag columns",
    )
    s.add_argument("--mn", help="replay: the device MN to publish as")
    s.add_argument("--map", help='replay: column → pollutant code, e.g. "SO2=a21026,NOx=a21002"')
    s.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="replay: time compression (60 = an hour per minute; 0 = as fast as "
        "the broker acknowledges)",
    )
    s.add_argument("--tz", help="replay: UTC offset in hours for timestamps without a zone")
    s.add_argument("--password", default="123456", help="replay, hj212: the logger password")
    s.add_argument("--st", default="31", help="replay, hj212: system code (31 air, 32 water)")

    k = sub.add_parser(
        "soak",
        help="the same stream fault-free and through real faults (PostgreSQL crash, broker "
        "SIGKILL with a backlog, kill -9 of the runner, of a worker, of ingest); fails unless "
        "published = stored, once each, and the alerts equal the fault-free run's",
    )
    k.add_argument("--duration", type=float, default=60.0, help="seconds of stream per scenario")
    k.add_argument("--devices", type=int, default=50, help="simulated devices")
    k.add_argument("--rate", type=float, default=200.0, help="messages per second")
    k.add_argument(
        "--scenarios",
        default="clean,control,pg_crash,broker_kill,runner_kill9,worker_kill9,ingest_kill9",
        help="comma-separated; clean always runs first (the reference)",
    )
    k.add_argument("--outage", type=float, default=None, help="seconds each outage lasts")
    k.add_argument("--keep", action="store_true", help="keep the soak's PostgreSQL cluster")
    k.add_argument(
        "--no-spool",
        action="store_true",
        help="ingest without its disk buffer (the broker holds the backlog): for comparison",
    )

    e = sub.add_parser(
        "eval",
        help="score the rules on multi-day plant runs with injected faults "
        "(precision, recall, delay, clean false alerts; tuning and held-out apart)",
    )
    e.add_argument("--seeds", type=int, default=2, help="seeds per split (default 2)")
    e.add_argument(
        "--split",
        choices=["tune", "held-out", "both"],
        default="both",
        help="which fixed split of seeds and plant profiles to run (default both, side by side)",
    )
    e.add_argument(
        "--profiles",
        nargs="+",
        default=[],
        metavar="PROFILE",
        choices=_plant_profiles(),
        help="run these plant profiles instead of the split's own",
    )
    e.add_argument(
        "--days",
        type=float,
        default=3.0,
        help="length of each run (default 3; >= 2 with copy_paste or drift)",
    )
    e.add_argument(
        "--clean-per-profile", type=int, default=2, help="fault-free devices per plant profile"
    )
    e.add_argument(
        "--rate",
        type=float,
        default=60.0,
        help="the devices' reporting interval in seconds (divides a day; default 60)",
    )
    e.add_argument("--workers", type=int, default=0, help="processes (default: up to 2)")
    e.add_argument(
        "--kinds",
        nargs="+",
        default=[],
        metavar="KIND",
        choices=_fault_kinds(),
        help="default: every kind",
    )
    e.add_argument(
        "--devices-per-kind", type=int, default=1, help="faulty devices per fault kind and seed"
    )
    e.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    e.add_argument(
        "--generic",
        action="store_true",
        help="instead of the plant suite: synthetic series of many shapes (flat, seasonal, "
        "noisy, quantised, level shifts...) at 5-min to 1-h intervals on a channel without "
        "a limit; episodes inside labelled windows vs time inside them, and per series-day "
        "on series without an anomaly",
    )
    e.add_argument(
        "--nab",
        type=Path,
        metavar="DIR",
        help="also (or, without --generic, only) replay NAB files: DIR/data/<group>/<file>.csv "
        "and DIR/labels/combined_windows.json",
    )
    e.add_argument(
        "--strict", action="store_true", help="exit 1 if a target of the held-out split is missed"
    )

    db = sub.add_parser("db", help="database tasks")
    dbs = db.add_subparsers(dest="db_command", required=True)
    dbs.add_parser("migrate", help="apply pending schema migrations")
    dbs.add_parser(
        "status",
        help="schema version, backend features, table sizes, data span, "
        "partitions, rollups, retention",
    )
    dbs.add_parser(
        "maintain",
        help="create monthly partitions ahead, empty the DEFAULT "
        "partition, drop months past OFFSITE_RETENTION_DAYS",
    )
    dbs.add_parser(
        "rebuild-rollups",
        help="recompute hourly/daily rollups from raw readings (after a bulk load)",
    )
    lr = dbs.add_parser("load-registry", help="load enterprises/points/devices from .toml/.json")
    lr.add_argument("file", help="registry file (.toml or .json); see examples/registry.toml")

    u = sub.add_parser("users", help="people who use the API, and their API keys")
    us = u.add_subparsers(dest="users_command", required=True)
    ua = us.add_parser("add", help="create or update a user (asks for the password)")
    ua.add_argument("user", help="login name (1-64 letters, digits or _.@-)")
    ua.add_argument(
        "--role",
        required=True,
        choices=["admin", "regulator", "inspector", "enterprise"],
        help="what the user may see and do",
    )
    ua.add_argument("--enterprise", help="the enterprise of an enterprise user")
    ua.add_argument("--region", default="", help="regulator/inspector region ('' = all)")
    ua.add_argument(
        "--department", default="", help="an inspector's department (listed on joint visits)"
    )
    ua.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    ua.add_argument("--no-password", action="store_true", help="API keys only, no login")
    ut = us.add_parser("token", help="issue an API key for a user (printed once)")
    ut.add_argument("user", help="the user the key acts as")
    ut.add_argument(
        "--days",
        type=float,
        default=None,
        help="expire after this many days; default OFFSITE_API_KEY_TTL_DAYS (90)",
    )

    dv = sub.add_parser("devices", help="device credentials for the MQTT broker")
    dvs = dv.add_subparsers(dest="devices_command", required=True)
    ex = dvs.add_parser(
        "export-broker-auth", help="write Mosquitto password and ACL files from the registry"
    )
    ex.add_argument(
        "--out", default="deploy/mosquitto/auth", help="directory for the passwd and acl files"
    )
    ex.add_argument(
        "--simulator-user",
        help="demo only: a user that may publish for every device (the simulator)",
    )
    ex.add_argument(
        "--simulator-password", default="", help="the simulator user's password (both needed)"
    )
    sp = dvs.add_parser(
        "set-mqtt-password", help="issue a device a new MQTT password (printed once)"
    )
    sp.add_argument("mn", help="the device's MN")

    al = sub.add_parser("alerts", help="alert history")
    als = al.add_subparsers(dest="alerts_command", required=True)
    ae = als.add_parser(
        "export",
        help="every alert episode (a reopened alert is a new one) in device time, "
        "as JSON lines or CSV on stdout",
    )
    ae.add_argument("--since", help="episodes still going at or after this device time (ISO 8601)")
    ae.add_argument("--until", help="episodes that started before this device time (ISO 8601)")
    ae.add_argument(
        "--format", choices=["jsonl", "csv"], default="jsonl", help="JSON lines (default) or CSV"
    )

    au = sub.add_parser("audit", help="the tamper-evident audit log")
    aus = au.add_subparsers(dest="audit_command", required=True)
    av = aus.add_parser(
        "verify", help="walk the hash chain; name the first row changed out of band"
    )
    av.add_argument(
        "--head",
        metavar="FILE",
        help="a head kept by `offsite audit head`: also detect deleted newest rows and a "
        "recomputed chain",
    )
    aus.add_parser("head", help="verify, then print the head (sequence and hash) to keep elsewhere")

    from offsite.bench.cli import add_bench_parser

    add_bench_parser(sub)
    return p


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.bench.cli import cmd_bench as run

    return run(args, settings)


COMMANDS = {
    "demo": cmd_demo,
    "ingest": cmd_ingest,
    "gateway": cmd_ingest,
    "rules": cmd_rules,
    "serve": cmd_serve,
    "simulate": cmd_simulate,
    "db": cmd_db,
    "soak": cmd_soak,
    "eval": cmd_eval,
    "users": cmd_users,
    "devices": cmd_devices,
    "audit": cmd_audit,
    "alerts": cmd_alerts,
    "bench": cmd_bench,
}


def _plant_profiles() -> list[str]:
    from offsite.simulators.plant import PLANT_PROFILES

    return list(PLANT_PROFILES)


def _fault_kinds() -> list[str]:
    from offsite.simulators.faults import FaultKind

    return [k.value for k in FaultKind]


def settings_from_env(**overrides: object) -> Settings:
    """The validated settings, and the rules file they name parsed, so that a bad file is
    refused before anything starts, with its line and reason."""
    from offsite.rules.errors import RulesFileError
    from offsite.rules.rules_file import load_rules

    settings = load_settings(**overrides)
    try:
        load_rules(settings.rules_file)
    except RulesFileError as exc:
        raise SettingsError(f"invalid configuration: OFFSITE_RULES_FILE: {exc}") from exc
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_env()
        setup_logging(
            settings.log_level if args.command != "demo" else "WARNING", fmt=settings.log_format
        )
        return COMMANDS[args.command](args, settings)
    except OffsiteError as exc:
        print(f"offsite: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # the other packages' roots: clear message, no traceback for expected failures
        from offsite.api.errors import ApiError
        from offsite.ingest.errors import IngestError
        from offsite.rules.errors import RuleError
        from offsite.simulators.errors import SimulatorError
        from offsite.store.errors import StoreError

        if isinstance(exc, IngestError | StoreError | RuleError | ApiError | SimulatorError):
            cause = f" (caused by: {exc.__cause__})" if exc.__cause__ else ""
            print(f"offsite: error: {exc}{cause}", file=sys.stderr)
            return 2
        import psycopg

        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            # services may run as the limited application role (docker-compose.yml)
            print(
                f"offsite: error: the database role may not do this: {str(exc).strip()} "
                "(schema changes and storage upkeep need the owning role, the one that "
                "runs `offsite db migrate`)",
                file=sys.stderr,
            )
            return 2
        raise
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

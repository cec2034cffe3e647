"""``offsite db | users | devices | alerts | audit``: the database, people, device
credentials, alert history and the audit log."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from offsite.commands.base import say
from offsite.core.errors import OffsiteError
from offsite.core.settings import Settings

if TYPE_CHECKING:
    import psycopg


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
            say(f"started {n}")
        pool = open_pool(db, max_size=1, name="offsite-db")
        try:
            with pool.connection() as conn:
                applied = migrate(conn)
                if args.db_command == "migrate":
                    for m in applied:
                        say(f"applied {m.version:04d}_{m.name}")
                    ts = "active" if timescale_active(conn) else "not available (plain PostgreSQL)"
                    say(f"schema at version {current_version(conn)}; TimescaleDB {ts}")
                elif args.db_command == "status":
                    st = db_status(conn)
                    _print_status(st)
                    r = settings.retention
                    say(
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
                    say(f"rollups rebuilt: {h:,} hourly rows, {d:,} daily rows")
                elif args.db_command == "load-registry":
                    reg = load_registry_file(Path(args.file))
                    save_registry(conn, reg, actor="cli")
                    say(
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
        say("another maintainer is running; nothing done")
        return
    say(f"backend: {r.backend}")
    if r.backend == "partitioned":
        say(
            f"created {', '.join(r.created) or 'none'}; dropped "
            f"{', '.join(r.dropped) or 'none'}; {r.moved_rows} rows moved out of the "
            f"DEFAULT partition; {r.purged_rows} rows past retention purged from it"
        )
    elif r.backend == "timescaledb":
        keep = f"chunks older than {r.retention.days} days dropped" if r.retention else "none"
        say(f"retention policy {r.retention_policy}: {keep}")


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
    say(
        f"PostgreSQL {st.server_version}; schema version {st.schema_version} of "
        f"{st.latest_migration}"
    )
    say(
        f"TimescaleDB: {'active' if st.timescaledb else 'not available'}; readings "
        f"{'a hypertable' if st.hypertable else 'a plain table'}"
    )
    say(f"readings from {st.oldest_reading or '-'} to {st.newest_reading or '-'}")
    if st.partitioned:
        first = st.partitions[0].start.date() if st.partitions else "-"
        last = st.partitions[-1].end.date() if st.partitions else "-"
        say(
            f"partitions: {len(st.partitions)} monthly, {first} → {last}; "
            f"{st.default_rows} rows in DEFAULT"
        )
    if st.hypertable:
        every = _duration(st.chunk_interval) if st.chunk_interval else "?"
        say(f"chunks: {st.chunks} of {every}, {st.compressed_chunks} compressed")
    say(f"rollups (hourly, daily): {st.rollups}")
    for view, until in st.materialized_until.items():
        say(f"  {view} materialised up to {until or '- (nothing yet)'}, later: real-time")
    for j in st.jobs:
        last = f"{j.last_status} at {j.last_run:%Y-%m-%d %H:%M}" if j.last_run else "never run"
        state = "" if j.scheduled else " (paused)"
        failed = f", {j.failures} failed runs" if j.failures else ""
        nxt = f"{j.next_start:%Y-%m-%d %H:%M}" if j.next_start else "-"
        say(
            f"  job {j.id} {j.kind} every {_duration(j.schedule)}{state}: {last}{failed}; "
            f"next {nxt}"
        )
    if st.compression is not None:
        before, after = st.compression
        say(
            f"compression: {before / 2**20:.1f} MiB → {after / 2**20:.1f} MiB "
            f"({before / max(after, 1):.1f}×)"
        )
    for name, (rows, size) in st.tables.items():
        count = f"~{rows:,}" if rows >= 0 else "? (not analysed yet)"
        say(f"  {name:<16} {count:>20} rows  {size / 2**20:>10.1f} MiB")


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
            say(f"user {args.user} ({args.role}) saved")
        else:
            from datetime import timedelta

            ttl = timedelta(days=args.days or settings.api_key_ttl_days)
            say(issue_token(conn, args.user, ttl=ttl, actor="cli"))
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
                say(f"offsite: no active device {args.mn}")
                return 2
            say(password)
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
    say(
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
            say(f"audit: cannot read the kept head {args.head}: {exc.strerror}")
            return 2
        except AuditError as exc:
            say(f"audit: {args.head}: {exc}")
            return 2
    quiet = args.audit_command == "head"  # stdout carries the head alone
    say("audit: verifying the hash chain …", err=quiet)
    with _db(settings) as conn:
        report = verify(conn, kept)
    if report.broken is not None:
        say(
            f"audit: BROKEN at row {report.broken.seq}: {report.broken.reason} "
            f"({report.rows} rows verified before it)",
            err=quiet,
        )
        return 1
    head = Head(report.head_seq, report.head_hash)
    if args.audit_command == "head":
        # the head alone on stdout, so `offsite audit head > head.json` keeps it
        print(head.to_json(), flush=True)
        say(
            f"audit: OK, {report.rows} rows; store this head where the database's owner "
            "cannot edit it, and check against it with `offsite audit verify --head FILE`",
            err=True,
        )
        return 0
    if kept is not None:
        say(
            f"audit: OK, {report.rows} rows; head {head.seq} {head.hash}; the kept head "
            f"(row {kept.seq}) matches, {head.seq - kept.seq} rows appended since"
        )
        return 0
    say(
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


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """db, users, devices, alerts, audit."""
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

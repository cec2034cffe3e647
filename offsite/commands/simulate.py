"""``offsite simulate``: simulated devices (or a replay of recorded series) publishing to
the broker or the HJ 212 gateway."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from offsite.commands.base import Stop, add_model_argument, fault_kinds, say
from offsite.core.errors import OffsiteError
from offsite.core.settings import Settings


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
        say(f"registry written to {args.registry_out}")
    if settings.database_url and not args.no_register:
        _register(settings.database_url, fleet.registry)
        say(f"registered {len(fleet.registry.devices)} devices in the database")
    for f in fleet.faults:
        say(
            f"fault {f.kind.value:<10} {f.mn} {f.pollutant or '-':<7} "
            f"{f.start.isoformat(timespec='seconds')} → {f.end.isoformat(timespec='seconds')}"
        )
    stop = Stop()
    stop.install()
    if tcp:
        from offsite.simulators.tcp_logger import TcpStats, run_tcp_loggers

        def tcp_progress(t: TcpStats) -> None:
            say(
                f"sent {t.packets} packets ({t.readings} readings), {t.responses} answered, "
                f"{t.resent} resent, {t.missing} missing"
                + (f", {t.malformed} malformed" if t.malformed else "")
            )

        say(f"HJ 212 loggers → {gateway_host}:{gateway_port}")
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
        say(
            f"simulation done over {t.connections} connection(s): {t.packets} packets, "
            f"{t.readings} readings in {t.elapsed_s:.1f} s "
            f"({t.readings / max(t.elapsed_s, 1e-9):.0f} readings/s); responses received "
            f"{t.responses}, missing {t.missing}; {t.resent} resent, {t.unmatched} "
            f"unmatched responses, {t.reconnects} reconnects" + _malformed_note(t.malformed)
        )
        return 0 if t.missing == 0 else 1

    from offsite.simulators.publisher import PublishStats, publish_fleet

    def progress(st: PublishStats) -> None:
        say(f"published {st.messages} messages, {st.readings} readings")

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
    say(
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
    from datetime import timezone

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
    say(
        f"replaying {len(records)} records of {args.replay} as {args.mn} "
        f"({records[0].ts.isoformat()} → {records[-1].ts.isoformat()}, "
        f"speed {args.speed:g}{' = as fast as possible' if args.speed == 0 else '×'})"
    )
    stop = Stop()
    stop.install()

    def progress(st: PublishStats) -> None:
        say(f"published {st.messages} of {len(records)} records, {st.readings} readings")

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
    say(
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


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """simulate."""
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
        choices=fault_kinds(),
        metavar="KIND",
        help="inject this fault into one device (repeat for more); one of: "
        + ", ".join(fault_kinds()),
    )
    s.add_argument(
        "--fault-after", type=float, default=15.0, help="seconds before the faults begin"
    )
    s.add_argument("--fault-duration", type=float, default=60.0, help="seconds each fault lasts")
    s.add_argument(
        "--seed", type=int, default=0, help="fleet and fault draw (same seed, same devices)"
    )
    add_model_argument(s)
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

"""``offsite demo``: the whole path in one process, on embedded services by default.

simulated fleet (with faults) → MQTT → ingest → rules → alerts → API and console.
A few deliberately bad messages are published too, so the dead-letter store shows up.
With ``--protocol hj212`` the devices are HJ 212 data loggers on the TCP gateway instead,
a share of their packets also sent with a broken CRC.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import uvicorn

from offsite.api.app import DrainingServer, create_app
from offsite.core.errors import OffsiteError
from offsite.core.secrecy import redact
from offsite.core.settings import Settings
from offsite.embedded import free_port, services
from offsite.ingest.service import IngestService
from offsite.simulators.publisher import PublishStats, publish_fleet, publish_raw
from offsite.simulators.scenarios import build_fleet
from offsite.simulators.tcp_logger import TcpStats, run_tcp_loggers
from offsite.store.alerts import count_active, counts_by_rule
from offsite.store.migrate import migrate
from offsite.store.pool import open_pool
from offsite.store.registry import save_registry

Out = Callable[..., None]
HJ212_MALFORMED = 0.02  # share of HJ 212 packets also sent broken, to be dead-lettered

BAD_MESSAGES: list[tuple[str, bytes]] = [
    ("devices/{mn}/telemetry", b"{not json"),
    (
        "devices/FFFFFFFFFFFFFFFFFFFFFFFF/telemetry",
        b'{"ts": "2026-01-01T00:00:00Z", "values": {"a21026": 1.0}}',
    ),
    ("devices/{mn}/telemetry", b'{"ts": "2026-01-01T00:00:00", "values": {"a21026": 1.0}}'),
]


def _detection(faults: list, alerted: set[tuple[str, str]], t_sim_end: float) -> str:
    """Ground truth against alerts: which injected faults (that had begun) were caught, by
    the rules ``offsite eval`` scores each fault kind with."""
    from offsite.evaluation.scoring import KIND_RULES

    parts = []
    for kind in sorted({f.kind.value for f in faults}):
        begun = [f for f in faults if f.kind.value == kind and f.start.timestamp() < t_sim_end]
        if not begun:
            continue
        rules = KIND_RULES.get(kind, ())
        caught = sum(any((rule, f.mn) in alerted for rule in rules) for f in begun)
        parts.append(f"{kind}: {caught}/{len(begun)} detected")
    return "; ".join(parts) or "none had begun"


def demo_users(conn: psycopg.Connection, enterprise_id: str) -> list[tuple[str, str, str]]:
    """One user per role with a fresh random password: (user, role description, password)."""
    from offsite.core.credentials import new_device_password
    from offsite.store.users import create_user

    made = []
    for user, role, ent, what in (
        ("admin", "admin", None, "admin: registry and users"),
        ("regulator", "regulator", None, "regulator: every region"),
        ("inspector", "inspector", None, "inspector: scan a site's QR code at /scan"),
        ("enterprise", "enterprise", enterprise_id, f"enterprise: only {enterprise_id}"),
    ):
        password = new_device_password()[:16]
        create_user(conn, user, role, password, enterprise_id=ent, actor="demo")
        made.append((user, what, password))
    return made


def bind_http(host: str, port: int, *, explicit: bool) -> tuple[socket.socket, str | None]:
    """The API's listening socket, and a note when it is not on the port asked for.

    The demo's default port (8000) is often taken by something else on a laptop: like the
    embedded services, the demo then takes a free port and says which. A port the user
    set (OFFSITE_HTTP_PORT) is not second-guessed: taken, it is an error.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    note = None
    try:
        sock.bind((host, port))
    except OSError as exc:
        if explicit or port == 0:
            sock.close()
            raise OffsiteError(
                f"the API cannot listen on {host}:{port} ({exc.strerror}); "
                "set OFFSITE_HTTP_PORT to a free port"
            ) from exc
        sock.bind((host, 0))
        note = f"port {port} is in use; the API took port {sock.getsockname()[1]} instead"
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock, note


# The packaged rules wait for a series' first readings (a spike needs 30 to know the
# series) and its first day before some may fire, and do not raise what a series does
# routinely; a demo injects its faults seconds in, and again and again, so it runs them
# without those warm-ups and without the routine. A drift waits 20 minutes of device time
# before it is raised, and a demo's faults last a minute: it waits a few readings instead.
# Its trend is fitted over 15 readings, a quarter of an hour of minute data but 15 s of
# the demo's 1-s readings, where the plant model's measurement noise blurs the line (one
# of the demo's two drifts went unraised at most times of day): the demo fits 30.
# Nothing else differs.
DEMO_WARM_UPS = ("spike", "flatline", "stat")
DEMO_DRIFT_FOR = "5s"
DEMO_DRIFT_PARAMS = "{ history = 30, min_history = 24 }"


def demo_rules(data_dir: Path) -> Path:
    """A rules file of the packaged rules without their warm-ups and routine, and with
    drift's wait cut to a few readings and its trend fitted over 30, for a short demo of
    1-s readings."""
    path = data_dir / "demo-rules.toml"
    lines = ['base = "default"']
    for rule in DEMO_WARM_UPS:
        for device_type in ("flue_gas", "wastewater"):
            lines += ["[[override]]", f'rule = "{rule}"', f'device_type = "{device_type}"']
            lines += ["warm_up = 0", 'warm_up_for = "0s"', "routine = 0"]
    for device_type in ("flue_gas", "wastewater"):
        lines += ["[[override]]", 'rule = "drift"', f'device_type = "{device_type}"']
        lines += [f'for = "{DEMO_DRIFT_FOR}"', f"params = {DEMO_DRIFT_PARAMS}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_demo(
    settings: Settings,
    data_dir: Path,
    *,
    devices: int,
    duration_s: float | None,
    rate_s: float,
    seed: int,
    stop: threading.Event,
    progress_s: float,
    out: Out,
    fault_after_s: float = 15.0,
    protocol: str = "json",
    model: str = "plant",
) -> int:
    t_start = time.monotonic()
    with services(settings.database_url, settings.mqtt_url, data_dir, ephemeral=True) as (
        db,
        mq,
        notes,
    ):
        for n in notes:
            out(f"started {n}")
        start = datetime.now(UTC)
        fleet = build_fleet(
            devices,
            seed=seed,
            start=start,
            rate_s=rate_s,
            fault_after_s=fault_after_s,
            model=model,
        )
        pool = open_pool(db, max_size=2, name="offsite-demo")
        with pool.connection() as conn:
            migrate(conn)
            save_registry(conn, fleet.registry)
            logins = demo_users(conn, fleet.registry.enterprises[0].id)
        out(
            f"registry: {len(fleet.registry.enterprises)} enterprises, "
            f"{len(fleet.registry.devices)} devices; injected faults:"
        )
        for f in fleet.faults:
            out(
                f"  {f.kind.value:<10} {f.mn} {f.pollutant or '-':<7} from "
                f"+{(f.start - start).total_seconds():.0f}s to "
                f"+{(f.end - start).total_seconds():.0f}s"
            )

        if settings.rules_file is None:
            settings = settings.model_copy(update={"rules_file": demo_rules(data_dir)})
            out("rules: the packaged ones, without their warm-ups (faults come seconds in)")
        hj212 = protocol == "hj212"
        if hj212:  # the loggers speak to the TCP gateway, on a free port
            settings = settings.model_copy(
                update={"gateway_host": "127.0.0.1", "gateway_port": free_port()}
            )
        ingest = IngestService(settings, db, mq, gateway=hj212)
        ingest.start()
        out(f"ingest consuming {settings.mqtt_topic} from {redact(mq)}")
        if hj212:
            out(f"HJ 212 gateway on {settings.gateway_host}:{settings.gateway_port}")

        sock, port_note = bind_http(
            settings.http_host,
            settings.http_port,
            explicit="http_port" in settings.model_fields_set,
        )
        if port_note:
            out(port_note)
            settings = settings.model_copy(update={"http_port": sock.getsockname()[1]})
        app = create_app(settings, db)
        server = DrainingServer(
            uvicorn.Config(
                app,
                host=settings.http_host,
                port=settings.http_port,
                log_level="warning",
                timeout_graceful_shutdown=2,
            ),
            app,
        )
        api_thread = threading.Thread(
            target=server.run, args=([sock],), name="offsite-api", daemon=True
        )
        api_thread.start()
        deadline = time.monotonic() + 15
        while not server.started and api_thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not server.started:
            ingest.stop()
            pool.close()
            sock.close()
            raise OffsiteError(
                f"the API could not start on {settings.http_host}:{settings.http_port}"
            )
        out(f"API and console on {settings.base_url}  (OpenAPI: {settings.base_url}/docs)")
        out("sign in to the console with (passwords are new each run):")
        for user, role, password in logins:
            out(f"  {user:<11} {password}  {role}")

        sim_stop = threading.Event()
        pub: dict[str, PublishStats] = {}
        tcp: dict[str, TcpStats] = {}
        first_mn = fleet.registry.devices[0].mn
        for topic, payload in BAD_MESSAGES:
            publish_raw(mq, topic.format(mn=first_mn), payload)

        def simulate() -> None:
            if hj212:  # loggers that wait for each answer; a share of packets broken
                tcp["stats"] = run_tcp_loggers(
                    fleet,
                    settings.gateway_host,
                    settings.gateway_port,
                    duration_s=None,
                    realtime=True,
                    stop=sim_stop,
                    tz=settings.hj212_tz,
                    malformed=HJ212_MALFORMED,
                    on_progress=lambda st: tcp.__setitem__("stats", st),
                )
                return
            pub["stats"] = publish_fleet(
                fleet,
                mq,
                duration_s=None,
                start=start,
                realtime=True,
                stop=sim_stop,
                protocol=protocol,
                on_progress=lambda st: pub.__setitem__("stats", st),
            )

        sim = threading.Thread(target=simulate, name="offsite-simulators", daemon=True)
        sim.start()
        how = (
            f"sending HJ 212 to the gateway ({HJ212_MALFORMED:.0%} of packets also sent broken)"
            if hj212
            else f"publishing {protocol.upper()}"
        )
        out(
            f"{devices} simulated devices {how} every {rate_s:g} s"
            + (f" for {duration_s:g} s" if duration_s else "; Ctrl-C to stop")
        )

        t0 = time.monotonic()
        next_progress = t0 + progress_s
        try:
            while not stop.is_set():
                now = time.monotonic()
                if duration_s is not None and now - t0 >= duration_s:
                    break
                if not ingest.alive:
                    out("ingest stopped unexpectedly; see the log")
                    break
                if now >= next_progress:
                    next_progress += progress_s
                    s = ingest.stats
                    with pool.connection() as conn:
                        active = count_active(conn)
                    out(
                        f"[{now - t0:5.0f}s] messages {s.messages:>7}  readings stored "
                        f"{s.readings_stored:>8}  dead letters {s.dead_letters:>3}  "
                        f"alerts open {active:>3}"
                    )
                stop.wait(0.2)
        finally:
            sim_stop.set()
            sim.join(15)
            # let in-flight messages arrive and commit before stopping ingest
            time.sleep(min(2.0, settings.batch_max_delay_ms / 1000 * 3))
            ingest.stop()
            server.should_exit = True
            api_thread.join(10)
            sock.close()
            with pool.connection() as conn:
                by_rule = counts_by_rule(conn)
                alerted = {
                    (rule, mn) for rule, mn in conn.execute("SELECT DISTINCT rule, mn FROM alerts")
                }
            pool.close()

        s = ingest.stats
        p = pub.get("stats")
        out("")
        out(f"summary after {time.monotonic() - t_start:.1f} s:")
        t = tcp.get("stats")
        if t is not None:
            out(
                f"  HJ 212 packets sent  {t.packets}  (answered {t.responses}, missing "
                f"{t.missing}, broken copies {t.malformed})"
            )
        if t is None:
            out(f"  messages published   {p.messages if p else 0}")
        else:
            out(f"  bad MQTT messages    {len(BAD_MESSAGES)}")
        out(f"  messages received    {s.messages}")
        out(f"  readings stored      {s.readings_stored}  (duplicates ignored: {s.duplicates})")
        out(
            f"  dead letters         {s.dead_letters}  "
            + ", ".join(f"{k}: {v}" for k, v in sorted(s.dead_by_reason.items()))
        )
        out(
            "  alerts by rule       "
            + (
                "; ".join(
                    f"{rule}: " + ", ".join(f"{n} {st}" for st, n in sorted(states.items()))
                    for rule, states in by_rule.items()
                )
                or "none"
            )
        )
        out("  injected faults      " + _detection(fleet.faults, alerted, t_sim_end=time.time()))
        return 0 if ingest.error is None else 1

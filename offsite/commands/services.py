"""``offsite ingest | gateway | rules | serve``: the long-running services."""

from __future__ import annotations

import argparse
import contextlib
import threading
import time

from offsite.commands.base import Stop, say
from offsite.core.secrecy import redact
from offsite.core.settings import Settings


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
    stop = Stop()
    stop.install()
    mqtt_url = "mqtt://unused:1" if gateway_only else settings.mqtt_url
    with services(settings.database_url, mqtt_url, settings.data_dir) as (db, mq, notes):
        for n in notes:
            say(f"started {n}")
        if settings.registry_file is not None:
            pool = open_pool(db, max_size=1)
            with pool.connection() as conn:
                migrate(conn)
                save_registry(conn, load_registry_file(settings.registry_file))
            pool.close()
        svc = IngestService(settings, db, None if gateway_only else mq, gateway=with_gateway)
        svc.start()
        if not gateway_only:
            say(f"ingest consuming {settings.mqtt_topic} from {redact(mq)}")
        if svc.gateway is not None:
            say(f"HJ 212 gateway listening on {settings.gateway_host}:{svc.gateway.port}")
        say("Ctrl-C to stop")
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
                say(
                    f"[{time.monotonic() - t0:6.0f}s] messages {s.messages}  stored "
                    f"{s.readings_stored}  dead letters {s.dead_letters}  alerts opened "
                    f"{r.opened}{conns}{restarts}"
                )
        finally:
            svc.stop()
        s = svc.stats
        say(
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

    stop = Stop()
    stop.install()
    with services(settings.database_url, "mqtt://unused:1", settings.data_dir) as (db, _, notes):
        for n in notes:
            say(f"started {n}")
        _migrate(db)
        say("rule runner: judging what ingest workers queue (Ctrl-C to stop)")
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
                say(
                    f"[{time.monotonic() - t0:6.0f}s] "
                    f"{'leading' if f.leading else 'standing by'}"
                    f"  judged {f.judged}  alerts opened {f.opened}  cleared {f.cleared}"
                )
        finally:  # whatever ends the loop, the runner thread must not outlive it
            stop.event.set()
            runner.join()
        f = figures_in(counts)
        say(
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
            say(f"started {n}")
        _migrate(db)
        say(
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


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """ingest, gateway, rules, serve."""
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

"""``offsite demo | soak | eval``: the whole system run on simulated plants."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from offsite.commands.base import Stop, add_model_argument, fault_kinds, plant_profiles, say
from offsite.core.settings import Settings


# -- soak ----------------------------------------------------------------------------------
def cmd_soak(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.soak import run_soak

    stop = Stop()
    stop.install()
    r = run_soak(
        duration_s=args.duration,
        devices=args.devices,
        rate=args.rate,
        stop=stop.event,
        out=say,
        scenarios=tuple(s for s in args.scenarios.split(",") if s),
        outage_s=args.outage,
        keep=args.keep,
        spool=not args.no_spool,
    )
    if stop.event.is_set():
        say("soak: interrupted")
        return 130
    say("soak: BALANCED" if r.balanced else "soak: MISMATCH")
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
            out=say,
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
        out=say,
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
    stop = Stop()
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
            out=say,
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


def add_demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """demo (first in the help)."""
    d = sub.add_parser("demo", help="simulators → MQTT → ingest → rules → API, all in one")
    d.add_argument("--devices", type=int, default=20, help="simulated devices (default 20)")
    d.add_argument("--duration", type=float, default=None, help="seconds; default until Ctrl-C")
    d.add_argument("--rate", type=float, default=1.0, help="seconds between readings")
    d.add_argument("--seed", type=int, default=0, help="fleet and fault draw (same seed, same run)")
    add_model_argument(d)
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


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """soak, eval."""
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
        choices=plant_profiles(),
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
        choices=fault_kinds(),
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

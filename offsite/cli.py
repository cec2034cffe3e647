"""The ``offsite`` command: demo | ingest | gateway | serve | simulate | db | users | devices
| audit.

Every subcommand builds the one Settings object from ``OFFSITE_*`` (validated before
anything starts), prints what it started and where, and stops cleanly on Ctrl-C or
SIGTERM with a summary.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from offsite.commands import admin, services, simulate, trials
from offsite.core.errors import OffsiteError, SettingsError
from offsite.core.logs import setup_logging
from offsite.core.settings import Settings, load_settings


def build_parser() -> argparse.ArgumentParser:
    from offsite.bench.cli import add_bench_parser

    p = argparse.ArgumentParser(prog="offsite", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    trials.add_demo_parser(sub)
    services.add_parsers(sub)
    simulate.add_parser(sub)
    trials.add_parsers(sub)
    admin.add_parsers(sub)
    add_bench_parser(sub)
    return p


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from offsite.bench.cli import cmd_bench as run

    return run(args, settings)


COMMANDS = {
    "demo": trials.cmd_demo,
    "ingest": services.cmd_ingest,
    "gateway": services.cmd_ingest,
    "rules": services.cmd_rules,
    "serve": services.cmd_serve,
    "simulate": simulate.cmd_simulate,
    "db": admin.cmd_db,
    "soak": trials.cmd_soak,
    "eval": trials.cmd_eval,
    "users": admin.cmd_users,
    "devices": admin.cmd_devices,
    "audit": admin.cmd_audit,
    "alerts": admin.cmd_alerts,
    "bench": cmd_bench,
}


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

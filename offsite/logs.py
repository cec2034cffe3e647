"""Logging set-up: one line per event, to stderr, so progress on stdout stays readable."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str, *, quiet_libraries: bool = True) -> None:
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    if quiet_libraries:
        for name in ("amqtt", "transitions", "uvicorn.access", "psycopg.pool"):
            logging.getLogger(name).setLevel(logging.WARNING)

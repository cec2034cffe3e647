"""Logging set-up: one line per event, to stderr, so progress on stdout stays readable.

On a terminal the lines are for people; anywhere else (a container, systemd, a pipe to a
log shipper) each line is one JSON object, so ``mn``, ``enterprise_id``, ``reason``… are
fields to filter on rather than words to grep. Context goes in ``extra={...}``; payload
contents never go into info-level lines (they are evidence, kept in the database).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

# attributes every LogRecord has; anything else on a record came from ``extra``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}  # (uvicorn's ANSI-coloured copy)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with ``extra`` fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_") and v is not None
        ]
        return f"{line} [{' '.join(extras)}]" if extras else line


def setup_logging(
    level: str,
    *,
    quiet_libraries: bool = True,
    fmt: Literal["auto", "json", "text"] = "auto",
    stream: TextIO | None = None,
) -> None:
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    if quiet_libraries:
        for name in ("amqtt", "transitions", "uvicorn.access", "psycopg.pool"):
            logging.getLogger(name).setLevel(logging.WARNING)

"""Payload codecs: bytes → ``ParsedMessage``. Pure; no I/O, no clock.

A codec reads the *format* (JSON today, HJ 212 next) and says nothing about whether
the content is acceptable; ``ingest.validate`` judges that against the registry and
the clock. Codecs raise ``ingest.errors.DecodeError`` with a dead-letter reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from offsite.core.readings import DataKind


class ParsedValue(NamedTuple):
    """One value as sent. A named tuple rather than a frozen dataclass: every value of
    every message passes through one, and a tuple is built in a third of the time."""

    pollutant: object  # as sent: validated later
    value: object
    flag: object
    kind: DataKind = DataKind.RTD
    stat: str = ""  # see ingest.models.Reading.stat


@dataclass(frozen=True, slots=True)
class ParsedRecord:
    ts: datetime
    values: tuple[ParsedValue, ...]


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """What the payload said, before judgement. ``mn`` is the device the payload names."""

    records: tuple[ParsedRecord, ...]
    mn: str | None = None

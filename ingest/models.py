"""Value objects that cross ingest's internal boundaries.

Everything past ``ingest/subscriber.py`` sees these, never a paho object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

# HJ 212 data flags. Only N is valid data for judging exceedances (MEE 2022 No. 21).
FLAGS = frozenset("NFMSDCTB")


class DataKind(StrEnum):
    """What a value is: a real-time reading or an average over an interval (HJ 212 CN)."""

    RTD = "rtd"  # CN 2011 real-time
    MINUTE = "min"  # CN 2051
    HOUR = "hour"  # CN 2061
    DAY = "day"  # CN 2031


class DeadReason(StrEnum):
    """Why a message (or part of it) was not stored as readings. Stable codes for queries."""

    OVERSIZED = "oversized"
    NOT_UTF8 = "not_utf8"
    MALFORMED_JSON = "malformed_json"
    SCHEMA = "schema"
    BAD_TOPIC = "bad_topic"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_MISMATCH = "device_mismatch"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    BAD_POLLUTANT = "bad_pollutant"
    BAD_VALUE = "bad_value"
    BAD_FLAG = "bad_flag"


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message as the broker delivered it, converted once at the boundary."""

    topic: str
    payload: bytes
    received_at: datetime
    mid: int = 0
    qos: int = 1


@dataclass(frozen=True, slots=True)
class Reading:
    """One stored value: the narrow row of the readings table."""

    ts: datetime
    mn: str
    pollutant: str
    value: float
    flag: str = "N"
    kind: DataKind = DataKind.RTD

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None:
            raise ValueError("Reading.ts must be timezone-aware")
        if not math.isfinite(self.value):
            raise ValueError("Reading.value must be finite")
        if self.flag not in FLAGS:
            raise ValueError(f"Reading.flag {self.flag!r} is not an HJ 212 data flag")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message kept for review with the reason it was refused (all or in part)."""

    topic: str
    payload: bytes
    received_at: datetime
    reason: DeadReason
    detail: str
    mn: str | None = None


@dataclass(slots=True)
class Outcome:
    """What one message turned into: readings to store and/or a dead letter."""

    readings: list[Reading] = field(default_factory=list)
    dead: DeadLetter | None = None

"""Value objects that cross ingest's internal boundaries.

Everything past ``ingest/subscriber.py`` sees these, never a paho object.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# HJ 212 data flags. Only N is valid data for judging exceedances (MEE 2022 No. 21).
FLAGS = frozenset("NFMSDCTB")
STATS = frozenset({"", "min", "max", "cou", "zs", "zsmin", "zsmax", "rt"})


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
    DEVICE_REVOKED = "device_revoked"  # in the registry, but its credentials were revoked
    DEVICE_MISMATCH = "device_mismatch"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    BAD_POLLUTANT = "bad_pollutant"
    BAD_VALUE = "bad_value"
    BAD_FLAG = "bad_flag"
    # HJ 212
    HJ212_BAD_HEADER = "hj212_bad_header"
    HJ212_LENGTH_MISMATCH = "hj212_length_mismatch"
    HJ212_CRC_MISMATCH = "hj212_crc_mismatch"
    HJ212_MISSING_FIELD = "hj212_missing_field"
    HJ212_MALFORMED_FIELD = "hj212_malformed_field"
    HJ212_UNKNOWN_CN = "hj212_unknown_cn"
    HJ212_WRONG_PASSWORD = "hj212_wrong_password"
    HJ212_INCOMPLETE_SPLIT = "hj212_incomplete_split"
    HJ212_GARBAGE = "hj212_garbage"
    # the database refused the batch for a reason other than being unreachable
    STORE_REJECTED = "store_rejected"


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message as the broker delivered it, converted once at the boundary."""

    topic: str  # MQTT topic, or "tcp/<peer>" for the HJ 212 gateway
    payload: bytes
    received_at: datetime
    mid: int = 0
    qos: int = 1
    transport: str = "mqtt"
    # called (from the pipeline thread) once the message is committed, instead of the
    # MQTT acknowledgement, with whether anything of it was accepted: the gateway sends
    # the HJ 212 response then
    on_commit: Callable[[bool], None] | None = field(default=None, compare=False, repr=False)
    # the gateway's framer found no packet in these bytes, and says why
    garbage: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One stored value: the narrow row of the readings table."""

    ts: datetime
    mn: str
    pollutant: str
    value: float
    flag: str = "N"
    kind: DataKind = DataKind.RTD
    # '' for the primary value (HJ 212 Rtd/Avg); else a statistic the packet carried
    # beside it: "min", "max", "cou", "zs" (converted to reference O2), "zsmin", "zsmax",
    # "rt" (run time). Stored in the kind column as "<kind>.<stat>", e.g. "hour.max".
    stat: str = ""

    @property
    def kind_text(self) -> str:
        return f"{self.kind.value}.{self.stat}" if self.stat else self.kind.value

    @classmethod
    def split_kind(cls, text: str) -> tuple[DataKind, str]:
        kind, _, stat = text.partition(".")
        return DataKind(kind), stat

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None:
            raise ValueError("Reading.ts must be timezone-aware")
        if not math.isfinite(self.value):
            raise ValueError("Reading.value must be finite")
        if self.flag not in FLAGS:
            raise ValueError(f"Reading.flag {self.flag!r} is not an HJ 212 data flag")
        if self.stat not in STATS:
            raise ValueError(f"Reading.stat {self.stat!r} is not one of {sorted(STATS)}")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message kept for review with the reason it was refused (all or in part)."""

    topic: str
    payload: bytes
    received_at: datetime
    reason: DeadReason
    detail: str
    mn: str | None = None


@dataclass(frozen=True, slots=True)
class RawPacket:
    """An HJ 212 packet to archive as received (evidence beyond what readings hold)."""

    received_at: datetime
    transport: str
    source: str
    mn: str
    qn: str | None
    st: str
    cn: str
    flag: int | None
    pnum: int | None
    pno: int | None
    raw: str
    crc_variant: str = "standard"  # which CRC it carried (ingest.codecs.hj212.CRC_VARIANTS)


@dataclass(slots=True)
class Outcome:
    """What one message turned into: readings to store and/or a dead letter, packets to
    archive — or, for one part of a split HJ 212 packet, ``split``: keep it in the store
    with its batch, until the part that completes the set arrives."""

    readings: list[Reading] = field(default_factory=list)
    dead: DeadLetter | None = None
    packets: list[RawPacket] = field(default_factory=list)
    split: Any = None  # ingest.codecs.hj212.Packet

"""Broken payloads on purpose: a share of a fleet's messages also sent malformed. Pure.

A demo or a test of ingest's refusals needs bad input in known numbers. The broken copy
of a message goes out just before the good one, so the good readings still arrive and
balance, while each broken copy must end up as one dead letter: an HJ 212 packet with a
CRC that matches neither the standard nor the byte-swapped MODBUS flavour (a line error
on the way), or a JSON document cut off half-way.

Which messages get a broken copy is a hash of the seed, the device and the timestamp, so
the same run breaks the same messages whatever the transport.
"""

from __future__ import annotations

import math
from datetime import datetime

from offsite.ingest.codecs.hj212 import crc16, crc16_modbus
from offsite.simulators.errors import PublishError
from offsite.simulators.signals import unit_hash


def check_rate(rate: float) -> float:
    """The share of messages to break: a number in [0, 1]."""
    if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
        raise PublishError(f"the malformed share must be between 0 and 1, not {rate!r}")
    return rate


def is_malformed(rate: float, seed: int, mn: str, ts: datetime) -> bool:
    """Whether the message of device ``mn`` at ``ts`` gets a broken copy."""
    return rate > 0.0 and unit_hash("malformed", seed, mn, ts.isoformat()) < rate


def corrupt(payload: bytes) -> bytes:
    """A copy of ``payload`` that ingest must refuse: an HJ 212 packet (``##…``) keeps
    its frame but carries a wrong CRC; anything else is cut to half its length."""
    if not payload.startswith(b"##"):
        return payload[: max(1, len(payload) // 2)]
    body = payload.rstrip(b"\r\n")
    segment = body[6:-4]
    swapped = crc16_modbus(segment)
    accepted = {crc16(segment), ((swapped & 0xFF) << 8) | (swapped >> 8)}
    bad = next(v for v in range(0x10000) if v not in accepted and v != int(body[-4:], 16))
    return body[:-4] + b"%04X\r\n" % bad

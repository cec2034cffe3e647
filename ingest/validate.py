"""Judge a decoded message against the registry and the clock. Pure.

A message's good values are kept even when some of its values are bad: the bad ones
(and the whole raw payload, as evidence) go to the dead-letter store with a reason
naming each refused value. ``now`` is the broker (or gateway) receive time, passed in
with the message.

Two payload formats: JSON (documented in the README) and HJ 212 packets, recognised by
their ``##`` header, over MQTT or the TCP gateway. For HJ 212 the device is the packet's
MN; over MQTT it must also be the topic's. The packet's PW must match the registry's
password for that MN, and its CRC must be the standard's (a byte-swapped CRC-16/MODBUS is
accepted only for devices with the compatibility switch on).

A revoked device (``revoked``: MN → reason) is refused as ``device_revoked`` — kept apart
from ``unknown_device`` because data still arriving from a revoked device is itself a
finding (a stolen logger, a decommissioned stack that still reports).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from typing import cast

from offsite.core.readings import (
    FLAGS,
    DeadLetter,
    DeadReason,
    InboundMessage,
    Outcome,
    RawPacket,
    Reading,
)
from offsite.core.registry import MN_RE, POLLUTANT_RE, Device
from offsite.ingest.codecs import ParsedMessage, ParsedRecord, hj212
from offsite.ingest.codecs.json_codec import decode_json
from offsite.ingest.errors import DecodeError


@dataclass(frozen=True, slots=True)
class Policy:
    """Acceptance limits; built once from Settings."""

    max_payload_bytes: int = 256 * 1024
    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=30)
    topic_prefix: str = "devices"
    topic_suffix: str = "telemetry"
    hj212_tz: tzinfo = field(default=hj212.BEIJING)
    # refuse HJ 212 packets of devices with no registered password (else PW is unchecked)
    hj212_require_password: bool = False


def topic_device(topic: str, policy: Policy) -> str | None:
    """``{prefix}/{mn}/{suffix}`` (by default ``devices/{mn}/telemetry``) → mn."""
    head, tail = policy.topic_prefix + "/", "/" + policy.topic_suffix
    if not (topic.startswith(head) and topic.endswith(tail)):
        return None
    mn = topic[len(head) : len(topic) - len(tail)]
    return mn if MN_RE.match(mn) else None


def policy_topic(subscription: str) -> tuple[str, str]:
    """Split a subscription ``a/b/+/c`` into the (prefix, suffix) around its one ``+``."""
    parts = subscription.split("/")
    if parts.count("+") != 1 or "#" in parts or parts[0] == "+" or parts[-1] == "+":
        raise ValueError(
            f"topic {subscription!r} must have one '+' level for the device MN "
            "between a prefix and a suffix, e.g. devices/+/telemetry"
        )
    i = parts.index("+")
    return "/".join(parts[:i]), "/".join(parts[i + 1 :])


def _dead(msg: InboundMessage, reason: DeadReason | str, detail: str, mn: str | None) -> Outcome:
    return Outcome(
        dead=DeadLetter(msg.topic, msg.payload, msg.received_at, DeadReason(reason), detail, mn)
    )


def is_hj212(payload: bytes) -> bool:
    return payload.lstrip()[:2] == b"##"


def process(
    msg: InboundMessage,
    known: Mapping[str, Device],
    policy: Policy,
    revoked: Mapping[str, str] | None = None,
) -> Outcome:
    """Turn one inbound message into readings and/or a dead letter. Never raises."""
    revoked = revoked or {}
    size = len(msg.payload)
    topic_mn = topic_device(msg.topic, policy) if msg.transport == "mqtt" else None
    if size > policy.max_payload_bytes:
        return _dead(
            msg,
            DeadReason.OVERSIZED,
            f"payload of {size} bytes exceeds {policy.max_payload_bytes}",
            topic_mn,
        )
    if msg.transport == "mqtt" and topic_mn is None:
        return _dead(
            msg,
            DeadReason.BAD_TOPIC,
            f"topic {msg.topic!r} is not {policy.topic_prefix}/<mn>/{policy.topic_suffix}",
            None,
        )
    if msg.garbage is not None:
        return _dead(msg, DeadReason.HJ212_GARBAGE, msg.garbage, None)
    if is_hj212(msg.payload):
        return _process_hj212(msg, topic_mn, known, policy, revoked)
    if topic_mn is None:
        return _dead(
            msg,
            DeadReason.HJ212_GARBAGE,
            "bytes outside any ## … CRLF packet on the HJ 212 gateway",
            None,
        )
    if topic_mn in revoked:
        return _revoked(msg, topic_mn, revoked[topic_mn])
    if topic_mn not in known:
        return _dead(
            msg, DeadReason.UNKNOWN_DEVICE, f"device {topic_mn} is not in the registry", topic_mn
        )
    try:
        parsed: ParsedMessage = decode_json(msg.payload)
    except DecodeError as exc:
        return _dead(msg, exc.reason, exc.detail, topic_mn)
    if parsed.mn is not None and parsed.mn != topic_mn:
        return _dead(
            msg,
            DeadReason.DEVICE_MISMATCH,
            f"payload names device {parsed.mn} but was published on {msg.topic}",
            topic_mn,
        )
    return judge(msg, parsed.records, topic_mn, policy)


def _revoked(msg: InboundMessage, mn: str, reason: str) -> Outcome:
    return _dead(msg, DeadReason.DEVICE_REVOKED, f"device {mn} was revoked: {reason}", mn)


def _process_hj212(
    msg: InboundMessage,
    topic_mn: str | None,
    known: Mapping[str, Device],
    policy: Policy,
    revoked: Mapping[str, str],
) -> Outcome:
    try:
        packet = hj212.parse_packet(msg.payload)
    except DecodeError as exc:
        return _dead(msg, exc.reason, exc.detail, topic_mn)
    if topic_mn is not None and packet.mn != topic_mn:
        return _dead(
            msg,
            DeadReason.DEVICE_MISMATCH,
            f"packet MN {packet.mn} was published on {msg.topic}",
            topic_mn,
        )
    if packet.mn in revoked:
        return _revoked(msg, packet.mn, revoked[packet.mn])
    device = known.get(packet.mn)
    if device is None:
        return _dead(
            msg, DeadReason.UNKNOWN_DEVICE, f"device {packet.mn} is not in the registry", packet.mn
        )
    if device.password is None and policy.hj212_require_password:
        return _dead(
            msg,
            DeadReason.HJ212_WRONG_PASSWORD,
            f"device {packet.mn} has no registered password, and passwords are "
            "required (OFFSITE_HJ212_REQUIRE_PASSWORD)",
            packet.mn,
        )
    if device.password is not None and packet.pw != device.password:
        return _dead(
            msg,
            DeadReason.HJ212_WRONG_PASSWORD,
            f"PW does not match the registered password of {packet.mn}",
            packet.mn,
        )
    if packet.crc_variant != "standard" and not device.crc_compat:
        order = "low byte first" if packet.crc_variant == "modbus_swapped" else "high byte first"
        return _dead(
            msg,
            DeadReason.HJ212_CRC_MISMATCH,
            f"CRC is a CRC-16/MODBUS ({packet.crc_variant}: {order}), not HJ 212's; turn "
            "on the device's crc_compat switch in the registry to accept it",
            packet.mn,
        )
    if packet.is_split:
        return Outcome(split=packet)
    return judge_packets([msg], [packet], policy)


def judge_packets(
    msgs: Sequence[InboundMessage], packets: Sequence[hj212.Packet], policy: Policy
) -> Outcome:
    """Readings of one packet, or of a reassembled split packet's parts (in PNO order)."""
    last = msgs[-1]
    mn = packets[0].mn
    group = InboundMessage(
        last.topic,
        b"".join(m.payload for m in msgs),
        last.received_at,
        last.mid,
        last.qos,
        last.transport,
    )
    try:
        parsed = hj212.to_message(packets, policy.hj212_tz)
    except DecodeError as exc:
        return _dead(group, exc.reason, exc.detail, mn)
    outcome = judge(group, parsed.records, mn, policy)
    outcome.packets = [
        RawPacket(
            m.received_at,
            m.transport,
            m.topic,
            p.mn,
            p.qn,
            p.st,
            p.cn,
            p.flag,
            p.pnum,
            p.pno,
            p.raw.decode("utf-8", "replace").strip(),
            p.crc_variant,
        )
        for m, p in zip(msgs, packets, strict=True)
    ]
    return outcome


# Pollutant codes already found well-formed: every value of every message is checked,
# and a set lookup costs a fraction of the regular expression. Bounded, because codes
# come from outside; only well-formed ones are kept, and a fleet uses a few dozen.
_GOOD_CODES: set[str] = set()
_GOOD_CODES_MAX = 4096


def _good_code(code: object) -> bool:
    if not isinstance(code, str) or not POLLUTANT_RE.match(code):
        return False
    if len(_GOOD_CODES) < _GOOD_CODES_MAX:
        _GOOD_CODES.add(code)
    return True


def _number(v: object) -> float | None:
    """A JSON or HJ 212 value as a float (inf beyond float range), None if not a number:
    exact floats and ints first, as nearly every value is one."""
    if type(v) is float:
        return v
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    try:
        return float(v)
    except OverflowError:  # an integer literal beyond float range
        return math.inf


def judge(msg: InboundMessage, records: Sequence[ParsedRecord], mn: str, policy: Policy) -> Outcome:
    """Check every value of every record: time window, code, number, flag."""
    now = msg.received_at
    readings: list[Reading] = []
    problems: list[tuple[DeadReason, str]] = []
    refused = 0
    for rec in records:
        if rec.ts - now > policy.max_future:
            refused += len(rec.values)
            problems.append(
                (
                    DeadReason.FUTURE_TIMESTAMP,
                    f"ts {rec.ts.isoformat()} is {(rec.ts - now).total_seconds():.0f} s "
                    f"ahead of the receive time (tolerance "
                    f"{policy.max_future.total_seconds():.0f} s)",
                )
            )
            continue
        if now - rec.ts > policy.max_age:
            refused += len(rec.values)
            problems.append(
                (
                    DeadReason.STALE_TIMESTAMP,
                    f"ts {rec.ts.isoformat()} is older than the "
                    f"{policy.max_age.days}-day backfill window",
                )
            )
            continue
        for code, v, flag, kind, stat in rec.values:
            if code not in _GOOD_CODES and not _good_code(code):
                refused += 1
                problems.append(
                    (DeadReason.BAD_POLLUTANT, f"{code!r} is not an HJ 212 pollutant code")
                )
                continue
            fv = _number(v)
            if fv is None:
                refused += 1
                problems.append((DeadReason.BAD_VALUE, f"{code}: value {v!r} is not a number"))
                continue
            if not math.isfinite(fv):
                refused += 1
                problems.append((DeadReason.BAD_VALUE, f"{code}: value {v!r} is not finite"))
                continue
            if not isinstance(flag, str) or flag not in FLAGS:
                refused += 1
                problems.append(
                    (
                        DeadReason.BAD_FLAG,
                        f"{code}: flag {flag!r} is not one of {''.join(sorted(FLAGS))}",
                    )
                )
                continue
            readings.append(Reading(rec.ts, mn, cast(str, code), fv, flag, kind, stat))  # checked
    if not problems:
        return Outcome(readings=readings)
    total = len(readings) + refused
    detail = "; ".join(d for _, d in problems[:20])
    if len(problems) > 20:
        detail += f"; … {len(problems) - 20} more"
    if readings:
        detail = f"{refused} of {total} values refused, the rest stored: {detail}"
    dead = DeadLetter(msg.topic, msg.payload, msg.received_at, problems[0][0], detail, mn)
    return Outcome(readings=readings, dead=dead)

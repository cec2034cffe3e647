"""Judge a decoded message against the registry and the clock. Pure.

A message's good values are kept even when some of its values are bad: the bad ones
(and the whole raw payload, as evidence) go to the dead-letter store with a reason
naming each refused value. ``now`` is the broker delivery time, passed in.
"""

from __future__ import annotations

import math
from collections.abc import Container
from dataclasses import dataclass
from datetime import timedelta

from ingest.codecs import ParsedMessage
from ingest.codecs.detect import decode
from ingest.errors import DecodeError
from ingest.models import FLAGS, DeadLetter, DeadReason, InboundMessage, Outcome, Reading
from offsite.registry import MN_RE, POLLUTANT_RE


@dataclass(frozen=True, slots=True)
class Policy:
    """Acceptance limits; built once from Settings."""

    max_payload_bytes: int = 256 * 1024
    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=30)
    topic_prefix: str = "devices"
    topic_suffix: str = "telemetry"


def topic_device(topic: str, policy: Policy) -> str | None:
    """``{prefix}/{mn}/{suffix}`` (by default ``devices/{mn}/telemetry``) → mn."""
    head, tail = policy.topic_prefix + "/", "/" + policy.topic_suffix
    if not (topic.startswith(head) and topic.endswith(tail)):
        return None
    mn = topic[len(head):len(topic) - len(tail)]
    return mn if MN_RE.match(mn) else None


def policy_topic(subscription: str) -> tuple[str, str]:
    """Split a subscription ``a/b/+/c`` into the (prefix, suffix) around its one ``+``."""
    parts = subscription.split("/")
    if parts.count("+") != 1 or "#" in parts or parts[0] == "+" or parts[-1] == "+":
        raise ValueError(f"topic {subscription!r} must have one '+' level for the device MN "
                         "between a prefix and a suffix, e.g. devices/+/telemetry")
    i = parts.index("+")
    return "/".join(parts[:i]), "/".join(parts[i + 1:])


def _dead(msg: InboundMessage, reason: DeadReason, detail: str, mn: str | None) -> Outcome:
    return Outcome(dead=DeadLetter(msg.topic, msg.payload, msg.received_at, reason, detail, mn))


def process(msg: InboundMessage, known: Container[str], policy: Policy) -> Outcome:
    """Turn one inbound message into readings and/or a dead letter. Never raises."""
    size = len(msg.payload)
    mn = topic_device(msg.topic, policy)
    if size > policy.max_payload_bytes:
        return _dead(msg, DeadReason.OVERSIZED,
                     f"payload of {size} bytes exceeds {policy.max_payload_bytes}", mn)
    if mn is None:
        return _dead(msg, DeadReason.BAD_TOPIC,
                     f"topic {msg.topic!r} is not {policy.topic_prefix}/<mn>/{policy.topic_suffix}",
                     None)
    if mn not in known:
        return _dead(msg, DeadReason.UNKNOWN_DEVICE, f"device {mn} is not in the registry", mn)
    try:
        parsed: ParsedMessage = decode(msg.payload)
    except DecodeError as exc:
        return _dead(msg, DeadReason(exc.reason), exc.detail, mn)
    if parsed.mn is not None and parsed.mn != mn:
        return _dead(msg, DeadReason.DEVICE_MISMATCH,
                     f"payload names device {parsed.mn} but was published on {msg.topic}", mn)

    now = msg.received_at
    readings: list[Reading] = []
    problems: list[tuple[DeadReason, str]] = []
    refused = 0
    for rec in parsed.records:
        if rec.ts - now > policy.max_future:
            refused += len(rec.values)
            problems.append((DeadReason.FUTURE_TIMESTAMP,
                             f"ts {rec.ts.isoformat()} is {(rec.ts - now).total_seconds():.0f} s "
                             f"ahead of the receive time (tolerance "
                             f"{policy.max_future.total_seconds():.0f} s)"))
            continue
        if now - rec.ts > policy.max_age:
            refused += len(rec.values)
            problems.append((DeadReason.STALE_TIMESTAMP,
                             f"ts {rec.ts.isoformat()} is older than the "
                             f"{policy.max_age.days}-day backfill window"))
            continue
        for pv in rec.values:
            code = pv.pollutant
            if not isinstance(code, str) or not POLLUTANT_RE.match(code):
                refused += 1
                problems.append((DeadReason.BAD_POLLUTANT,
                                 f"{code!r} is not an HJ 212 pollutant code"))
                continue
            v = pv.value
            if isinstance(v, bool) or not isinstance(v, int | float):
                refused += 1
                problems.append((DeadReason.BAD_VALUE, f"{code}: value {v!r} is not a number"))
                continue
            try:
                fv = float(v)
            except OverflowError:  # an integer literal beyond float range
                fv = math.inf
            if not math.isfinite(fv):
                refused += 1
                problems.append((DeadReason.BAD_VALUE, f"{code}: value {v!r} is not finite"))
                continue
            if not isinstance(pv.flag, str) or pv.flag not in FLAGS:
                refused += 1
                problems.append((DeadReason.BAD_FLAG, f"{code}: flag {pv.flag!r} is not one "
                                 f"of {''.join(sorted(FLAGS))}"))
                continue
            readings.append(Reading(rec.ts, mn, code, fv, pv.flag, pv.kind))
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

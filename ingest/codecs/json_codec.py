"""The JSON telemetry format (documented in the README).

One object or an array of them::

    {"ts": "2026-11-26T08:00:00+08:00", "mn": "<optional, must match the topic>",
     "values": {"a21026": 12.3, "a19001": {"value": 8.1, "flag": "N"}}}

NaN and Infinity literals are read as floats so that validation can reject the one
value with a precise reason and keep the rest of the message.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from offsite.core.readings import DeadReason
from offsite.ingest.codecs import ParsedMessage, ParsedRecord, ParsedValue
from offsite.ingest.errors import DecodeError

MAX_RECORDS = 10_000


def _const(name: str) -> float:
    return float(name)  # "NaN", "Infinity", "-Infinity"


# one decoder for every message, as json.loads keeps for its defaults: json.loads with
# parse_constant builds a new JSONDecoder (and its scanner) on every call
_DECODER = json.JSONDecoder(parse_constant=_const)


def parse_timestamp(raw: object) -> datetime:
    """ISO 8601 with an explicit zone; a naive time would be silently misplaced by hours."""
    if not isinstance(raw, str):
        raise DecodeError(DeadReason.BAD_TIMESTAMP, f"ts must be an ISO 8601 string, got {raw!r}")
    text = raw.strip()
    try:
        ts = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError as exc:
        raise DecodeError(DeadReason.BAD_TIMESTAMP, f"ts {raw!r} is not ISO 8601") from exc
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise DecodeError(
            DeadReason.BAD_TIMESTAMP, f"ts {raw!r} has no time zone (add Z or +08:00)"
        )
    return ts


def _record(obj: Any, index: int) -> tuple[ParsedRecord, str | None]:
    where = f"record {index}: " if index >= 0 else ""
    if not isinstance(obj, dict):
        raise DecodeError(DeadReason.SCHEMA, f"{where}expected an object, got {type(obj).__name__}")
    if "ts" not in obj:
        raise DecodeError(DeadReason.SCHEMA, f"{where}missing field 'ts'")
    values = obj.get("values")
    if not isinstance(values, dict) or not values:
        raise DecodeError(DeadReason.SCHEMA, f"{where}'values' must be a non-empty object")
    mn = obj.get("mn")
    if mn is not None and not isinstance(mn, str):
        raise DecodeError(DeadReason.SCHEMA, f"{where}'mn' must be a string")
    ts = parse_timestamp(obj["ts"])
    parsed = []
    for code, v in values.items():
        if isinstance(v, dict):
            if "value" not in v:
                raise DecodeError(DeadReason.SCHEMA, f"{where}{code}: object without 'value'")
            parsed.append(ParsedValue(code, v["value"], v.get("flag", "N")))
        else:
            parsed.append(ParsedValue(code, v, "N"))
    return ParsedRecord(ts, tuple(parsed)), mn


def decode_json(payload: bytes) -> ParsedMessage:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(DeadReason.NOT_UTF8, f"payload is not UTF-8 (byte {exc.start})") from exc
    try:
        # (json.loads refuses a byte order mark with its own message: left to it)
        doc = json.loads(text) if text[:1] == "\ufeff" else _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an int over 4300 digits
        raise DecodeError(DeadReason.MALFORMED_JSON, f"payload is not JSON: {exc}") from exc
    if isinstance(doc, list):
        if not doc:
            raise DecodeError(DeadReason.SCHEMA, "empty batch")
        if len(doc) > MAX_RECORDS:
            raise DecodeError(DeadReason.SCHEMA, f"batch of {len(doc)} records > {MAX_RECORDS}")
        pairs = [_record(o, i) for i, o in enumerate(doc)]
    else:
        pairs = [_record(doc, -1)]
    mns = {mn for _, mn in pairs if mn is not None}
    if len(mns) > 1:
        raise DecodeError(
            DeadReason.DEVICE_MISMATCH, f"records name several devices: {sorted(mns)}"
        )
    return ParsedMessage(tuple(r for r, _ in pairs), mns.pop() if mns else None)

"""Pick the codec by the payload's first bytes: HJ 212 packets start with ``##``."""

from __future__ import annotations

from ingest.codecs import ParsedMessage
from ingest.codecs.json_codec import decode_json
from ingest.errors import DecodeError
from ingest.models import DeadReason


def decode(payload: bytes) -> ParsedMessage:
    head = payload.lstrip()[:2]
    if head == b"##":
        raise DecodeError(DeadReason.SCHEMA, "HJ 212 payloads are not supported yet (JSON only)")
    return decode_json(payload)

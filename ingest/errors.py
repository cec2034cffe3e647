"""Ingest's error tree (drawn in ``ingest/__init__.py``)."""

from __future__ import annotations


class IngestError(Exception):
    """Root of ingest's errors."""


class DecodeError(IngestError):
    """A payload that cannot be decoded; ``reason`` is the dead-letter reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class BrokerError(IngestError):
    """The MQTT broker could not be reached or refused the connection."""

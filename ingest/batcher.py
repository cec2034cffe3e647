"""Group processed messages into batches for one commit. Pure: the caller owns the clock.

A batch closes when it holds ``max_readings`` readings or its oldest message has
waited ``max_delay_s``; with ``hold`` (the caller's writer is still busy with the batch
before, so closing this one would not commit it any sooner) only the size closes it.
Messages are acknowledged only after their batch commits, so a batch carries the
messages themselves (for the ack), not just their readings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from offsite.core.readings import DeadLetter, InboundMessage, Outcome, RawPacket, Reading


@dataclass(slots=True)
class Batch:
    messages: list[InboundMessage] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    received: list[datetime] = field(default_factory=list)  # per reading
    dead: list[DeadLetter] = field(default_factory=list)
    packets: list[RawPacket] = field(default_factory=list)
    accepted: list[bool] = field(default_factory=list)  # per message: anything stored?
    # parts of split HJ 212 packets (message, hj212.Packet), kept in the store as they come
    parts: list[tuple[InboundMessage, Any]] = field(default_factory=list)
    opened_at: float = 0.0

    def __len__(self) -> int:
        return len(self.messages)


class Batcher:
    """``add`` and ``poll`` return a closed batch when one is due, else ``None``."""

    def __init__(self, max_readings: int, max_delay_s: float, max_messages: int = 10_000) -> None:
        if max_readings < 1 or max_delay_s <= 0 or max_messages < 1:
            raise ValueError("batch limits must be positive")
        self.max_readings = max_readings
        self.max_delay_s = max_delay_s
        self.max_messages = max_messages
        self._current = Batch()

    def add(
        self, msg: InboundMessage, outcome: Outcome, now: float, hold: bool = False
    ) -> Batch | None:
        return self.add_group([msg], outcome, now, hold)

    def add_group(
        self, msgs: list[InboundMessage], outcome: Outcome, now: float, hold: bool = False
    ) -> Batch | None:
        """Several messages with one outcome (the parts of a split HJ 212 packet): they
        land in the same batch, so none is acknowledged before the readings commit."""
        cur = self._current
        if not cur.messages:
            cur.opened_at = now
        cur.messages.extend(msgs)
        cur.accepted.extend([outcome.dead is None or bool(outcome.readings)] * len(msgs))
        cur.readings.extend(outcome.readings)
        cur.received.extend([msgs[-1].received_at] * len(outcome.readings))
        cur.packets.extend(outcome.packets)
        if outcome.split is not None:
            cur.parts.extend((m, outcome.split) for m in msgs)
        if outcome.dead is not None:
            cur.dead.append(outcome.dead)
        if len(cur.readings) >= self.max_readings or len(cur.messages) >= self.max_messages:
            return self._close()
        return None if hold else self.poll(now)

    def poll(self, now: float) -> Batch | None:
        if self._current.messages and now - self._current.opened_at >= self.max_delay_s:
            return self._close()
        return None

    def pending(self) -> list[InboundMessage]:
        """Messages of the open batch (not yet committed)."""
        return self._current.messages

    def deadline(self) -> float | None:
        """When the open batch falls due (monotonic seconds), or None if empty."""
        if not self._current.messages:
            return None
        return self._current.opened_at + self.max_delay_s

    def flush(self) -> Batch | None:
        return self._close() if self._current.messages else None

    def _close(self) -> Batch:
        batch, self._current = self._current, Batch()
        return batch

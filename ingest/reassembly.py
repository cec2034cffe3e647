"""Reassemble HJ 212 split packets (Flag D bit, PNUM/PNO). Pure: the caller owns the clock.

``Reassembler`` holds parts until all ``PNUM`` parts of one (MN, CN, QN) have arrived,
then releases them together in PNO order; a set still incomplete after ``timeout_s`` is
released as expired, to be dead-lettered with every part's bytes; a repeated PNO (a
redelivery) is kept aside and released with its set. The pipeline does not hold parts
in memory: it keeps each in the store as it arrives (so it can be answered after its
own commit, and survives a restart) and asks ``complete`` / ``assemble`` below, which
apply the same rules to what the store holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from offsite.core.readings import DeadLetter, DeadReason, InboundMessage, Outcome
from offsite.ingest.codecs import hj212
from offsite.ingest.codecs.hj212 import Packet
from offsite.ingest.validate import Policy, judge_packets
from offsite.store.split_parts import StoredPart

T = TypeVar("T")
SplitKey = tuple[str, str, str | None]  # (mn, cn, qn)


@dataclass(slots=True)
class _Pending(Generic[T]):
    pnum: int
    first_at: float
    parts: dict[int, tuple[T, Packet]] = field(default_factory=dict)
    extra: list[T] = field(default_factory=list)  # duplicates of parts already held


@dataclass(frozen=True, slots=True)
class Released(Generic[T]):
    """A set leaving the buffer: ``complete`` in PNO order, or expired (what came)."""

    key: SplitKey
    items: list[T]
    packets: list[Packet]
    extra: list[T]
    complete: bool
    expected: int


class Reassembler(Generic[T]):
    def __init__(self, timeout_s: float = 60.0, max_sets: int = 10_000) -> None:
        self.timeout_s = timeout_s
        self.max_sets = max_sets
        self._sets: dict[SplitKey, _Pending[T]] = {}

    def __len__(self) -> int:
        return len(self._sets)

    def add(self, item: T, packet: Packet, now: float) -> list[Released[T]]:
        """Hold one part; return what this completes (and, if over capacity, the oldest)."""
        assert packet.pnum is not None and packet.pno is not None
        key = (packet.mn, packet.cn, packet.qn)
        out: list[Released[T]] = []
        pending = self._sets.get(key)
        if pending is None:
            if len(self._sets) >= self.max_sets:
                oldest = min(self._sets, key=lambda k: self._sets[k].first_at)
                out.append(self._release(oldest, complete=False))
            pending = self._sets[key] = _Pending(packet.pnum, now)
        if packet.pno in pending.parts or packet.pnum != pending.pnum:
            pending.extra.append(item)  # duplicate or inconsistent: keep for the record
        else:
            pending.parts[packet.pno] = (item, packet)
        if len(pending.parts) == pending.pnum:
            out.append(self._release(key, complete=True))
        return out

    def expired(self, now: float) -> list[Released[T]]:
        late = [k for k, p in self._sets.items() if now - p.first_at >= self.timeout_s]
        return [self._release(k, complete=False) for k in late]

    def held(self) -> list[T]:
        """Everything held right now, left in place."""
        return [i for p in self._sets.values() for i, _ in p.parts.values()] + [
            i for p in self._sets.values() for i in p.extra
        ]

    def drain(self) -> list[T]:
        """Everything held (for shutdown: left unacknowledged, the broker redelivers)."""
        items = [i for p in self._sets.values() for i, _ in p.parts.values()]
        items += [i for p in self._sets.values() for i in p.extra]
        self._sets.clear()
        return items

    def _release(self, key: SplitKey, *, complete: bool) -> Released[T]:
        pending = self._sets.pop(key)
        ordered = sorted(pending.parts.items())
        return Released(
            key,
            [i for _, (i, _) in ordered],
            [p for _, (_, p) in ordered],
            pending.extra,
            complete,
            pending.pnum,
        )


# -- parts kept in the store (store.split_parts) ------------------------------------------
# The pipeline keeps each part as it arrives and answers it after its own commit; these
# decide, over what the store holds for one (MN, CN, QN), whether the set is whole — by
# the same rules as ``Reassembler`` — and turn it into readings or a dead letter.


def part_of(msg: InboundMessage, packet: Packet) -> StoredPart:
    assert packet.pnum is not None and packet.pno is not None
    return StoredPart(
        packet.mn,
        packet.cn,
        packet.qn or "",
        packet.pno,
        packet.pnum,
        msg.received_at,
        msg.transport,
        msg.topic,
        msg.payload,
    )


def _released(parts: Sequence[StoredPart]) -> Released[InboundMessage] | None:
    r: Reassembler[InboundMessage] = Reassembler(max_sets=1)
    for p in parts:
        msg = InboundMessage(p.topic, p.raw, p.received_at, transport=p.transport)
        for rel in r.add(msg, hj212.parse_packet(p.raw), 0.0):
            if rel.complete:
                return rel
    return None


def complete(parts: list[StoredPart]) -> bool:
    """Has every PNO of the set arrived?"""
    return _released(parts) is not None


def assemble(
    parts: Sequence[StoredPart], policy: Policy
) -> tuple[Outcome, list[DeadLetter], datetime]:
    """A whole set's readings (or dead letter); a dead letter for each part that does
    not belong (its PNUM disagrees with the set's), so none is dropped unseen; and when
    the newest part was received."""
    rel = _released(parts)
    assert rel is not None, "assemble() takes a set that complete() accepted"
    strays = [
        DeadLetter(
            m.topic,
            m.payload,
            m.received_at,
            DeadReason.HJ212_MALFORMED_FIELD,
            f"split part's PNUM disagrees with its set's ({rel.expected}, CN={rel.key[1]} "
            f"QN={rel.key[2] or '-'}): kept apart from the assembled packet",
            rel.key[0],
        )
        for m in rel.extra
    ]
    return (
        judge_packets(rel.items, rel.packets, policy),
        strays,
        max(p.received_at for p in parts),
    )


def expired_letter(parts: Sequence[StoredPart], timeout_s: float) -> DeadLetter:
    """An incomplete set, given up on: every part's bytes, in arrival order."""
    last = parts[-1]
    pnos = sorted({p.pno for p in parts})
    return DeadLetter(
        last.topic,
        b"".join(p.raw for p in parts),
        last.received_at,
        DeadReason.HJ212_INCOMPLETE_SPLIT,
        f"split packet CN={last.cn} QN={last.qn or '-'}: parts {pnos} of {last.pnum} "
        f"arrived within {timeout_s:g} s",
        last.mn,
    )

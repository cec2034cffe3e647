"""Reassemble HJ 212 split packets (Flag D bit, PNUM/PNO). Pure: the caller owns the clock.

Parts are held — unacknowledged, so a crash loses nothing — until all ``PNUM`` parts of
one (MN, CN, QN) have arrived, then released together in PNO order. A set still
incomplete after ``timeout_s`` is released as expired, to be dead-lettered with every
part's bytes. A repeated PNO (a redelivery) is kept aside and released with its set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from offsite.ingest.codecs.hj212 import Packet

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

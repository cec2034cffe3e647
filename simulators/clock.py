"""The simulators' clock: device timestamps for a run, on the wall clock or replayed."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from offsite.simulators.scenarios import Fleet

LOOP_SLICE_S = 0.05


def realtime_ticks(
    rate_s: float, duration_s: float | None, stop: threading.Event, pump: Callable[[float], None]
) -> Iterator[datetime]:
    """Wall-clock ticks on the ``rate_s`` grid; a late wake-up skips ticks (a real gap).

    Waits by calling ``pump(seconds)`` — the transport's network loop — so acks,
    responses and keepalives flow between ticks.
    """
    first: float | None = None
    last: float | None = None
    while not stop.is_set():
        now = time.time()
        tick = math.floor(now / rate_s) * rate_s
        if last is not None and tick <= last:
            pump(min(max(last + rate_s - now, 0.0), LOOP_SLICE_S))
            continue
        first = tick if first is None else first
        if duration_s is not None and tick >= first + duration_s - 1e-9:
            return
        last = tick
        yield datetime.fromtimestamp(tick, UTC)


def replay_ticks(
    fleet: Fleet, duration_s: float | None, start: datetime | None, stop: threading.Event
) -> Iterator[datetime]:
    """Device time from ``start`` (or the fleet's) in ``rate_s`` steps, as fast as asked."""
    t0 = fleet.start if start is None else start
    k = 0
    while not stop.is_set():
        if duration_s is not None and k * fleet.rate_s >= duration_s - 1e-9:
            return
        yield t0 + timedelta(seconds=k * fleet.rate_s)
        k += 1

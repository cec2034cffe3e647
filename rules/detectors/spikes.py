"""A series whose spikes have become many times more frequent than they usually are."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import (
    DAY_S,
    Batch,
    Hits,
    State,
    as_selectors,
    learning_weight,
    partnered,
)
from offsite.rules.detectors.spike import Spike


@lru_cache(maxsize=16)
def _probe(history: int, z: float) -> Spike:
    """What counts as a spike here: one that came and went, no floor from the median."""
    return Spike(history=history, z=z, rel_floor=0.0, returns=True)


@dataclass(frozen=True, slots=True)
class SpikeRate:
    """Judges how often a series spikes, not each spike. Some series spike by nature
    (a spike now and then is part of them, and ``spike`` on a channel without a limit
    learns that); a failing contact or a sensor about to go makes them come many times
    as often. A spike here is a value ``z`` robust deviations from the median of the
    ``history`` values before it that the next value left again (``spike`` with
    ``returns``, without a floor from the median: a generic channel's zero is arbitrary).

    Spikes are counted with a weight e^(-age / ``hours``), age in device time (an
    outage ages them too); they are expected at the series' own long-run rate (a
    running mean while young, weighted over ``days`` after, never below one spike in
    ``days``). Raised when the weighted count is at least ``min_count`` and ``k``
    times what is expected, so a few spikes close together by chance are not, and a
    series that spikes often for good becomes its own normal again within days. A
    channel once seen with ``context`` partners is not judged (nor counted, the cost of
    a window median saved): a process channel spikes with its load.
    Memory: 4 bytes of weighted count, 8 of rate, 4 of readings judged, 8 of the newest
    reading's time and 1 flag per series.
    """

    kind: ClassVar[str] = "spike_rate"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    history: int = 30
    z: float = 8.0
    hours: float = 12.0
    days: float = 3.0
    k: float = 4.0
    min_count: float = 4.0
    context: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        as_selectors(self)
        if self.history < 10 or self.z <= 0 or self.hours <= 0 or self.days <= 0:
            raise ValueError("spike_rate needs history ≥ 10, z > 0, hours > 0, days > 0")
        if self.k <= 1 or self.min_count <= 1:
            raise ValueError("spike_rate needs k > 1 and min_count > 1")

    @property
    def bytes_per_series(self) -> int:
        return 25

    def new_state(self, capacity: int) -> State:
        return State(
            capacity,
            recent=(np.float32, 0.0),  # spikes, each weighted e^(-age / hours)
            rate=(np.float64, 0.0),  # the long-run spikes per second
            n=(np.int32, 0),  # how many readings it has been judged on
            at=(np.float64, np.nan),  # device time of the series' newest reading
            partnered=(np.bool_, False),  # ever seen with partners: a process channel
        )

    def __call__(self, b: Batch, state: State | None) -> Hits:
        assert state is not None
        hit, score = np.zeros(b.n, dtype=bool), np.full(b.n, np.nan)
        # a process channel spikes with its load: never judged, so not learnt either
        lone = np.flatnonzero(~partnered(b, state["partnered"]))
        if not lone.size:
            return Hits(hit, score)
        sub = b if lone.size == b.n else b.take(lone)
        r = sub.rows
        came = _probe(self.history, self.z)(sub, None)
        spike = came.hit.astype(np.float64)  # the reading before the newest, gone again
        seen = np.isfinite(came.score)  # enough history to tell
        interval = sub.reporting_interval()
        last = state["at"][r]
        age = np.where(np.isnan(last), 0.0, np.maximum(sub.t - last, 0.0))
        recent = state["recent"][r] * np.exp(-age / (self.hours * 3600.0)) + spike
        state["at"][r] = np.fmax(last, sub.t)
        rate = state["rate"][r]
        expected = np.fmax(rate, 1.0 / (self.days * DAY_S)) * self.hours * 3600.0
        hit[lone] = seen & (recent >= self.min_count) & (recent >= self.k * expected)
        score[lone] = np.where(seen, recent / expected, np.nan)
        # learn: a running mean while young, then weighted over ``days``
        u = np.flatnonzero(seen)
        if u.size:
            ru, iu = r[u], interval[u]
            # (learnt per reading: an outage is not time seen without a spike)
            n = state["n"][ru].astype(np.int64) + 1
            a = learning_weight(n, iu, self.days)
            state["rate"][ru] = rate[u] + a * (spike[u] / iu - rate[u])
            state["n"][ru] = np.minimum(n, np.iinfo(np.int32).max)
        state["recent"][r] = recent
        return Hits(hit, score)

    def describe(self, value: float, score: float, limit: float) -> str:
        return (
            f"{value:g}: {score:.1f} times as many spikes as usual over the last "
            f"{self.hours:g} hours"
        )

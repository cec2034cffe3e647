"""A value far from what the series usually shows at this time of day."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import DAY_S, Batch, Hits, State, as_selectors, partnered


@dataclass(frozen=True, slots=True)
class Seasonal:
    """Judges a reading against the series' own day: a profile of ``bins`` bins of the
    day (each bin at least one reporting interval wide), every bin an exponentially
    weighted level over the last ``days`` days and its own typical departure from that
    level. A daily pattern's steps and peaks come where they always come, so they are not
    judged; a jump of the day's high, a peak that does not come, a day held flat, a
    level shift on the cycle are. A series that reports for a few days only, or has no
    cycle, meets the other rules only (``min_days`` days of a bin before it is judged).

    A bin is as wide as the interval the series is seen to report at when that is longer
    than its registered one: a 5-minute series registered at 60 s learns its day at its
    own pace, not five times slower.

    The departure is scaled by the larger of the bin's spread and the series' spread
    over all bins (a bin seen a few times has a noisy spread), never below ``abs_floor``.
    Every valid reading teaches the profile, flagged or not: a series that wanders from
    day to day (a random walk, a slow drift of the process) widens its own spreads and
    is not judged by a profile it does not keep (capping what flagged values teach
    raised 16 times the false episodes on such series, ``offsite eval --generic``).

    With ``context`` partners (``["@flow", "@concentration"]``), a channel that has them
    is learnt but not judged: it belongs to a process whose load, not the clock, says
    what it should read (``stat`` judges it along that load; on the plant model a
    profile of the day raised 0.28–0.54 false alerts per clean device-day). A lone
    channel, whose device reports nothing to explain it by, is judged by its own day.
    Once seen with partners a channel stays one of a process: when the plant stops its
    partners go invalid, and every channel judged by the clock then fired at once.
    """

    kind: ClassVar[str] = "seasonal"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    bins: int = 24
    days: float = 3.0
    z: float = 6.0
    min_days: float = 2.0
    abs_floor: float = 1e-3
    context: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        as_selectors(self)
        if self.bins < 1 or self.days <= 0 or self.z <= 0 or self.min_days < 0:
            raise ValueError("seasonal needs bins ≥ 1, days > 0, z > 0, min_days ≥ 0")

    @property
    def history(self) -> int:
        return 1 if self.context else 0

    @property
    def bytes_per_series(self) -> int:
        # level, spread and days seen (float32) per bin; the series' spread; partnered
        return 12 * self.bins + 9

    def new_state(self, capacity: int) -> State:
        return State(
            capacity,
            level=(np.float32, np.nan, self.bins),
            spread=(np.float32, np.nan, self.bins),
            seen=(np.float32, 0.0, self.bins),  # days' worth of readings seen in the bin
            all_spread=(np.float64, np.nan),
            partnered=(np.bool_, False),  # ever seen with partners: a process channel
        )

    def __call__(self, b: Batch, state: State | None) -> Hits:
        assert state is not None
        r = b.rows
        ok = b.valid & np.isfinite(b.x)
        interval = b.reporting_interval()
        width = np.maximum(DAY_S / self.bins, interval)  # a bin holds one reading at least
        k = (np.mod(b.t, DAY_S) // width).astype(np.int64) % self.bins
        level = state["level"][r, k].astype(np.float64)
        spread = state["spread"][r, k].astype(np.float64)
        seen = state["seen"][r, k].astype(np.float64)
        all_spread = state["all_spread"][r]
        scale = np.fmax(np.fmax(spread, all_spread), self.abs_floor)
        dep = b.x - level
        with np.errstate(invalid="ignore"):
            score = np.abs(dep) / scale
            judged = ok & (seen >= self.min_days) & np.isfinite(score)
            judged &= ~partnered(b, state["partnered"])  # a process channel: its load says
            hit = judged & (score > self.z)
        # learn: a bin's readings of one day weigh 1/days together
        per_day = np.maximum(width / interval, 1.0)  # readings of one bin in one day
        a = 1.0 / (self.days * per_day)
        first = ok & np.isnan(level)
        new_level = np.where(first, b.x, level + a * dep)
        absdev = np.abs(dep)
        new_spread = np.where(
            first, np.nan, np.where(np.isnan(spread), absdev, spread + a * (absdev - spread))
        )
        a_all = np.minimum(interval / (self.days * DAY_S), 1.0)
        new_all = np.where(
            np.isnan(all_spread) & ~first, absdev, all_spread + a_all * (absdev - all_spread)
        )
        u = np.flatnonzero(ok)
        if u.size:
            ru, ku = r[u], k[u]
            state["level"][ru, ku] = new_level[u]
            state["spread"][ru, ku] = new_spread[u]
            state["seen"][ru, ku] = seen[u] + 1.0 / per_day[u]
            state["all_spread"][ru] = np.where(np.isfinite(new_all[u]), new_all[u], all_spread[u])
        return Hits(hit, np.where(judged, score, np.nan))

    def describe(self, value: float, score: float, limit: float) -> str:
        return f"{value:g} is {score:.1f} deviations from what the series shows at this time of day"

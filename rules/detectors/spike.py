"""``spike``: a value far from its window's robust centre (median and MAD).

Robust by construction: the outlier looked for must not be able to move the yardstick
it is measured with, as it would a mean and a standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import (
    DAY_S,
    MAD_TO_SIGMA,
    MEAN_ABS_TO_SIGMA,
    Batch,
    Hits,
    State,
    against_load,
    as_selectors,
    last_valid,
    nanmean_rows,
    nanmedian_rows,
)

SEEN_GIVE = 0.1  # ``seen_days``: how far past the span the days covered is still within it


def _robust_centre(window: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, MAD and count of the non-NaN values of each row."""
    med = nanmedian_rows(window)
    mad = nanmedian_rows(np.abs(window - med[:, None]))
    return med, mad, (~np.isnan(window)).sum(axis=1)


@dataclass(frozen=True, slots=True)
class Spike:
    """A value far from the median of its window, in robust (MAD) units, that got there
    at once.

    The scale has a floor (``rel_floor`` of the median, at least ``abs_floor``; for a
    series resting on one value, its mean absolute deviation) so a quiet, quantised
    series does not turn the smallest wiggle into a spike. A spike arrives in one
    reading: the jump from the last valid value must be at least ``jump`` of the
    departure from the median, so a ramp (a start-up, a shut-down, soot blowing) that
    walks away from its median step by step is not one. With ``context``
    partners (e.g. ``["@flow", "@concentration"]``), a value that is a spike on its own
    is judged again with the load they share taken out (``against_load``): a load ramp
    every channel shares is the process, a jump on one channel alone is not. The
    partners only ever explain a jump away: a channel that did not move is never made a
    spike by a partner that did (an exceedance or a dilution on a partner).

    With ``returns``, a spike is a value that came *and went*: the reading before the
    newest is judged against the window before it, and is a spike only if the newest
    is back within ``z`` / 2 deviations of that window's median. One reading later, but
    a step that stays (a square wave's daily rise, a level shift: ``stat`` and
    ``seasonal`` judge those) is not raised as a spike as well.

    With ``seen_days``, a value the series reached on two of its last ``seen_days`` days
    (UTC days of device time), as high or as low, give or take a tenth of that span, is
    not a spike: a burst as large as the ones it shows every day is what it does,
    however quiet the half hour before it (a load balancer's error counts, mostly 0,
    burst to 3 most days). The daily highs and lows are kept per series (``seen_days`` +
    1 each: 96 bytes at 3), in memory only: empty again after a restart.
    """

    kind: ClassVar[str] = "spike"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    history: int = 30
    z: float = 8.0
    min_history: int = 10
    rel_floor: float = 0.02
    abs_floor: float = 1e-3
    jump: float = 0.5
    context: tuple[str, ...] = ()
    returns: bool = False
    seen_days: int = 0

    def __post_init__(self) -> None:
        as_selectors(self)
        if (
            not isinstance(self.seen_days, int)
            or isinstance(self.seen_days, bool)
            or self.seen_days < 0
            or self.seen_days == 1
        ):
            raise ValueError("spike seen_days must be a whole number of days: 0 (off) or ≥ 2")

    def new_state(self, capacity: int) -> State | None:
        if not self.seen_days:
            return None
        k = self.seen_days + 1  # today's, and each of the days before
        return State(
            capacity,
            day=(np.int64, -1, k),  # the day each slot holds (device time, days since epoch)
            top=(np.float64, np.nan, k),
            low=(np.float64, np.nan, k),
        )

    def _seen_before(
        self, state: State, rows: np.ndarray, value: np.ndarray, t: np.ndarray
    ) -> np.ndarray:
        """Whether each value lies within what its series reached on two of the
        ``seen_days`` days before its own (as high and as low), give or take
        ``SEEN_GIVE`` of that span: a burst of 2.97 where two days went to 2.95 is one
        of them."""
        day = np.floor(t / DAY_S).astype(np.int64)
        held = state["day"][rows]
        past = (held >= 0) & (held < day[:, None]) & (held >= (day - self.seen_days)[:, None])
        top = np.sort(np.where(past, state["top"][rows], -np.inf), axis=1)[:, -2]
        low = np.sort(np.where(past, state["low"][rows], np.inf), axis=1)[:, 1]
        give = SEEN_GIVE * (top - low)  # -inf while fewer than two days are known
        return (value <= top + give) & (value >= low - give)

    def _learn_days(self, b: Batch, state: State) -> None:
        """The newest valid value into its day's high and low."""
        ok = np.flatnonzero(b.valid & np.isfinite(b.x))
        if not ok.size:
            return
        r, x = b.rows[ok], b.x[ok]
        day = np.floor(b.t[ok] / DAY_S).astype(np.int64)
        slot = day % (self.seen_days + 1)
        new = state["day"][r, slot] != day
        state["top"][r, slot] = np.where(new, x, np.fmax(state["top"][r, slot], x))
        state["low"][r, slot] = np.where(new, x, np.fmin(state["low"][r, slot], x))
        state["day"][r, slot] = day

    def _unless_seen(
        self, hits: Hits, b: Batch, state: State | None, value: np.ndarray, t: np.ndarray
    ) -> Hits:
        """``hits`` with the values the series reached on two of its last days marked
        routine (still onsets to the rule's own routine: a daily burst that stops being
        raised keeps counting as the day's routine); the newest value learnt."""
        if state is None:
            return hits
        routine = None
        k = np.flatnonzero(hits.hit)
        if k.size:
            routine = np.zeros(hits.hit.shape[0], dtype=bool)
            routine[k] = self._seen_before(state, b.rows[k], value[k], t[k])
        self._learn_days(b, state)
        return replace(hits, routine=routine)

    def _returned(self, b: Batch) -> Hits:
        """The reading before the newest, judged as a spike that the newest left."""
        w = b.valid_window()[:, max(b.window.shape[1] - self.history - 1, 0) :]
        cand, before = w[:, -1], w[:, :-1]
        centre = _robust_centre(before)
        score, step = self._score(cand, before, centre)
        hit = self._hit(score, step)
        # whether the newest is back: judged only where the one before is a spike (the
        # window's centre is the same; a row's verdict depends on that row alone)
        k = np.flatnonzero(hit)
        if k.size:
            med, mad, cnt = centre
            back, _ = self._score(b.x[k], before[k], (med[k], mad[k], cnt[k]))
            hit[k] = np.nan_to_num(back, nan=np.inf) <= self.z / 2
        return Hits(hit & b.valid, score, cand)

    def _score(
        self,
        x: np.ndarray,
        w: np.ndarray,
        centre: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Robust deviations of ``x`` from the median of ``w``, and of its jump from the
        last valid value of ``w`` (NaN where too few values are known); ``centre``:
        ``_robust_centre(w)`` when the caller has it."""
        med, mad, cnt = _robust_centre(w) if centre is None else centre
        scale = np.maximum(
            MAD_TO_SIGMA * mad, np.maximum(self.rel_floor * np.abs(med), self.abs_floor)
        )
        rest = np.flatnonzero(mad == 0)
        if rest.size:
            # a series resting on one value more than half the time (counts at 0, a
            # quantised reading) has no MAD: its mean absolute deviation stands in for it
            # (Iglewicz and Hoaglin's rule), so its usual departures are not spikes and
            # a burst still is, a second one in the window too
            dev = np.abs(w[rest] - med[rest, None])
            with np.errstate(invalid="ignore"):
                mean_ad = nanmean_rows(dev)
            scale[rest] = np.fmax(scale[rest], MEAN_ABS_TO_SIGMA * np.nan_to_num(mean_ad))
        last = last_valid(w)
        with np.errstate(invalid="ignore"):
            score = np.abs(x - med) / scale
            step = np.abs(x - last) / scale
        score = np.where((cnt >= self.min_history) & np.isfinite(x), score, np.nan)
        return score, step

    def _hit(self, score: np.ndarray, step: np.ndarray) -> np.ndarray:
        s = np.nan_to_num(score, nan=0.0)
        return (s > self.z) & (np.nan_to_num(step, nan=np.inf) >= self.jump * s)

    def __call__(self, b: Batch, state: State | None) -> Hits:
        if self.returns:
            h = self._returned(b)
            assert h.value is not None
            return self._unless_seen(h, b, state, h.value, b.wt[:, -1])
        w = b.valid_window()[:, b.window.shape[1] - self.history :]
        score, step = self._score(b.x, w)
        hit = self._hit(score, step)
        if self.context and hit.any():
            # judged again, the shared load taken out, only where it is a spike alone
            idx = np.flatnonzero(hit)
            sub = b.take(idx)
            x2, w2 = against_load(sub, sub.x, w[idx])
            s2, j2 = self._score(x2, w2)
            hit[idx] = self._hit(s2, j2)
            score[idx] = np.where(np.isfinite(s2), np.minimum(score[idx], s2), score[idx])
        return self._unless_seen(Hits(hit, score), b, state, b.x, b.t)

    def describe(self, value: float, score: float, limit: float) -> str:
        against = " (its partner channels' load taken out)" if self.context else ""
        return f"{value:g} is {score:.1f} robust deviations from the recent median{against}"

"""Statistical detectors: spikes, stuck sensors, drift, and a generic one for any series.

All of them are robust by construction (medians, MADs, absolute deviations): the
outlier a detector is looking for must not be able to move the yardstick it is
measured with, as it would a mean and a standard deviation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import Batch, Hits, State, nanmedian_rows

MAD_TO_SIGMA = 1.4826
MEAN_ABS_TO_SIGMA = 1.2533  # E|X - mu| = sigma * sqrt(2/pi) for a normal law


def _robust_centre(window: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, MAD and count of the non-NaN values of each row."""
    med = nanmedian_rows(window)
    mad = nanmedian_rows(np.abs(window - med[:, None]))
    return med, mad, (~np.isnan(window)).sum(axis=1)


@dataclass(frozen=True, slots=True)
class Spike:
    """A value far from the median of its window, in robust (MAD) units.

    The scale has a floor (``rel_floor`` of the median, at least ``abs_floor``) so a
    quiet, quantised series does not turn the smallest wiggle into a spike.
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

    def new_state(self, capacity: int) -> State | None:
        return None

    def __call__(self, b: Batch, state: State | None) -> Hits:
        w = b.valid_window()[:, b.window.shape[1] - self.history :]
        med, mad, cnt = _robust_centre(w)
        scale = np.maximum(
            MAD_TO_SIGMA * mad, np.maximum(self.rel_floor * np.abs(med), self.abs_floor)
        )
        with np.errstate(invalid="ignore"):
            score = np.abs(b.x - med) / scale
        score = np.where((cnt >= self.min_history) & np.isfinite(b.x), score, np.nan)
        return Hits(np.nan_to_num(score, nan=0.0) > self.z, score)

    def describe(self, value: float, score: float, limit: float) -> str:
        return f"{value:g} is {score:.1f} robust deviations from the recent median"


@dataclass(frozen=True, slots=True)
class Flatline:
    """A stuck sensor: the same value ``count`` times in a row (恒值), or a variance
    collapse — the last ``count`` values move less than ``collapse`` × the series' own
    usual step (a slow EWMA of |Δx|, learnt while the series behaves)."""

    kind: ClassVar[str] = "flatline"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    count: int = 10
    collapse: float = 0.1
    learn: int = 120  # readings before the usual step is trusted

    @property
    def history(self) -> int:
        return self.count - 1

    def new_state(self, capacity: int) -> State | None:
        return State(capacity, step=(np.float64, np.nan), n=(np.int64, 0))

    def __call__(self, b: Batch, state: State | None) -> Hits:
        assert state is not None
        k = self.count - 1
        recent = b.valid_window()[:, b.window.shape[1] - k :]
        seq = np.concatenate([recent, b.x[:, None]], axis=1)
        filled = ~np.isnan(seq).any(axis=1)
        same = filled & (recent == b.x[:, None]).all(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            moved = np.nanmean(np.abs(np.diff(seq, axis=1)), axis=1)
        step, n = state["step"][b.rows], state["n"][b.rows]
        trusted = (n >= self.learn) & (step > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = moved / step
        collapsed = filled & trusted & (ratio < self.collapse)
        hit = (same | collapsed) & np.isfinite(b.x)
        # learn the usual step only from behaving data, so a collapse cannot teach
        # the detector that collapse is normal
        last = recent[:, -1]
        # winsorised at 5× the usual step, so one spike cannot inflate the yardstick and
        # make the ordinary steps after it look like a collapse
        d = np.minimum(np.abs(b.x - last), np.where(np.isfinite(step), 5.0 * step, np.inf))
        learnable = np.isfinite(d) & ~hit
        alpha = 1.0 / np.minimum(n + 1, self.learn)
        new_step = np.where(np.isnan(step), d, step + alpha * (d - step))
        state["step"][b.rows] = np.where(learnable, new_step, step)
        state["n"][b.rows] = n + learnable
        score = np.where(same, float(self.count), np.where(np.isfinite(ratio), ratio, np.nan))
        return Hits(hit, score)

    def describe(self, value: float, score: float, limit: float) -> str:
        if score >= self.count:
            return f"value stuck at {value:g} for {self.count}+ consecutive readings"
        return f"the last {self.count} values barely move ({score:.2f}× the series' usual step)"


@dataclass(frozen=True, slots=True)
class Stat:
    """Generic detector for any numeric series, whatever it measures: a robust z-score
    against an EWMA of the level and of the absolute deviation (adaptive thresholds).

    It knows no limits and no physics, so it runs on channels the engine has no other
    rule for. It judges before it learns, and learns nothing from a value it flags,
    so a sustained shift keeps firing until ``adapt`` readings have passed.
    """

    kind: ClassVar[str] = "stat"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    history: ClassVar[int] = 0
    z: float = 7.0
    alpha: float = 0.05
    adapt: int = 60  # after this many flagged readings in a row, accept the new level
    min_history: int = 30
    rel_floor: float = 0.005
    abs_floor: float = 1e-3

    def new_state(self, capacity: int) -> State | None:
        return State(
            capacity,
            mu=(np.float64, np.nan),
            dev=(np.float64, np.nan),
            n=(np.int64, 0),
            run=(np.int64, 0),
        )

    def __call__(self, b: Batch, state: State | None) -> Hits:
        assert state is not None
        r = b.rows
        mu, dev, n, run = state["mu"][r], state["dev"][r], state["n"][r], state["run"][r]
        scale = np.maximum(
            MEAN_ABS_TO_SIGMA * np.nan_to_num(dev),
            np.maximum(self.rel_floor * np.abs(np.nan_to_num(mu)), self.abs_floor),
        )
        with np.errstate(invalid="ignore"):
            score = np.abs(b.x - mu) / scale
        judged = (n >= self.min_history) & np.isfinite(b.x)
        score = np.where(judged, score, np.nan)
        hit = np.nan_to_num(score, nan=0.0) > self.z
        ok = np.isfinite(b.x) & b.valid
        run = np.where(hit, run + 1, 0)
        learn = ok & (~hit | (run >= self.adapt))
        new_mu = np.where(np.isnan(mu), b.x, mu + self.alpha * (b.x - mu))
        d = np.abs(b.x - np.where(np.isnan(mu), b.x, mu))
        new_dev = np.where(np.isnan(dev), d, dev + self.alpha * (d - dev))
        state["mu"][r] = np.where(learn, new_mu, mu)
        state["dev"][r] = np.where(learn, new_dev, dev)
        state["n"][r] = n + learn
        state["run"][r] = run  # reset by the first reading that does not hit
        return Hits(hit, score)

    def describe(self, value: float, score: float, limit: float) -> str:
        return f"{value:g} is {score:.1f} adaptive deviations from the series' usual level"


@dataclass(frozen=True, slots=True)
class Drift:
    """A sustained, steady departure from the series' own level: an analyser whose zero
    or span is running away.

    Over the last ``history`` valid values, a least-squares trend that is both steep —
    more than ``max_rate`` of the series' level per hour — and clean (R² ≥ ``min_r2``:
    the values line up on it). Load changes and analyser wander move a channel by a few
    per cent an hour and not in a straight line; a bad analyser drifts at tens of per
    cent an hour, steadily. Scale-free, so one setting fits every pollutant. (A slow
    drift of a few per cent a day needs a reference channel or a calibration check:
    see the README.)
    """

    kind: ClassVar[str] = "drift"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    history: int = 20
    max_rate: float = 0.3
    min_r2: float = 0.8
    min_history: int = 15

    def new_state(self, capacity: int) -> State | None:
        return None

    def __call__(self, b: Batch, state: State | None) -> Hits:
        k = self.history
        v = np.concatenate([b.valid_window()[:, b.window.shape[1] - k + 1 :], b.x[:, None]], axis=1)
        t = np.concatenate([b.wt[:, b.wt.shape[1] - k + 1 :], b.t[:, None]], axis=1)
        ok = np.isfinite(v) & np.isfinite(t)
        cnt = ok.sum(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            th = (np.where(ok, t, np.nan) - b.t[:, None]) / 3600.0  # hours, ≤ 0
            tm = np.nanmean(th, axis=1)
            vm = np.nanmean(np.where(ok, v, np.nan), axis=1)
            dt = np.where(ok, th - tm[:, None], 0.0)
            dv = np.where(ok, v - vm[:, None], 0.0)
            sxx = (dt * dt).sum(axis=1)
            sxy = (dt * dv).sum(axis=1)
            syy = (dv * dv).sum(axis=1)
            slope = sxy / sxx
            r2 = (sxy * sxy) / (sxx * syy)
            rate = slope / np.abs(vm)
        judged = (cnt >= self.min_history) & np.isfinite(rate) & np.isfinite(b.x)
        hit = judged & (np.abs(rate) > self.max_rate) & (np.nan_to_num(r2) >= self.min_r2)
        return Hits(hit, np.where(judged, rate, np.nan))

    def describe(self, value: float, score: float, limit: float) -> str:
        return (
            f"{value:g}: a steady trend of {score:+.0%} of the level per hour (drifting analyser)"
        )

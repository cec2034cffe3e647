"""Detectors: small pure objects with one vectorised contract.

``detector(x, window, limit, valid) -> (hit, score)`` where, for n series at once,
``x`` is each series' new value (float[n]), ``window`` its previous values oldest →
newest with NaN where empty (float[n, W]), ``limit`` the permit limit (NaN if none),
``valid`` whether the value's HJ 212 flag is N. ``hit`` is bool[n]; ``score`` is
float[n], larger = worse, NaN where the detector had nothing to judge. No detector
reads a clock or keeps state, so the same inputs always give the same answer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

MAD_TO_SIGMA = 1.4826


class Detector(Protocol):
    name: ClassVar[str]
    severity: ClassVar[str]

    def __call__(self, x: np.ndarray, window: np.ndarray, limit: np.ndarray,
                 valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def describe(self, value: float, score: float, limit: float) -> str: ...


@dataclass(frozen=True, slots=True)
class Exceedance:
    """A valid value above the point's permit limit. Invalid-flagged data is not judged."""

    name: ClassVar[str] = "exceedance"
    severity: ClassVar[str] = "major"
    critical_ratio: float = 2.0

    def __call__(self, x: np.ndarray, window: np.ndarray, limit: np.ndarray,
                 valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = x / limit
        hit = valid & np.isfinite(ratio) & (ratio > 1.0)
        return hit, np.where(np.isfinite(ratio), ratio, np.nan)

    def describe(self, value: float, score: float, limit: float) -> str:
        return f"{value:g} exceeds the permit limit {limit:g} ({score:.2f}×)"


@dataclass(frozen=True, slots=True)
class Flatline:
    """The same value ``count`` times in a row: a stuck sensor or a frozen logger."""

    name: ClassVar[str] = "flatline"
    severity: ClassVar[str] = "warning"
    count: int = 10

    def __call__(self, x: np.ndarray, window: np.ndarray, limit: np.ndarray,
                 valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = self.count - 1
        if window.shape[1] < k:
            raise ValueError(f"flatline needs a window of ≥ {k} values")
        recent = window[:, window.shape[1] - k:]
        filled = ~np.isnan(recent).any(axis=1)
        same = (recent == x[:, None]).all(axis=1)
        hit = filled & same & np.isfinite(x)
        # score: how many of the recent values equal the new one (≥ count when hit)
        run = (window == x[:, None]).sum(axis=1) + 1
        return hit, np.where(np.isfinite(x), run.astype(float), np.nan)

    def describe(self, value: float, score: float, limit: float) -> str:
        return f"value stuck at {value:g} for {self.count}+ consecutive readings"


@dataclass(frozen=True, slots=True)
class Spike:
    """A value far from the median of its window, in robust (MAD) units.

    Median/MAD is not moved by the outlier it is looking for, unlike mean/stdev. The
    scale has a floor (``rel_floor`` of the median) so a quiet, quantised series
    does not turn the smallest wiggle into a spike.
    """

    name: ClassVar[str] = "spike"
    severity: ClassVar[str] = "warning"
    z: float = 8.0
    min_history: int = 10
    rel_floor: float = 0.02
    abs_floor: float = 1e-3

    def __call__(self, x: np.ndarray, window: np.ndarray, limit: np.ndarray,
                 valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = x.shape[0]
        if n == 0:
            return np.zeros(0, dtype=bool), np.zeros(0)
        enough = (~np.isnan(window)).sum(axis=1) >= self.min_history
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows → NaN
            med = np.nanmedian(window, axis=1)
            mad = np.nanmedian(np.abs(window - med[:, None]), axis=1)
        scale = np.maximum(MAD_TO_SIGMA * mad,
                           np.maximum(self.rel_floor * np.abs(med), self.abs_floor))
        with np.errstate(invalid="ignore"):
            score = np.abs(x - med) / scale
        score = np.where(enough & np.isfinite(x), score, np.nan)
        hit = np.nan_to_num(score, nan=0.0) > self.z
        return hit, score

    def describe(self, value: float, score: float, limit: float) -> str:
        return f"{value:g} is {score:.1f} robust deviations from the recent median"


@dataclass(frozen=True, slots=True)
class Offline:
    """No reading for ``intervals`` expected reporting intervals (judged on a timer)."""

    name: ClassVar[str] = "offline"
    severity: ClassVar[str] = "major"
    intervals: float = 5.0

    def silent(self, last_t: np.ndarray, interval_s: np.ndarray, now: float) -> np.ndarray:
        return (now - last_t) > self.intervals * interval_s


WINDOW_DETECTORS: tuple[type, ...] = (Exceedance, Flatline, Spike)

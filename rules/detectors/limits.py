"""Detectors that compare values with known bounds: permit limits and physics."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import Batch, Hits, State


@dataclass(frozen=True, slots=True)
class Exceedance:
    """A valid value above the point's permit limit; score is value / limit.

    Invalid-flagged data is not judged (MEE 2022 No. 21): that is exactly why false
    maintenance flags are a fraud pattern, caught by ``flag_abuse`` instead.
    """

    kind: ClassVar[str] = "exceedance"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = True
    judges_invalid: ClassVar[bool] = False
    history: ClassVar[int] = 0

    def new_state(self, capacity: int) -> State | None:
        return None

    def __call__(self, b: Batch, state: State | None) -> Hits:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = b.x / b.limit
        ok = np.isfinite(ratio)
        return Hits(ok & (ratio > 1.0), np.where(ok, ratio, np.nan))

    def describe(self, value: float, score: float, limit: float) -> str:
        return f"{value:g} exceeds the permit limit {limit:g} ({score:.2f}×)"


@dataclass(frozen=True, slots=True)
class Implausible:
    """A value no instrument in working order can report: negative concentration,
    O2 above 21 %, pH outside 0–14. Judged whatever the flag: an impossible value is
    evidence of a fault or an edit even when flagged. ``margin`` tolerates the small
    negative readings analysers give around zero (in the channel's unit)."""

    kind: ClassVar[str] = "implausible"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = True
    judges_invalid: ClassVar[bool] = True
    history: ClassVar[int] = 0
    margin: float = 0.5

    def new_state(self, capacity: int) -> State | None:
        return None

    def __call__(self, b: Batch, state: State | None) -> Hits:
        below = b.lo - b.x - self.margin
        above = b.x - b.hi - self.margin
        score = np.maximum(below, above)
        hit = np.isfinite(b.x) & (score > 0)
        return Hits(hit, np.where(np.isfinite(score), score, np.nan))

    def describe(self, value: float, score: float, limit: float) -> str:
        return f"{value:g} is physically impossible for this channel (outside by {score:g})"


@dataclass(frozen=True, slots=True)
class Clamp:
    """Values parked just under the limit with too little variance (贴限排放).

    Hit when the last ``count`` valid values (this one included) all sit in
    [``low`` × limit, limit] and their coefficient of variation is below ``max_cv``.
    A real process that runs close to its limit still moves with load; an analyser
    whose output is being capped does not.
    """

    kind: ClassVar[str] = "clamp"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    count: int = 20
    low: float = 0.85
    max_cv: float = 0.01

    @property
    def history(self) -> int:
        return self.count - 1

    def new_state(self, capacity: int) -> State | None:
        return None

    def __call__(self, b: Batch, state: State | None) -> Hits:
        k = self.count - 1
        recent = np.concatenate(
            [b.valid_window()[:, b.window.shape[1] - k :], b.x[:, None]], axis=1
        )
        lim = b.limit[:, None]
        with np.errstate(invalid="ignore"):
            near = ((recent >= self.low * lim) & (recent <= lim)).all(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = recent.mean(axis=1)
            cv = recent.std(axis=1) / mean
        hit = near & np.isfinite(cv) & (cv < self.max_cv)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(np.isfinite(cv), mean / b.limit, np.nan)
        return Hits(hit, score)

    def describe(self, value: float, score: float, limit: float) -> str:
        return (
            f"{self.count} values held at {score:.0%} of the limit {limit:g} with almost "
            f"no variation"
        )

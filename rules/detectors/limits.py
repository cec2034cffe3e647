"""Detectors that compare values with known bounds: permit limits and physics."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import Batch, Hits, State, nanmedian_rows


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


O2_AIR = 21.0


def o2_corrected(
    x: np.ndarray, o2: np.ndarray, o2ref: np.ndarray, max_o2: float = 19.5
) -> np.ndarray:
    """C × (21 − O2ref) / (21 − O2) where the point has a reference O2 (``o2ref``
    broadcast against ``x``); unchanged where it has none; NaN where it has one but the
    O2 is missing or too close to air to convert."""
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = (O2_AIR - o2ref) / (O2_AIR - o2)
    factor = np.where(np.isfinite(o2) & (o2 < max_o2), factor, np.nan)
    return np.where(np.isfinite(o2ref), x * factor, x)


@dataclass(frozen=True, slots=True)
class Clamp:
    """Values parked just under the limit (贴限排放), judged on what the limit judges:
    at a point with a reference O2, the O2-corrected values.

    Hit when the last ``count`` valid values (this one included) all sit in
    [``low`` × limit, limit] and either barely move (coefficient of variation below
    ``max_cv``: a capped analyser output) or are parked high in the band with a spread
    small against the limit (mean ≥ ``park`` × limit, standard deviation below
    ``spread`` × limit: a logger that keeps the corrected value under the limit while
    the raw value still moves with O2). A real process close to its limit moves with
    the load, by several per cent of the limit.

    Sooner, after ``fast`` values: the same test on the last ``fast`` values, when
    their steps are also quiet against the series' own: root mean square step below
    ``quiet`` × the robust sd of its steps over the ``own`` values before them. A
    parked value stops moving the moment it is parked, while a process reaching its
    limit keeps its noise. A series whose steps were mostly zero before (quantised,
    or already parked) has no noise to compare with and waits for ``count``.
    """

    kind: ClassVar[str] = "clamp"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ("o2",)
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    count: int = 20
    low: float = 0.85
    max_cv: float = 0.01
    park: float = 0.93
    spread: float = 0.02
    fast: int = 0
    quiet: float = 0.2
    own: int = 24

    def __post_init__(self) -> None:
        if self.count < 2 or (self.fast and not 3 <= self.fast <= self.count):
            raise ValueError("clamp needs count ≥ 2 and, if set, 3 ≤ fast ≤ count")
        if self.fast and (self.own < 8 or not 0 < self.quiet < 1):
            raise ValueError("clamp needs own ≥ 8 and 0 < quiet < 1 with fast")

    @property
    def history(self) -> int:
        return max(self.count - 1, self.fast - 1 + self.own if self.fast else 0)

    def new_state(self, capacity: int) -> State | None:
        return None

    def _parked(self, recent: np.ndarray, limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(in the band and parked, mean / limit) for each row of ``recent``."""
        lim = limit[:, None]
        with np.errstate(invalid="ignore"):
            near = ((recent >= self.low * lim) & (recent <= lim)).all(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = recent.mean(axis=1)
            sd = recent.std(axis=1)
            cv = sd / mean
        tight = np.isfinite(cv) & (cv < self.max_cv)
        with np.errstate(invalid="ignore", divide="ignore"):
            parked = (mean >= self.park * limit) & (sd < self.spread * limit)
            score = np.where(np.isfinite(cv), mean / limit, np.nan)
        return near & (tight | parked), score

    def __call__(self, b: Batch, state: State | None) -> Hits:
        h = self.history
        vals = np.concatenate([b.valid_window()[:, b.window.shape[1] - h :], b.x[:, None]], axis=1)
        o2 = b.partners.get("o2")
        if o2 is not None:
            o2s = np.concatenate([o2.window[:, o2.window.shape[1] - h :], o2.x[:, None]], axis=1)
            vals = o2_corrected(vals, o2s, b.o2ref[:, None])
        hit, score = self._parked(vals[:, vals.shape[1] - self.count :], b.limit)
        if self.fast:
            recent = vals[:, vals.shape[1] - self.fast :]
            fast, fscore = self._parked(recent, b.limit)
            # the steps' test only where the last ``fast`` values are parked (few rows;
            # each row's verdict is its own)
            k = np.flatnonzero(fast)
            if k.size:
                vk, rk = vals[k], recent[k]
                before = np.diff(
                    vk[:, vk.shape[1] - self.fast - self.own : vk.shape[1] - self.fast + 1],
                    axis=1,
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    # robust sd of the steps before (NaN steps, where a value was missing,
                    # left out)
                    own_sd = nanmedian_rows(np.abs(before)) / 0.6745
                    enough = np.isfinite(before).sum(axis=1) * 2 >= self.own
                    rms = np.sqrt(np.mean(np.diff(rk, axis=1) ** 2, axis=1))
                with np.errstate(invalid="ignore"):
                    fast[k] = enough & (own_sd > 0) & (rms < self.quiet * own_sd)
            score = np.where(fast & ~hit, fscore, score)
            hit = hit | fast
        return Hits(hit, score)

    def describe(self, value: float, score: float, limit: float) -> str:
        return (
            f"values held at {score:.0%} of the limit {limit:g} "
            f"(O2-corrected where the point has a reference O2) with almost no variation"
        )

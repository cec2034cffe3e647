"""Detectors for data that is there but not honest or not complete: copied segments,
flag abuse, missing data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import Batch, Hits, State, flag_table

# Fixed odd multipliers for the segment fingerprint (a seeded draw, so fingerprints are
# the same in every process and after a restart).
_MULT = np.random.default_rng(212).integers(1, 2**62, size=64, dtype=np.int64).astype(
    np.uint64
) * np.uint64(2) + np.uint64(1)


@dataclass(frozen=True, slots=True)
class CopyPaste:
    """A segment that repeats an earlier one of the same series (fabricated data).

    Each reading leaves a fingerprint of the last ``k`` steps (first differences,
    quantised to the logger's ``decimals``), so a copy shifted by a constant offset
    matches too. Fingerprints are 32 bits, so that a chance match costs about one false
    alert per 1,000 device-days. Real measurements never repeat ``k`` steps to the last
    digit; segments with fewer than ``min_moves`` non-zero steps are not fingerprinted,
    so a flatline (another detector's business) does not match itself.

    Memory is what limits this detector (10,000 stacks have 30,000 limited channels),
    so only every ``stride``-th fingerprint of a series is kept, over ``lookback``
    readings (12 hours at 1-minute data: 360 of them), and every reading is looked up:
    a copied segment matches at every position, so within ``stride`` readings one of
    its fingerprints meets a kept one. Which readings are kept is staggered across
    series. A lookup scans the series' whole ring: this is the catalog's costliest
    detector.
    """

    kind: ClassVar[str] = "copy_paste"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    k: int = 5
    lookback: int = 720
    decimals: int = 3
    min_moves: int = 4
    stride: int = 2

    @property
    def history(self) -> int:
        return self.k

    @property
    def slots(self) -> int:
        return max(1, self.lookback // self.stride)

    def new_state(self, capacity: int) -> State | None:
        # seen: readings of the series so far (uncapped: it also says which ones are
        # kept); pos: the ring's next slot; kept: slots filled
        return State(
            capacity,
            fp=(np.uint32, 0, self.slots),
            pos=(np.int64, 0),
            kept=(np.int64, 0),
            seen=(np.int64, 0),
        )

    def __call__(self, b: Batch, state: State | None) -> Hits:
        assert state is not None
        seq = np.concatenate(
            [b.valid_window()[:, b.window.shape[1] - self.k :], b.x[:, None]], axis=1
        )
        with np.errstate(invalid="ignore"):
            q = np.round(np.diff(seq, axis=1) * 10**self.decimals)
        usable = np.isfinite(q).all(axis=1)
        qi = np.where(np.isfinite(q), q, 0).astype(np.int64).astype(np.uint64)
        usable &= (qi != 0).sum(axis=1) >= self.min_moves
        h = (qi * _MULT[: self.k]).sum(axis=1)
        h32 = ((h ^ (h >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        fp = np.where(usable, h32 | np.uint32(1), np.uint32(0))
        rows = b.rows
        ring, pos, kept = state["fp"], state["pos"][rows], state["kept"][rows]
        seen = state["seen"][rows]
        phase = rows % self.stride
        hit = np.zeros(b.n, dtype=bool)
        lag = np.full(b.n, np.nan)
        look = np.flatnonzero(usable & (seen > self.k) & (kept > 0))
        if look.size:
            found = ring[rows[look]] == fp[look, None]
            cand = np.flatnonzero(found.any(axis=1))
            for c in cand.tolist():  # matches are rare: check their age exactly
                i = int(look[c])
                newest = int(seen[i]) - 1  # the newest kept reading: the last in phase
                newest -= (newest - int(phase[i])) % self.stride
                age_slots = (pos[i] - np.flatnonzero(found[c]) - 1) % self.slots  # 0 = newest
                age = int(seen[i]) - (newest - self.stride * age_slots)  # in readings
                ok = age[(age > self.k) & (age_slots < kept[i])]
                if ok.size:
                    hit[i] = True
                    lag[i] = float(ok.min())
        keep = seen % self.stride == phase
        kr = rows[keep]
        ring[kr, pos[keep]] = fp[keep]
        state["pos"][kr] = (pos[keep] + 1) % self.slots
        state["kept"][kr] = np.minimum(kept[keep] + 1, self.slots)
        state["seen"][rows] = seen + 1
        return Hits(hit, lag)

    def describe(self, value: float, score: float, limit: float) -> str:
        return (
            f"the last {self.k + 1} values repeat, step for step, a segment "
            f"{score:.0f} readings earlier"
        )


@dataclass(frozen=True, slots=True)
class FlagAbuse:
    """An unusual share of maintenance/fault/manual flags (M, D, S by default) among the
    last ``history`` readings: invalid data escapes the exceedance rules, so false flags
    are how exceedances get hidden. Routine calibration (C) is left out by default."""

    kind: ClassVar[str] = "flag_abuse"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = True
    history: int = 30
    flags: str = "MDS"
    max_share: float = 0.2

    def new_state(self, capacity: int) -> State | None:
        return None

    def __call__(self, b: Batch, state: State | None) -> Hits:
        table = flag_table(self.flags)
        w = b.wflag[:, b.wflag.shape[1] - self.history + 1 :]
        seen = (w != 0).sum(axis=1) + 1
        now = table[b.flag]
        marked = table[w].sum(axis=1) + now
        share = marked / seen
        full = seen >= self.history
        hit = full & (share > self.max_share) & now
        return Hits(hit, np.where(full, share, np.nan))

    def describe(self, value: float, score: float, limit: float) -> str:
        return f"{score:.0%} of the last {self.history} readings carry {'/'.join(self.flags)} flags"


@dataclass(frozen=True, slots=True)
class Capture:
    """Data-capture rate below ``min_rate``: readings arrive, but too few of them.

    The rate is the expected interval over an EWMA of the observed gaps between
    device times (``span`` readings), so it works at any reporting interval without a
    window of timestamps, and a long hole drops it at once when data resumes.
    """

    kind: ClassVar[str] = "capture"
    scope: ClassVar[str] = "device"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = True
    history: ClassVar[int] = 0
    min_rate: float = 0.75
    span: int = 8
    min_history: int = 10

    def new_state(self, capacity: int) -> State | None:
        return State(capacity, gap=(np.float64, np.nan), last=(np.float64, np.nan), n=(np.int64, 0))

    def __call__(self, b: Batch, state: State | None) -> Hits:
        assert state is not None
        r = b.rows
        gap, last, n = state["gap"][r], state["last"][r], state["n"][r]
        d = np.maximum(b.t - last, 0.0)
        d = np.where(np.isfinite(d), d, b.interval)
        alpha = 2.0 / (self.span + 1)
        gap = np.where(np.isnan(gap), b.interval, gap + alpha * (d - gap))
        rate = np.minimum(b.interval / gap, 1.0)
        state["gap"][r], state["last"][r], state["n"][r] = gap, b.t, n + 1
        judged = n >= self.min_history
        return Hits(judged & (rate < self.min_rate), np.where(judged, rate, np.nan))

    def describe(self, value: float, score: float, limit: float) -> str:
        return f"data-capture rate {score:.0%} (expected ≥ {self.min_rate:.0%})"


@dataclass(frozen=True, slots=True)
class Offline:
    """No reading for ``intervals`` expected reporting intervals; judged on a timer
    against receive times (see the engine), not in rounds."""

    kind: ClassVar[str] = "offline"
    intervals: float = 5.0

    def silent(self, last_t: np.ndarray, interval_s: np.ndarray, now: float) -> np.ndarray:
        return (now - last_t) > self.intervals * interval_s

"""``drift`` (tens of per cent an hour, steadily) and ``slow_drift`` (a per cent or two an
hour over days), both judged against the partner channels' load."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import (
    MAD_TO_SIGMA,
    Batch,
    Hits,
    State,
    against_load,
    as_selectors,
    nanmean_rows,
    nanmedian_rows,
)


def _two_levels_sse(y: np.ndarray) -> float:
    """The squared residual of the best fit of ``y`` (in time order) by two levels, one
    before a split and one after it (at least 2 values each side)."""
    m = y.shape[0]
    if m < 4:
        return np.inf
    c1, c2 = np.cumsum(y), np.cumsum(y * y)
    k = np.arange(2, m - 1)  # values before the split
    before = c2[k - 1] - c1[k - 1] ** 2 / k
    rest1, rest2 = c1[-1] - c1[k - 1], c2[-1] - c2[k - 1]
    after = rest2 - rest1**2 / (m - k)
    return float(np.min(before + after))


@dataclass(frozen=True, slots=True)
class Drift:
    """A sustained, steady departure from the series' own level: an analyser whose zero
    or span is running away.

    Over the last ``history`` valid values, a least-squares trend that is both steep —
    more than ``max_rate`` of the series' level per hour — and clean (R² ≥ ``min_r2``:
    the values line up on it). Load changes and analyser wander move a channel by a few
    per cent an hour and not in a straight line; a bad analyser drifts at tens of per
    cent an hour, steadily. Scale-free, so one setting fits every pollutant. With
    ``context`` partners, the trend is of the value with the shared load taken out
    (``against_load``), so a load ramp is not a drift. Slow drift (per cent an hour over
    days) is ``slow_drift``'s.

    A step inside the window (a fuel change, a recalibration) also fits a steep line
    cleanly; where two levels (the best split of the window) fit better than the line,
    it is a step, not a drift. On 5- or 10-minute data the window spans hours, and such
    a step stays in it for longer than the rule's ``for``. A vetoed reading carries no
    score; one that was no candidate (steep, but not clean) keeps its signed rate, so a
    rules file's ``clear_score`` (a rise, as the score is signed) holds a firing drift on
    while the rate stays above it, step or not.
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
    context: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        as_selectors(self)

    def new_state(self, capacity: int) -> State | None:
        return None

    def __call__(self, b: Batch, state: State | None) -> Hits:
        k = self.history
        x, w = against_load(b, b.x, b.valid_window()[:, b.window.shape[1] - k + 1 :], fit=True)
        v = np.concatenate([w, x[:, None]], axis=1)
        t = np.concatenate([b.wt[:, b.wt.shape[1] - k + 1 :], b.t[:, None]], axis=1)
        ok = np.isfinite(v) & np.isfinite(t)
        cnt = ok.sum(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            th = (np.where(ok, t, np.nan) - b.t[:, None]) / 3600.0  # hours, ≤ 0
            tm = nanmean_rows(th)
            vm = nanmean_rows(np.where(ok, v, np.nan))
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
        for i in np.flatnonzero(hit).tolist():  # candidates are rare
            if _two_levels_sse(v[i][ok[i]]) < syy[i] - sxy[i] * sxy[i] / sxx[i]:
                hit[i] = False  # a step: no drift's score either (a rule's clear_score
                judged[i] = False  # would hold a firing drift on through it)
        return Hits(hit, np.where(judged, rate, np.nan))

    def describe(self, value: float, score: float, limit: float) -> str:
        return (
            f"{value:g}: a steady trend of {score:+.0%} of the level per hour (drifting analyser)"
        )


@dataclass(frozen=True, slots=True)
class SlowDrift:
    """An analyser creeping away from its partner channels by a per cent or two an hour,
    over hours to days (dirty optics, an ageing cell): too slow for ``drift``.

    Each device hour leaves one point: the median of its ``BINS`` five-minute means of
    log value and of log load (the geometric mean of its ``context`` partners, see
    ``against_load``), so soot blowing or a calibration inside the hour does not move
    it. When an hour closes, the value is explained by the load over the reference
    hours (the last ``hours``, minus the newest ``span``): log value = a + β log load,
    and the residual judged. A drift is a steady, monotonic departure; load wander and
    the daily cycle leave the residual flat, an analyser's own wander turns back, and a
    fuel change or a recalibration is a step. So the verdict needs all of:

    - the newest ``newest`` hours' residual ≥ ``z`` robust sds of the residuals of the
      oldest ``ref_hours`` reference hours (the series' own spread; a creep that began
      since has crept into the newer ones) and ≥ ``min_rise`` away from their median;
    - the newest ``span`` hours rising (or falling) in that direction, Mann–Kendall
      τ ≥ ``min_tau``;
    - no one hour of the last ``step_hours`` moving more than the typical hour by
      ``max_step`` of the departure (a step is not a creep; nor is the flat stretch
      after one). Hours without a point (a stop, maintenance) are bridged: the move
      across the gap, less what the typical hour moves over it, is one move, so a
      fuel change taken during a stop is a step too.

    A partner that crept is not this channel's fault: it moves the load, so a channel
    that follows the load seems to leave it the other way (at a treated-water outlet,
    one concentration creeping made its flat siblings cry wolf). A departure is taken
    as a partner's when a partner the same rule judges (a *peer*) has departed the other
    way at least ``explained_by`` times as far, itself beyond half ``z``: the channel that
    moved departs the most. This assumes one channel moved: two creeping together look
    exactly like their flat sibling creeping the other way (a residual against the
    others cannot tell them apart), and the sibling is raised. With two partners or
    more only: of a pair, either may have moved.

    The verdict stands until the next hour closes. Judged only with partners, after
    ``min_ref`` reference hours. Which partners explain a channel is the rules file's:
    flue-gas concentrations move with the stack's flow at once; a treated-water
    outlet's quality lags its inflow by hours, its other concentrations do not.

    Memory per series: 12 bytes per hour kept (``hours``: 576 bytes at 48), 10 per
    five-minute bin of the open hour (120), 21 more: 717 bytes (``bytes_per_series``).
    """

    kind: ClassVar[str] = "slow_drift"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    peers: ClassVar[bool] = True  # reads its context partners' departures (``Batch.peers``)
    history: ClassVar[int] = 0
    BINS: ClassVar[int] = 12  # five-minute bins per hour
    context: tuple[str, ...] = ("@flow", "@concentration")
    hours: int = 48
    span: int = 8
    min_ref: int = 24
    newest: int = 2
    z: float = 6.0
    min_rise: float = 0.03
    min_tau: float = 0.6
    max_step: float = 0.2
    step_hours: int = 48
    ref_hours: int = 24  # the oldest reference hours the departure is measured from
    min_share: float = 0.5  # of the hour's expected readings, for the hour to count
    explained_by: float = 1.5  # a peer departed the other way this many times as far

    def __post_init__(self) -> None:
        as_selectors(self)
        if not (2 < self.span < self.hours and self.min_ref >= 3 and 0 < self.newest <= self.span):
            raise ValueError("slow_drift needs 2 < span < hours, min_ref ≥ 3, 0 < newest ≤ span")
        if self.min_ref > self.hours - self.span or not self.span <= self.step_hours <= self.hours:
            raise ValueError("slow_drift needs min_ref ≤ hours − span, span ≤ step_hours ≤ hours")
        if not 3 <= self.ref_hours <= self.hours - self.span:
            raise ValueError("slow_drift needs 3 ≤ ref_hours ≤ hours − span")

    @property
    def bytes_per_series(self) -> int:
        """What one series keeps (the ``State`` arrays' item sizes)."""
        st = self.new_state(1)
        assert st is not None
        return sum(a.itemsize * (a.size // a.shape[0]) for a in st.arrays.values())

    def new_state(self, capacity: int) -> State | None:
        return State(
            capacity,
            hour=(np.int64, -1),
            bx=(np.float32, 0.0, self.BINS),  # sums of log value per five-minute bin …
            bl=(np.float32, 0.0, self.BINS),  # … of log load …
            bn=(np.int16, 0, self.BINS),  # … and how many readings
            hx=(np.float32, np.nan, self.hours),
            hl=(np.float32, np.nan, self.hours),
            hh=(np.int32, -1, self.hours),
            verdict=(np.float64, np.nan),
            rise=(np.float32, np.nan),  # the departure judged (log), for the peers
            hit=(np.bool_, False),
        )

    def __call__(self, b: Batch, state: State | None) -> Hits:
        assert state is not None
        r = b.rows
        load = b.partners.get("load")
        lx = load.x if load is not None else np.full(b.n, np.nan)
        h = np.floor(b.t / 3600.0).astype(np.int64)
        hour = state["hour"][r]
        closing = (hour >= 0) & (h > hour)
        if closing.any():
            cl = np.flatnonzero(closing)
            rc = r[cl]
            bn = state["bn"][rc].astype(np.float64)
            n = bn.sum(axis=1)
            need = self.min_share * 3600.0 / np.maximum(b.interval[cl], 1.0)
            full = n >= need
            with np.errstate(invalid="ignore", divide="ignore"):
                mx = nanmedian_rows(np.where(bn > 0, state["bx"][rc] / bn, np.nan))
                ml = nanmedian_rows(np.where(bn > 0, state["bl"][rc] / bn, np.nan))
            c = np.flatnonzero(full)
            if c.size:
                rf, hc = rc[c], hour[cl][c]
                slot = hc % self.hours
                state["hx"][rf, slot] = mx[c]
                state["hl"][rf, slot] = ml[c]
                state["hh"][rf, slot] = hc
                verdict, hit, rise = self._judge(state, rf, hc)
                state["verdict"][rf], state["hit"][rf], state["rise"][rf] = verdict, hit, rise
            gone = rc[~full]  # a thin hour: no verdict on it
            state["verdict"][gone], state["hit"][gone], state["rise"][gone] = np.nan, False, np.nan
            state["bx"][rc], state["bl"][rc], state["bn"][rc] = 0.0, 0.0, 0
        fresh = hour < 0
        state["hour"][r] = np.where(fresh | closing, h, hour)
        ok = b.valid & (b.x > 0) & np.isfinite(b.x) & (lx > 0) & (h >= state["hour"][r])
        k = np.flatnonzero(ok)
        if k.size:
            rk = r[k]
            bin_ = np.floor((b.t[k] % 3600.0) / (3600.0 / self.BINS)).astype(np.int64)
            bin_ = np.clip(bin_, 0, self.BINS - 1)
            state["bx"][rk, bin_] += np.log(b.x[k])
            state["bl"][rk, bin_] += np.log(lx[k])
            state["bn"][rk, bin_] += 1
        hit = state["hit"][r] & np.isfinite(b.x)
        if b.peers is not None and hit.any():
            k = np.flatnonzero(hit)
            hit[k] = ~self._a_peers(state, r[k], b.peers[k])
        return Hits(hit, state["verdict"][r].copy())

    def _a_peers(self, state: State, rows: np.ndarray, peers: np.ndarray) -> np.ndarray:
        """Whether a peer departed the other way ``explained_by`` times as far as
        ``rise``: the departure is then that peer's, seen through the load it moves.
        With k partners a creep r of one moves the others' load by r / k, so they
        depart by about −β r / k (β ≤ 2): at 1.5 times as far, with k ≥ 2, the one
        that crept is never taken for its peers', and they are for it (at k = 2 while
        their β ≤ 1.33). Only a peer judged on the last hour, departed beyond half ``z``
        itself, counts: one silent for days, or a noisy one's swing, explains nothing."""
        rise = state["rise"][rows]
        at = np.maximum(peers, 0)
        fresh = (peers >= 0) & (state["hour"][at] >= state["hour"][rows][:, None] - 1)
        with np.errstate(invalid="ignore"):
            fresh &= np.abs(state["verdict"][at]) >= self.z / 2
            theirs = np.where(fresh, state["rise"][at], np.nan)
            other = theirs * np.sign(rise)[:, None] <= -self.explained_by * np.abs(rise)[:, None]
        return other.any(axis=1) & ((peers != -1).sum(axis=1) >= 2)

    def _judge(
        self, state: State, rows: np.ndarray, closed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The verdict on the hours up to ``closed``: (robust z of the newest hours'
        residual, hit, the residual's departure)."""
        age = np.arange(self.hours)
        want = closed[:, None] - age[None, :]
        slot = want % self.hours
        have = state["hh"][rows[:, None], slot] == want
        x = np.where(have, state["hx"][rows[:, None], slot], np.nan).astype(np.float64)
        lo = np.where(have, state["hl"][rows[:, None], slot], np.nan).astype(np.float64)
        have &= np.isfinite(x) & np.isfinite(lo)
        recent, ref = have & (age < self.span), have & (age >= self.span)
        nr, nf = recent.sum(axis=1), ref.sum(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            # value explained by load over the reference hours
            mx = nanmean_rows(np.where(ref, x, np.nan))
            ml = nanmean_rows(np.where(ref, lo, np.nan))
            dl = np.where(ref, lo - ml[:, None], 0.0)
            dx = np.where(ref, x - mx[:, None], 0.0)
            var = (dl * dl).sum(axis=1) / np.maximum(nf, 1)
            beta = (dl * dx).sum(axis=1) / np.maximum(nf, 1) / var
            beta = np.clip(np.where((var > 1e-5) & np.isfinite(beta), beta, 1.0), 0.0, 2.0)
            e = np.where(have, x - beta[:, None] * lo, np.nan)
            # the departure is measured from the oldest ``ref_hours`` of the reference:
            # a creep that began since has crept into its newer hours (their median
            # and spread follow it, and the creep would hide behind itself)
            older = np.cumsum(ref[:, ::-1], axis=1)[:, ::-1]  # reference hours this old or older
            eref = np.where(ref & (older <= self.ref_hours), e, np.nan)
            med = nanmedian_rows(eref)
            sigma = np.maximum(MAD_TO_SIGMA * nanmedian_rows(np.abs(eref - med[:, None])), 1e-3)
            newest = nanmedian_rows(np.where(recent & (age < self.newest), e, np.nan))
            rise = newest - med
            # the newest span hours, oldest → newest: monotonic, and no one step
            er = np.where(recent, e, np.nan)[:, self.span - 1 :: -1]
            pair = np.sign(er[:, None, :] - er[:, :, None])  # [i, j] = sign(e_j − e_i)
            upper = np.triu(np.ones((self.span, self.span), dtype=bool), 1)[None]
            known = upper & np.isfinite(pair)
            tau = np.where(known, pair, 0.0).sum(axis=(1, 2)) / np.maximum(known.sum((1, 2)), 1)
            up = np.sign(rise)
            # a step: one hour's move beyond the typical hourly move of the last
            # ``step_hours`` (a creep moves every hour alike; a fuel change or a
            # recalibration some hours ago moved one), against the whole departure.
            # Hours without a point (a stop, maintenance, a thin hour) are bridged: a
            # move across a gap counts, less what the typical hour moves over it, so
            # a step taken while nothing was judged is still a step
            ew = np.where(have & (age < self.step_hours), e, np.nan)[:, self.step_hours - 1 :: -1]
            order = np.argsort(np.isnan(ew), axis=1, kind="stable")  # known hours first
            ew = np.take_along_axis(ew, order, axis=1)
            gap = np.diff(np.where(np.isnan(ew), np.nan, order.astype(np.float64)), axis=1)
            d = np.diff(ew, axis=1) * up[:, None]
            typical = nanmedian_rows(d / gap)
            step = np.nanmax(d - typical[:, None] * gap, axis=1)
            score = rise / sigma
        judged = (nr >= self.span - 1) & (nf >= self.min_ref) & np.isfinite(score)
        hit = judged & (np.abs(score) >= self.z) & (np.abs(rise) >= self.min_rise)
        hit &= tau * up >= self.min_tau
        hit &= np.nan_to_num(step, nan=np.inf) <= self.max_step * np.abs(rise)
        return np.where(judged, score, np.nan), hit, np.where(judged, rise, np.nan)

    def describe(self, value: float, score: float, limit: float) -> str:
        return (
            f"{value:g}: {score:+.1f} robust sds away from its partner channels, creeping "
            f"steadily over the last {self.span} hours (slow analyser drift)"
        )

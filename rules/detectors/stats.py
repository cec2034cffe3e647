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

from offsite.rules.detectors.base import (
    FLAG_N,
    Batch,
    Hits,
    State,
    against_load,
    as_selectors,
    nanmean_rows,
    nanmedian_rows,
    partnered,
)

MAD_TO_SIGMA = 1.4826
MEAN_ABS_TO_SIGMA = 1.2533  # E|X - mu| = sigma * sqrt(2/pi) for a normal law


def _robust_centre(window: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, MAD and count of the non-NaN values of each row."""
    med = nanmedian_rows(window)
    mad = nanmedian_rows(np.abs(window - med[:, None]))
    return med, mad, (~np.isnan(window)).sum(axis=1)


def _last_valid(w: np.ndarray) -> np.ndarray:
    """Each row's last non-NaN value (NaN for an empty row). Most rows end in one, so
    only the others are searched: a reversed-view argmax over every row was slow."""
    if w.shape[1] == 0:
        return np.full(w.shape[0], np.nan)
    last = w[:, -1].copy()
    gaps = np.flatnonzero(np.isnan(last))
    if gaps.size:
        filled = ~np.isnan(w[gaps])
        at = w.shape[1] - 1 - np.argmax(filled[:, ::-1], axis=1)
        last[gaps] = np.where(filled.any(axis=1), w[gaps, at], np.nan)
    return last


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

    def __post_init__(self) -> None:
        as_selectors(self)

    def new_state(self, capacity: int) -> State | None:
        return None

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
        last = _last_valid(w)
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
            return self._returned(b)
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
        return Hits(hit, score)

    def describe(self, value: float, score: float, limit: float) -> str:
        against = " (its partner channels' load taken out)" if self.context else ""
        return f"{value:g} is {score:.1f} robust deviations from the recent median{against}"


@dataclass(frozen=True, slots=True)
class Flatline:
    """A stuck sensor: the same value repeated longer than the series ever repeats by
    itself (恒值), or a variance collapse — the last ``count`` values move less than
    ``collapse`` × the series' own usual step (a slow EWMA of |Δx|).

    How long is "longer" is learnt from the series' own repeats, over about a day
    (``memory_s``): p0, the share of readings equal to the one before, and p1, the
    share of repeats followed by another one (a value near the middle of its
    quantisation step, or a slowly varying series, repeats in runs: p1 > p0). A run of r
    repeats starts at a reading with a chance of about p0·p1^(r−1); it is unusual when
    the series would show one that long less than ``rare`` times a day at its reporting
    interval. Never less than ``count`` values, nor less than ``margin`` × the longest
    run the series has ended by itself. Both yardsticks are learnt from behaving data
    once ``learn`` readings are in (during the learning, from everything: the rules'
    ``warm_up`` mutes those hits), so a flatline cannot teach the detector that
    flatlines are normal; a series that has never moved is not judged.
    """

    kind: ClassVar[str] = "flatline"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    count: int = 10
    collapse: float = 0.1
    learn: int = 120  # readings before the usual step is trusted
    rare: float = 0.001  # natural runs this long per series and day
    memory_s: float = 86400.0  # how far back the repeat statistics look (device time)
    prior: float = 5.0  # pseudo-repeats behind p1 (the white-noise value √2·p0)
    margin: float = 1.5

    @property
    def history(self) -> int:
        return self.count - 1

    def new_state(self, capacity: int) -> State | None:
        return State(
            capacity,
            step=(np.float64, np.nan),
            n=(np.int64, 0),
            seen=(np.float64, 0.0),  # decayed count of readings judged against the one before
            rep=(np.float64, 0.0),  # … of them equal to it (repeats) …
            rep2=(np.float64, 0.0),  # … and of repeats that followed a repeat
            run=(np.int64, 0),
            longest=(np.int64, 0),
            flagged=(np.bool_, False),
        )

    def _need(self, p0: np.ndarray, p1: np.ndarray, interval: np.ndarray) -> np.ndarray:
        """Repeats in a row that the series shows less than ``rare`` times a day."""
        per_day = 86400.0 / np.maximum(interval, 1e-9)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = 1.0 + np.ceil(np.log(self.rare / (per_day * p0)) / np.log(p1))
        r = np.where(per_day * p0 <= self.rare, 1.0, r)
        return np.where(p0 <= 0, 0.0, np.where((p0 >= 1) | (p1 >= 1), np.inf, r))

    def __call__(self, b: Batch, state: State | None) -> Hits:
        assert state is not None
        k = self.count - 1
        vw = b.valid_window()
        recent = vw[:, vw.shape[1] - k :]
        seq = np.concatenate([recent, b.x[:, None]], axis=1)
        filled = ~np.isnan(seq).any(axis=1)
        steps = np.diff(seq, axis=1)
        moved = nanmean_rows(np.abs(steps))
        step, n = state["step"][b.rows], state["n"][b.rows]
        run, seen = state["run"][b.rows], state["seen"][b.rows]
        rep, rep2 = state["rep"][b.rows], state["rep2"][b.rows]
        longest, flagged = state["longest"][b.rows], state["flagged"][b.rows]
        # runs are of valid readings: a flagged one (a routine calibration inside a stuck
        # run) neither counts nor breaks it, and the value before is the last valid one
        ok = b.valid
        last = _last_valid(vw)
        eq = ok & np.isfinite(b.x) & (b.x == last)
        # a run that ended by itself (never flagged) says how long this series repeats
        ended = ok & ~eq & (run > 0) & ~flagged
        length = run
        longest = np.where(ended, np.maximum(longest, run), longest)
        flagged = np.where(ok, flagged & eq, flagged)
        # repeats of the value before, this one included
        run = np.where(ok, np.where(eq, run + 1, 0), run)
        same = eq & (run >= k)  # its last k valid values equal it
        trusted = n >= self.learn
        with np.errstate(invalid="ignore", divide="ignore"):
            p0 = np.where(seen > 0, rep / seen, 0.0)
        # white noise on a grid repeats on at least √2·p0 once it has repeated (the
        # value is known to sit inside the step); a slow series, more: the data say
        white = np.minimum(np.sqrt(2.0) * p0, 1.0)
        p1 = np.maximum((rep2 + self.prior * white) / (rep + self.prior), white)
        need = self._need(p0, p1, b.interval)
        need = np.maximum(need, np.ceil(self.margin * longest))
        # judged on what is known so far while learning too (a plant that starts the
        # run stopped has few readings learnt when the rules' warm_up is over)
        need = np.maximum(need, self.count - 1)
        need = np.where(trusted & (seen <= 0), np.inf, need)  # never moved: no yardstick
        same &= run >= need
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = moved / step
        # exact repeats are judged by their run above, against how the series repeats
        # A collapse is values that still move, at most steps: where they mostly repeat,
        # the repeats say it, judged by how often the series repeats. (Four repeats and
        # one step of one quantum move 0.02× the usual step of a series that repeats 4 %
        # of the time: as a collapse they raised false alerts, as a run they are short.)
        stepped = (steps != 0).sum(axis=1) * 2 >= k
        collapsed = filled & trusted & (step > 0) & stepped & (ratio < self.collapse)
        hit = (same | collapsed) & np.isfinite(b.x)
        # learn the usual step only from behaving data, so a collapse cannot teach
        # the detector that collapse is normal; winsorised at 5× the usual step, so one
        # spike cannot inflate the yardstick and make ordinary steps look like a collapse
        d = np.minimum(np.abs(b.x - last), np.where(np.isfinite(step), 5.0 * step, np.inf))
        # (while learning, everything is learnt: the rules' warm_up mutes those hits)
        learnable = ok & np.isfinite(d) & (~hit | ~trusted)
        alpha = 1.0 / np.minimum(n + 1, self.learn)
        new_step = np.where(np.isnan(step), d, step + alpha * (d - step))
        state["step"][b.rows] = np.where(learnable, new_step, step)
        # The repeat statistics (decayed over ``memory_s`` of the series' own time) learn
        # a run when it ends: by itself, all of it; a flagged one, only the reading that
        # ended it. Learning repeats as they come would let a stuck value raise the bar
        # it is judged against while it is still short of it.
        decay = 1.0 - np.minimum(b.interval / self.memory_s, 1.0)
        closes = ok & ~eq & np.isfinite(b.x) & (np.isfinite(last) | ended)
        whole = np.where(ended, length, 0)
        f = np.where(closes, decay ** (whole + 1), 1.0)
        state["seen"][b.rows] = f * seen + np.where(closes, whole + 1, 0)
        state["rep"][b.rows] = f * rep + whole
        state["rep2"][b.rows] = f * rep2 + np.maximum(whole - 1, 0)
        state["n"][b.rows] = n + learnable
        state["run"][b.rows] = run
        state["longest"][b.rows] = longest
        state["flagged"][b.rows] = flagged | same
        score = np.where(same, run + 1.0, np.where(np.isfinite(ratio), ratio, np.nan))
        return Hits(hit, score)

    def describe(self, value: float, score: float, limit: float) -> str:
        if score >= self.count:
            return (
                f"value stuck at {value:g} for {score:.0f} consecutive readings "
                f"(longer than this series ever repeats by itself)"
            )
        return f"the last {self.count} values barely move ({score:.2f}× the series' usual step)"


@dataclass(frozen=True, slots=True)
class Stat:
    """Generic detector for any numeric series, whatever it measures: a robust z-score
    of the reading against the level expected now (Brown's double exponential smoothing:
    an EWMA of the level and of its trend, so a series that follows a ramp is not judged
    against where it was) scaled by an EWMA of the absolute error (adaptive thresholds).

    It knows no limits and no physics, so it runs on channels the engine has no other
    rule for. It judges before it learns, and learns nothing from a value it flags,
    so a sustained shift keeps firing until ``adapt`` readings have passed. It looks for
    a level *shift*: a step, then a level. No reading of a run of hits may stand further
    away from the expected level than the level the run holds (its first reading, then
    an EWMA of its readings) by more than ``hold`` × ``z`` deviations; a value that keeps
    walking away reading after reading (a flow running down at a shut-down before its
    stop flag) is a ramp, and breaks the run.

    The scale never falls below the series' own quantisation step (the smallest
    non-zero change between readings seen so far, at least ``abs_floor``): a series
    sitting still on its logger's grid must move ``z`` steps, not one. A percentage of
    the level would mean nothing for an offset scale (°C, pH) and hid a shift of ten
    noise sds on a hot flue.

    With ``context`` partners (e.g. ``["@flow", "@concentration"]``), the expected level
    also moves with their shared load: by ``g`` per unit of log-load since the level was
    last learnt, ``g`` a regression of the series' change over ``span`` readings on the
    load's, learnt (about ``1/g_alpha`` readings of memory) from the readings it did not
    flag. A ramp the partners share is then the process and a step inside it is judged
    at once. The partners only ever explain a departure away: a reading is a hit only
    when it departs from the level expected both with and without the load, so a
    partner's own fault (an exceedance, a dilution) moving the load never makes this
    channel a hit. Only a large move — the load more than ``load_step`` away from now at
    some point of the last ``span`` readings: a start-up, a shut-down — leaves the
    reading unjudged (still learnt) for ``settle_s`` after: the channels that lag their
    load (flue-gas temperature, some 20 minutes) have made most of such a move by then.

    With ``lone = false`` a channel is judged only once it has been seen with partners
    (and stays judged when they go invalid): a lone channel is left to ``seasonal``,
    whose profile of the day expects a daily step where an EWMA level sees a shift each
    morning (``offsite eval --generic``, tune seeds 0–2: 162 → 87 episodes, inside
    labelled windows 61 → 92 %, anomalies found 35 → 33 of 45).
    """

    kind: ClassVar[str] = "stat"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    z: float = 7.0
    alpha: float = 0.05
    adapt: int = 60  # after this many flagged readings in a row, accept the new level
    min_history: int = 30
    abs_floor: float = 1e-3
    hold: float = 0.5
    context: tuple[str, ...] = ()
    load_step: float = 0.25
    span: int = 30  # readings over which the partners' load is watched
    settle_s: float = 1800.0
    g_alpha: float = 0.01
    lone: bool = True  # judge channels never seen with partners

    def __post_init__(self) -> None:
        as_selectors(self)
        if not self.lone and not self.context:
            raise ValueError("stat with lone = false needs context partners")

    @property
    def history(self) -> int:
        return self.span if self.context else 0

    def new_state(self, capacity: int) -> State | None:
        return State(
            capacity,
            mu=(np.float64, np.nan),
            trend=(np.float64, 0.0),  # the level's change per reading
            dev=(np.float64, np.nan),
            n=(np.int64, 0),
            run=(np.int64, 0),
            prev=(np.float64, np.nan),  # the level the run holds, as is …
            prev_adj=(np.float64, np.nan),  # … and along the load
            moved=(np.float64, np.nan),  # device time the partners' load last moved a lot
            last=(np.float64, np.nan),  # the last valid reading …
            quantum=(np.float64, np.inf),  # … and the smallest non-zero step from one
            ell=(np.float64, np.nan),  # log-load when the level was last learnt
            sxy=(np.float64, 0.0),  # EWMA of (change of x) × (change of log-load) …
            sxx=(np.float64, 0.0),  # … and of (change of log-load)², over ``span``
            partnered=(np.bool_, False),  # ever seen with partners
        )

    def _load(self, b: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log-load now, its change over ``span`` readings, whether it moved a lot
        within them); NaN / False without partners."""
        load = b.partners.get("load")
        if load is None:
            nan = np.full(b.n, np.nan)
            return nan, nan, np.zeros(b.n, dtype=bool)
        rel = load.window[:, load.window.shape[1] - self.span :]
        with np.errstate(invalid="ignore", divide="ignore"):
            big = (np.abs(np.log(rel)) > np.log1p(self.load_step)).any(axis=1)
            return np.log(load.x), -np.log(rel[:, 0]), big

    def __call__(self, b: Batch, state: State | None) -> Hits:
        assert state is not None
        r = b.rows
        mu, dev, n, run = state["mu"][r], state["dev"][r], state["n"][r], state["run"][r]
        last, quantum = state["last"][r], state["quantum"][r]
        ok = np.isfinite(b.x) & b.valid
        # the grid the series is reported on, learnt from the steps between valid
        # readings (any step, flagged by this rule or not, is a multiple of it)
        step = np.abs(b.x - last)
        quantum = np.where(ok & (step > 0), np.minimum(quantum, step), quantum)
        state["quantum"][r] = quantum
        state["last"][r] = np.where(ok, b.x, last)
        floor = np.where(np.isfinite(quantum), np.maximum(quantum, self.abs_floor), self.abs_floor)
        scale = np.maximum(MEAN_ABS_TO_SIGMA * np.nan_to_num(dev), floor)
        # the level expected now: the last one carried on along the series' own trend,
        # so a channel that follows a ramp (a lagging temperature) is not lagged behind
        trend = state["trend"][r]
        pred = mu + trend
        ell, dl, big = self._load(b)
        ell0, sxy, sxx = state["ell"][r], state["sxy"][r], state["sxx"][r]
        # … and along the partners' load since the level was learnt (v0: a load that
        # barely moved teaches no coupling)
        g = sxy / (sxx + 1e-4)
        shift = np.nan_to_num(g * (ell - ell0))
        with np.errstate(invalid="ignore"):
            plain = np.abs(b.x - pred)
            along = np.abs(b.x - pred - shift)
            score = np.minimum(plain, along) / scale
        moved = state["moved"][r]
        moved = np.where(big, b.t, moved)
        state["moved"][r] = moved
        moving = b.t - moved < self.settle_s  # False while NaN: never moved
        judged = (n >= self.min_history) & np.isfinite(b.x) & ~moving
        if not self.lone:  # a lone channel is seasonal's
            judged &= partnered(b, state["partnered"])
        score = np.where(judged, score, np.nan)
        far = np.nan_to_num(score, nan=0.0) > self.z
        # a step, then a level: no reading of a run goes on away from the expected level
        # (as is, or along the load) much further than the level the run holds, or it
        # is a ramp
        adj = b.x - shift
        prev, prev_adj = state["prev"][r], state["prev_adj"][r]
        way = np.sign(b.x - pred)
        with np.errstate(invalid="ignore"):
            kept = np.minimum(way * (b.x - prev), way * (adj - prev_adj))
        # (a flagged reading leaves nothing to compare with: a run carried through a
        # stop's flagged readings lets ``adapt`` take the level the plant restarts at)
        hit = far & ((run == 0) | ~(kept > self.hold * self.z * scale))
        a = self.alpha
        held = np.where((run == 0) | np.isnan(prev), b.x, prev + a * (b.x - prev))
        held_adj = np.where((run == 0) | np.isnan(prev_adj), adj, prev_adj + a * (adj - prev_adj))
        state["prev"][r] = np.where(ok, np.where(hit, held, prev), np.nan)
        state["prev_adj"][r] = np.where(ok, np.where(hit, held_adj, prev_adj), np.nan)
        run = np.where(hit, run + 1, 0)
        learn = ok & (~far | (run >= self.adapt))
        # Brown's double exponential smoothing (error-correction form): one ``alpha``
        # sets how fast both the level and its trend follow the series
        # (from the level as expected along the load, or as is, whichever came nearer:
        # a partner's own fault moving the load is not learnt as this channel's level)
        base = pred + np.where(along < plain, shift, 0.0)
        err = np.where(np.isnan(mu), 0.0, b.x - base)
        new_mu = np.where(np.isnan(mu), b.x, base + (2 * a - a * a) * err)
        d = np.abs(err)
        new_dev = np.where(np.isnan(dev), d, dev + a * (d - dev))
        state["trend"][r] = np.where(learn, trend + a * a * err, trend)
        state["mu"][r] = np.where(learn, new_mu, mu)
        state["dev"][r] = np.where(learn, new_dev, dev)
        state["ell"][r] = np.where(learn & np.isfinite(ell), ell, ell0)
        # the coupling to the load: the series' change over ``span`` readings against
        # the load's, from readings it did not flag
        c = b.window.shape[1] - self.span
        then = np.where(b.wflag[:, c] == FLAG_N, b.window[:, c], np.nan) if self.context else dl
        dx = b.x - then
        pair = learn & np.isfinite(dx) & np.isfinite(dl)
        ga = self.g_alpha
        state["sxy"][r] = np.where(pair, sxy + ga * (dx * dl - sxy), sxy)
        state["sxx"][r] = np.where(pair, sxx + ga * (dl * dl - sxx), sxx)
        state["n"][r] = n + learn
        state["run"][r] = run  # reset by the first reading that does not hit
        return Hits(hit, score)

    def describe(self, value: float, score: float, limit: float) -> str:
        return f"{value:g} is {score:.1f} adaptive deviations from the series' expected level"


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
    a step stays in it for longer than the rule's ``for``.
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

    The verdict stands until the next hour closes. Judged only with partners, after
    ``min_ref`` reference hours. Which partners explain a channel is the rules file's:
    flue-gas concentrations move with the stack's flow at once; a treated-water
    outlet's quality lags its inflow by hours, its other concentrations do not.

    Memory per series: 12 bytes per hour kept (``hours``: 576 bytes at 48), 10 per
    five-minute bin of the open hour (120), 17 more: 713 bytes (``bytes_per_series``).
    """

    kind: ClassVar[str] = "slow_drift"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
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
                verdict, hit = self._judge(state, rf, hc)
                state["verdict"][rf], state["hit"][rf] = verdict, hit
            gone = rc[~full]  # a thin hour: no verdict on it
            state["verdict"][gone], state["hit"][gone] = np.nan, False
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
        return Hits(hit, state["verdict"][r].copy())

    def _judge(
        self, state: State, rows: np.ndarray, closed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The verdict on the hours up to ``closed``: (robust z of the newest hours'
        residual, hit)."""
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
        return np.where(judged, score, np.nan), hit

    def describe(self, value: float, score: float, limit: float) -> str:
        return (
            f"{value:g}: {score:+.1f} robust sds away from its partner channels, creeping "
            f"steadily over the last {self.span} hours (slow analyser drift)"
        )

"""``stat``: a level shift on any numeric series, judged along its partners' load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import (
    FLAG_N,
    MEAN_ABS_TO_SIGMA,
    Batch,
    Hits,
    State,
    as_selectors,
    partnered,
)


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

    A shift whose run of hits lasts ``remember`` readings is remembered for
    ``recall_s``: the level it left (and the load then) and the step it made. A valid
    step back to that level, or back by that step (the level may have moved with the
    plant since), within half the step and ``z`` deviations, is the shift ending (a
    sensor put right, an offset taken out), not a new one: it raises nothing, and once
    it has held ``back_for`` readings it is the level (one reading back is neither
    raised nor learnt). One shift is one alert, not two (``offsite eval``, tune seeds
    0–5: 36 → 18 ``stat`` alerts on 18 shifts, nothing else changed). Forgotten at an
    invalid reading (a stop, a calibration: the plant starts anew), when the shift's
    own run ends before its level was learnt nearer the level before it than the one
    it held (a shift over by itself), and when the next shift that lasts takes its
    place. A step back scores as any other; only its hit is withheld.

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
    remember: int = 10  # readings a run of hits lasts before its shift is remembered …
    recall_s: float = 86400.0  # … for so long after
    back_for: int = 3  # readings back at the level before the shift, to take it again

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
            left=(np.float64, np.nan),  # the level the last shift left …
            left_ell=(np.float64, np.nan),  # … and the log-load it was learnt at
            size=(np.float64, np.nan),  # … and the step it made
            left_t=(np.float64, np.nan),  # … remembered at this device time
            backs=(np.int64, 0),  # readings back at that level in a row
            from_=(np.float64, np.nan),  # the level the run of hits going on left
            from_ell=(np.float64, np.nan),
            from_t=(np.float64, np.nan),  # … from this device time
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
        # a valid step back to the level the last shift left, or back by the step it
        # made (the level may have moved with the plant since), within half that step,
        # is that shift ending
        left, left_ell, size = state["left"][r], state["left_ell"][r], state["size"][r]
        with np.errstate(invalid="ignore"):
            gone = np.minimum(
                np.abs(b.x - left), np.abs(b.x - left - np.nan_to_num(g * (ell - left_ell)))
            )
            undone = np.minimum(np.abs(b.x - pred + size), np.abs(b.x - pred - shift + size))
            near = np.fmin(gone, undone) <= np.minimum(self.z * scale, 0.5 * np.abs(size))
            recent = b.t - state["left_t"][r] <= self.recall_s
        back = ok & far & (run == 0) & recent & near
        far &= ~back
        # … taken as the level once it holds for ``back_for`` readings (one reading
        # back is not yet the shift ending: it is neither raised nor learnt)
        backs = np.where(back, state["backs"][r] + 1, 0)
        state["backs"][r] = backs
        taken = back & (backs >= self.back_for)
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
        # a run that ends, before its level was learnt, on a reading nearer the level
        # before it than the level it held: a shift over by itself, and a step from
        # here is a new one
        with np.errstate(invalid="ignore"):
            nearer = np.abs(b.x - state["from_"][r]) < np.abs(b.x - prev)
        over = (run >= self.remember) & (run < self.adapt) & judged & ~far & nearer
        run = np.where(hit, run + 1, 0)
        # the level a run of hits left, kept once the run has lasted (a spike's is not);
        # forgotten at an invalid reading (a stop, a calibration: the plant starts anew)
        starts = hit & (run == 1)
        from_ = state["from_"][r] = np.where(starts, pred, state["from_"][r])
        from_ell = state["from_ell"][r] = np.where(starts, ell0, state["from_ell"][r])
        from_t = state["from_t"][r] = np.where(starts, b.t, state["from_t"][r])
        # (once per run, at its first valid hit from the ``remember``-th on)
        lasted = ok & hit & (run >= self.remember) & ~(state["left_t"][r] >= from_t)
        forget = taken | ~ok | over
        state["left"][r] = np.where(lasted, from_, np.where(forget, np.nan, left))
        state["left_ell"][r] = np.where(lasted, from_ell, np.where(forget, np.nan, left_ell))
        state["size"][r] = np.where(lasted, held - from_, np.where(forget, np.nan, size))
        state["left_t"][r] = np.where(lasted, b.t, np.where(forget, np.nan, state["left_t"][r]))
        learn = ok & (~far | (run >= self.adapt)) & ~back
        # Brown's double exponential smoothing (error-correction form): one ``alpha``
        # sets how fast both the level and its trend follow the series
        # (from the level as expected along the load, or as is, whichever came nearer:
        # a partner's own fault moving the load is not learnt as this channel's level)
        base = pred + np.where(along < plain, shift, 0.0)
        err = np.where(np.isnan(mu), 0.0, b.x - base)
        new_mu = np.where(np.isnan(mu), b.x, base + (2 * a - a * a) * err)
        d = np.abs(err)
        new_dev = np.where(np.isnan(dev), d, dev + a * (d - dev))
        # (a step back taken: level and trend start again from it)
        state["trend"][r] = np.where(taken, 0.0, np.where(learn, trend + a * a * err, trend))
        state["mu"][r] = np.where(taken, b.x, np.where(learn, new_mu, mu))
        state["dev"][r] = np.where(learn, new_dev, dev)
        state["ell"][r] = np.where((learn | taken) & np.isfinite(ell), ell, ell0)
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

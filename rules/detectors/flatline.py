"""``flatline``: a stuck sensor, by its runs of repeats against the series' own, or a
variance collapse against its usual step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import (
    Batch,
    Hits,
    State,
    nanmean_rows,
)


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
    ``warm_up`` must mute those hits, as the packaged 121 does), so a flatline cannot
    teach the detector that flatlines are normal; a series that has never moved is not
    judged.

    Runs are of valid readings: a flagged one (a routine calibration, a maintenance
    block of any length) neither counts nor breaks a run, and each value is compared
    with the last valid one, kept in the state.
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
            calls=(np.int64, 0),  # readings judged, of any flag (as the rules' warm_up counts)
            last=(np.float64, np.nan),  # the last valid value, however long ago
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
        last = state["last"][b.rows]  # not the window's: a flagged block may outlast it
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
        state["last"][b.rows] = np.where(ok & np.isfinite(b.x), b.x, last)
        state["longest"][b.rows] = longest
        # a run judged stuck is not learnt when it ends; one judged within the series'
        # first ``learn`` readings (of any flag: what the rules' warm_up counts, and
        # mutes) is: were it not, a series whose first day holds its longest plateaus
        # would never learn how long they are
        calls = state["calls"][b.rows]
        state["calls"][b.rows] = calls + 1
        state["flagged"][b.rows] = flagged | (same & (calls >= self.learn))
        score = np.where(same, run + 1.0, np.where(np.isfinite(ratio), ratio, np.nan))
        return Hits(hit, score)

    def describe(self, value: float, score: float, limit: float) -> str:
        if score >= self.count:
            return (
                f"value stuck at {value:g} for {score:.0f} consecutive valid readings "
                f"(longer than this series ever repeats by itself)"
            )
        return f"the last {self.count} values barely move ({score:.2f}× the series' usual step)"

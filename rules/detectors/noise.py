"""A series that has become several times noisier than it usually is, and stays so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import (
    Batch,
    Hits,
    State,
    as_selectors,
    learning_weight,
    nanmedian_rows,
    partnered,
)


@dataclass(frozen=True, slots=True)
class Noise:
    """Judges the size of a series' moves from reading to reading: the median of its
    newest ``history`` moves against the mean move it has made over the last ``days``
    days. A loose contact, a failing sensor or a fouled probe shows as noise that grows
    several times over while the level stays where it was, which no rule on the value
    sees. Moves, not values, are compared, so a daily cycle or a level shift does not
    count; the median of 24 moves ignores a spike (two large moves) and a single step.

    The mean is a running mean while the series is young and an exponentially
    weighted one over ``days`` after, so a series that grows noisy for good becomes
    its own normal again within days. It learns each move as it leaves the judged
    ones, ``history`` − 1 readings late. Judged after ``min_moves`` moves learnt, at
    ``k`` times.
    Tuned on ``offsite eval --generic`` tune seeds 0–2 (16 or 24 moves, ``k`` 3, 3.5 or
    4): at 24 and 4, growing noise found on 5 of 6 five- and ten-minute series and no
    episode on series without an anomaly; on hourly series a day's cycle moves more
    than the noise.

    With ``context`` partners a channel is learnt but not judged, as in ``seasonal``:
    a process channel's moves follow its load (a stop, soot blowing), not its sensor.
    Memory: 8 bytes of mean, 4 of count and 1 flag per series.
    """

    kind: ClassVar[str] = "noise"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    history: int = 24
    k: float = 4.0
    days: float = 3.0
    min_moves: int = 48
    abs_floor: float = 1e-9
    context: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        as_selectors(self)
        if self.history < 3 or self.k <= 1 or self.days <= 0 or self.min_moves < 1:
            raise ValueError("noise needs history ≥ 3, k > 1, days > 0, min_moves ≥ 1")

    @property
    def bytes_per_series(self) -> int:
        return 13

    def new_state(self, capacity: int) -> State:
        return State(
            capacity,
            mean=(np.float64, np.nan),  # the mean size of a move
            moves=(np.int32, 0),  # how many moves it has seen
            partnered=(np.bool_, False),  # ever seen with partners: a process channel
        )

    def __call__(self, b: Batch, state: State | None) -> Hits:
        assert state is not None
        r = b.rows
        vw = b.valid_window()
        ok = b.valid & np.isfinite(b.x)
        # what is learnt is the oldest move of the judged ones, about to leave them: the
        # usual size of a move does not take in the newest, so noise that has grown is
        # measured against the series before it grew, not against a mean it has
        # already pulled up (hourly tune series: grown noise 0 → 1 of 5 found, denser
        # spikes 2 → 5 of 5)
        h = self.history
        move = np.abs(vw[:, -h + 1] - vw[:, -h])
        mean = state["mean"][r]
        seen = state["moves"][r]
        judged = ok & (seen >= self.min_moves)
        judged &= ~partnered(b, state["partnered"])  # a process channel: its load moves it
        score = np.full(b.n, np.nan)
        j = np.flatnonzero(judged)
        if j.size:  # the newest moves of the series judged only (a sort each)
            w = np.concatenate([vw[j, vw.shape[1] - self.history :], b.x[j, None]], axis=1)
            moves = np.abs(np.diff(w, axis=1))
            enough = np.isfinite(moves).sum(axis=1) >= 2 * self.history // 3
            with np.errstate(invalid="ignore", divide="ignore"):
                recent = nanmedian_rows(moves) / np.fmax(mean[j], self.abs_floor)
            score[j] = np.where(enough, recent, np.nan)
        judged &= np.isfinite(score)
        hit = judged & (score > self.k)
        # learn: a running mean while young, then weighted over ``days``
        u = np.flatnonzero(np.isfinite(move))
        if u.size:
            ru = r[u]
            n = seen[u].astype(np.int64) + 1  # (an int32 + 1 would wrap before the cap)
            a = learning_weight(n, b.reporting_interval()[u], self.days)
            m = mean[u]
            state["mean"][ru] = np.where(np.isnan(m), move[u], m + a * (move[u] - m))
            state["moves"][ru] = np.minimum(n, np.iinfo(np.int32).max)
        return Hits(hit, np.where(judged, score, np.nan))

    def describe(self, value: float, score: float, limit: float) -> str:
        return f"{value:g}: its moves from reading to reading are {score:.1f} times its usual"

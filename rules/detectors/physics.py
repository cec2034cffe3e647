"""Cross-channel detectors: pairs of channels that physics says must move together.

Sampling interference and declared-but-false shutdowns cannot be seen on one channel:
each value looks normal, the *pair* is impossible. The engine hands these detectors
the partner channel of the same device (``Batch.partners``), aligned row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import FLAG_N, Batch, Hits, State, flag_table, nanmedian_rows

_median = nanmedian_rows


O2_AIR = 20.9


@dataclass(frozen=True, slots=True)
class Dilution:
    """Dilution air in the sample line: O2 rises while the concentration falls, by the
    same share of air.

    Air let in at a share f lifts O2 by f × (20.9 − O2) and lowers the concentration by
    f. Burning conditions move O2 slowly; so a rise of ``o2_rise`` points above the
    recent median together with a fall of the concentration by ``drop`` of its own
    median, the two shares agreeing within ``agree`` (a factor), is dilution — caught
    at the first steps of a ramp rather than at its end. The rise must also stand out
    of the O2's own scatter over the window: ``z`` robust sds (a noisy or wandering O2
    needs more than ``o2_rise``). When the device reports a flow,
    the flow must hold (within ``flow_tol`` of its median): a falling load also lifts
    O2 and lowers concentrations, but it lowers the flow with them, while air let into
    the sample line does not touch the stack.
    """

    kind: ClassVar[str] = "dilution"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ("o2", "flow")
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    history: int = 30
    o2_rise: float = 1.0
    z: float = 0.0
    drop: float = 0.06
    agree: float = 2.5
    flow_tol: float = 0.05

    def new_state(self, capacity: int) -> State | None:
        return None

    def __call__(self, b: Batch, state: State | None) -> Hits:
        o2 = b.partners["o2"]
        w = b.window.shape[1] - self.history
        o2w = o2.window[:, w:]
        base_o2 = _median(o2w)
        rise = o2.x - base_o2
        score = np.where(np.isfinite(rise), rise, np.nan)
        hit = np.nan_to_num(rise) >= self.o2_rise
        # the rest of the test only where O2 rose enough (few rows; a row's verdict is
        # its own): the concentration's and the flow's medians are most of the cost
        k = np.flatnonzero(hit)
        if k.size == 0:
            return Hits(hit, score)
        rise, base_o2, o2w = rise[k], base_o2[k], o2w[k]
        x = b.x[k]
        base_x = _median(b.valid_window()[k, w:])
        with np.errstate(invalid="ignore", divide="ignore"):
            fall = 1.0 - x / base_x
            f_o2 = rise / (O2_AIR - base_o2)
            ratio = fall / f_o2
        ok = np.ones(k.shape[0], dtype=bool)
        if self.z > 0:
            # robust sd of O2 about its median (MAD × 1.4826); NaN rows fail the test
            mad = _median(np.abs(o2w - base_o2[:, None])) * 1.4826
            with np.errstate(invalid="ignore"):
                ok &= rise >= self.z * mad
        ok &= np.nan_to_num(fall) >= self.drop
        ok &= (np.nan_to_num(ratio) >= 1.0 / self.agree) & (np.nan_to_num(ratio) <= self.agree)
        ok &= base_x > 0
        flow = b.partners.get("flow")
        if flow is not None:
            base_f = _median(flow.window[k, w:])
            with np.errstate(invalid="ignore", divide="ignore"):
                share = flow.x[k] / base_f
            # no flow channel (NaN): judged on O2 and concentration alone
            ok &= ~(np.isfinite(share) & (share < 1.0 - self.flow_tol))
        hit[k] = ok
        return Hits(hit, score)

    def describe(self, value: float, score: float, limit: float) -> str:
        return (
            f"O2 up {score:.1f} points while this concentration fell to {value:g} by the "
            f"same share of air, the flow holding: dilution of the sample"
        )


@dataclass(frozen=True, slots=True)
class FlowZero:
    """The flow (or flue-gas velocity) reads zero while the plant visibly emits: the
    partner concentration channel stays at its usual level. Bound to flow channels."""

    kind: ClassVar[str] = "flow_zero"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ("conc",)
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    history: int = 30
    zero: float = 0.02  # "zero" = below this share of the flow's own recent median
    emitting: float = 0.3  # "emitting" = the concentration above this share of its median

    def new_state(self, capacity: int) -> State | None:
        return None

    def __call__(self, b: Batch, state: State | None) -> Hits:
        conc = b.partners["conc"]
        w = b.window.shape[1] - self.history
        flow_base = _median(b.valid_window()[:, w:])
        conc_base = _median(conc.window[:, w:])
        with np.errstate(invalid="ignore", divide="ignore"):
            share = b.x / flow_base
            c_share = conc.x / conc_base
        hit = (flow_base > 0) & (np.nan_to_num(share, nan=1.0) <= self.zero)
        hit &= np.nan_to_num(c_share) >= self.emitting
        return Hits(hit, np.where(np.isfinite(c_share), c_share, np.nan))

    def describe(self, value: float, score: float, limit: float) -> str:
        return (
            f"flow reads {value:g} while the concentration stays at {score:.0%} of its usual level"
        )


@dataclass(frozen=True, slots=True)
class FalseStop:
    """Declared shutdown while still emitting (标停未停): a stop flag (F by default) on
    a flow channel whose value stays at ``running`` × its operating median or more.
    Bound to flow channels; one alert per device.

    A stack's fans coast down for minutes after a real stop is declared: a flow that
    fell by ``fall`` or more within the last ``settle`` seconds (from values flagged
    normal or as the stop, before the flag and after it) is a stop being carried out,
    not a false one. Time, not readings: at 30-s data the operating median of 30
    readings is 15 minutes of the coast-down itself. A single high reading in the last
    ``settle`` seconds (noise) holds the verdict back until it is that old."""

    kind: ClassVar[str] = "false_stop"
    scope: ClassVar[str] = "device"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = True
    history: int = 30
    flags: str = "F"
    running: float = 0.5
    settle: float = 180.0
    fall: float = 0.1

    def new_state(self, capacity: int) -> State | None:
        return None

    def __call__(self, b: Batch, state: State | None) -> Hits:
        stops = flag_table(self.flags)
        stopped = stops[b.flag]
        hit = np.zeros(b.n, dtype=bool)
        score = np.full(b.n, np.nan)
        # judged only on readings flagged as a stop (a row's verdict is its own)
        k = np.flatnonzero(stopped)
        if k.size:
            base = _median(b.valid_window()[k, b.window.shape[1] - self.history :])
            wt, wf = b.wt[k], b.wflag[k]
            with np.errstate(invalid="ignore"):
                near = np.isfinite(wt) & (wt >= b.t[k, None] - self.settle)
            # measured values only: normal ones and the stop's own (a D- or M-flagged
            # value can be anything, and must not stand for the flow before)
            near &= (wf == FLAG_N) | stops[wf]
            top = np.max(np.where(near, np.nan_to_num(b.window[k], nan=-np.inf), -np.inf), 1)
            coasting = b.x[k] < (1.0 - self.fall) * top  # -inf: no reading that recent
            with np.errstate(invalid="ignore", divide="ignore"):
                share = b.x[k] / base
            hit[k] = (base > 0) & (np.nan_to_num(share) >= self.running) & ~coasting
            # a coasting reading is not judged: no score either (a rule's clear_score
            # would hold a firing alert on through the stop being carried out)
            score[k] = np.where(np.isfinite(share) & ~coasting, share, np.nan)
        return Hits(hit, score)

    def describe(self, value: float, score: float, limit: float) -> str:
        return (
            f"device reports a stop while its flow reads {value:g} "
            f"({score:.0%} of normal operation)"
        )

"""Cross-channel detectors: pairs of channels that physics says must move together.

Sampling interference and declared-but-false shutdowns cannot be seen on one channel:
each value looks normal, the *pair* is impossible. The engine hands these detectors
the partner channel of the same device (``Batch.partners``), aligned row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import Batch, Hits, State, flag_table, nanmedian_rows

_median = nanmedian_rows


@dataclass(frozen=True, slots=True)
class Dilution:
    """Dilution air in the sample line: O2 jumps up while the concentration drops.

    Burning conditions move O2 slowly and by a point or two over a day; a rise of
    ``o2_rise`` percentage points above its recent median together with a fall of the
    concentration by ``drop`` of its own median is air (or water) being let in.
    """

    kind: ClassVar[str] = "dilution"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ("o2",)
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    history: int = 30
    o2_rise: float = 2.5
    drop: float = 0.15

    def new_state(self, capacity: int) -> State | None:
        return None

    def __call__(self, b: Batch, state: State | None) -> Hits:
        o2 = b.partners["o2"]
        w = b.window.shape[1] - self.history
        base_o2 = _median(o2.window[:, w:])
        base_x = _median(b.valid_window()[:, w:])
        rise = o2.x - base_o2
        with np.errstate(invalid="ignore", divide="ignore"):
            fall = 1.0 - b.x / base_x
        hit = np.nan_to_num(rise) >= self.o2_rise
        hit &= np.nan_to_num(fall) >= self.drop
        hit &= base_x > 0
        return Hits(hit, np.where(np.isfinite(rise), rise, np.nan))

    def describe(self, value: float, score: float, limit: float) -> str:
        return (
            f"O2 up {score:.1f} points while this concentration fell to {value:g}: "
            f"dilution of the sample"
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
    Bound to flow channels; one alert per device."""

    kind: ClassVar[str] = "false_stop"
    scope: ClassVar[str] = "device"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = True
    history: int = 30
    flags: str = "F"
    running: float = 0.5

    def new_state(self, capacity: int) -> State | None:
        return None

    def __call__(self, b: Batch, state: State | None) -> Hits:
        stopped = flag_table(self.flags)[b.flag]
        base = _median(b.valid_window()[:, b.window.shape[1] - self.history :])
        with np.errstate(invalid="ignore", divide="ignore"):
            share = b.x / base
        hit = stopped & (base > 0) & (np.nan_to_num(share) >= self.running)
        return Hits(hit, np.where(stopped & np.isfinite(share), share, np.nan))

    def describe(self, value: float, score: float, limit: float) -> str:
        return (
            f"device reports a stop while its flow reads {value:g} "
            f"({score:.0%} of normal operation)"
        )

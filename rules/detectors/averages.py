"""Exceedance judged as the standards judge it: on valid averages, at reference O2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import Batch, Hits, State

_PERIOD_S = {"hour": 3600.0, "day": 86400.0}


@dataclass(frozen=True, slots=True)
class AverageExceedance:
    """The hourly (or daily) average above the permit limit.

    Flue gas is converted to the point's reference O2 minute by minute,
    C = C' × (21 − O2ref) / (21 − O2), with the O2 channel of the same device. Only
    valid (flag N) values count, and an average counts only with enough of them
    (HJ 212-2017 Annex D, after HJ 75/76): an hour needs ``min_minutes`` valid minutes,
    a day ``min_hours`` valid hours (a daily average is the mean of the valid hourly
    averages). A period is judged when the first reading of the next one arrives.
    Days start at midnight ``utc_offset_h`` (China Standard Time by default).
    """

    kind: ClassVar[str] = "average_exceedance"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ("o2",)
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = True  # invalid values close periods, they are not summed
    history: ClassVar[int] = 0
    period: str = "hour"
    min_minutes: int = 45
    min_hours: int = 20
    utc_offset_h: float = 8.0

    def __post_init__(self) -> None:
        if self.period not in _PERIOD_S:
            raise ValueError(f"period must be one of {sorted(_PERIOD_S)}, not {self.period!r}")

    def new_state(self, capacity: int) -> State | None:
        return State(
            capacity,
            hour=(np.float64, np.nan),
            hsum=(np.float64, 0.0),
            hn=(np.int64, 0),
            minutes=(np.int64, 0),
            minute=(np.float64, np.nan),
            day=(np.float64, np.nan),
            dsum=(np.float64, 0.0),
            dn=(np.int64, 0),
        )

    def _converted(self, b: Batch) -> np.ndarray:
        o2 = b.partners["o2"].x
        with np.errstate(invalid="ignore", divide="ignore"):
            conv = b.x * (21.0 - b.o2ref) / (21.0 - o2)
        ok_o2 = np.isfinite(o2) & (o2 < 21.0) & (o2 >= 0.0)
        return np.where(np.isnan(b.o2ref), b.x, np.where(ok_o2, conv, np.nan))

    def __call__(self, b: Batch, state: State | None) -> Hits:
        assert state is not None
        r = b.rows
        s = {k: state[k][r] for k in state.arrays}
        off = self.utc_offset_h * 3600.0
        hour = np.floor(b.t / 3600.0) * 3600.0
        day = np.floor((b.t + off) / 86400.0) * 86400.0 - off
        c = self._converted(b)
        # close the hour that this reading leaves
        closing = np.isfinite(s["hour"]) & (hour > s["hour"])
        h_ok = closing & (s["minutes"] >= self.min_minutes)
        with np.errstate(invalid="ignore", divide="ignore"):
            h_avg = np.where(h_ok, s["hsum"] / np.maximum(s["hn"], 1), np.nan)
        # a valid hour joins its day (the day of the hour being closed)
        h_day = np.floor((s["hour"] + off) / 86400.0) * 86400.0 - off
        day_moves = np.isfinite(s["day"]) & (day > s["day"])
        d_ok = day_moves & (s["dn"] + (h_ok & (h_day == s["day"])) >= self.min_hours)
        dsum = s["dsum"] + np.where(h_ok & (h_day == s["day"]), h_avg, 0.0)
        dn = s["dn"] + (h_ok & (h_day == s["day"]))
        with np.errstate(invalid="ignore", divide="ignore"):
            d_avg = np.where(d_ok, dsum / np.maximum(dn, 1), np.nan)
        avg = h_avg if self.period == "hour" else d_avg
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = avg / b.limit
        hit = np.isfinite(ratio) & (ratio > 1.0)
        # roll the accumulators
        new_hour = ~np.isfinite(s["hour"]) | closing
        s["hsum"] = np.where(new_hour, 0.0, s["hsum"])
        s["hn"] = np.where(new_hour, 0, s["hn"])
        s["minutes"] = np.where(new_hour, 0, s["minutes"])
        s["hour"] = np.where(new_hour, hour, s["hour"])
        new_day = ~np.isfinite(s["day"]) | day_moves
        s["dsum"] = np.where(new_day, 0.0, dsum)
        s["dn"] = np.where(new_day, 0, dn)
        s["day"] = np.where(new_day, day, s["day"])
        counted = b.valid & np.isfinite(c)
        s["hsum"] = s["hsum"] + np.where(counted, c, 0.0)
        s["hn"] = s["hn"] + counted
        minute = np.floor(b.t / 60.0)
        fresh = counted & (minute != s["minute"])
        s["minutes"] = s["minutes"] + fresh
        s["minute"] = np.where(counted, minute, s["minute"])
        for k, v in s.items():
            state[k][r] = v
        return Hits(hit, np.where(np.isfinite(ratio), ratio, np.nan), value=avg)

    def describe(self, value: float, score: float, limit: float) -> str:
        what = "hourly" if self.period == "hour" else "daily"
        return f"{what} average {value:g} exceeds the permit limit {limit:g} ({score:.2f}×)"

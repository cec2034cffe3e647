"""A rule's gating: when a detector's hits become an alert (N in a row, ``for``,
hysteresis), which conditions are a series' routine, and the warm-ups, with the
per-series state all of it keeps; one ``RuleInstance`` per bound rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from offsite.rules.config import Bound
from offsite.rules.detectors import State, params_of
from offsite.rules.growth import grow_attr, next_capacity


class RuleInstance:
    """One bound rule (a detector with its parameters and gating) and all its state.

    State is kept per *slot*, one for each series the rule is bound to, not per series
    of the engine: copy-paste's 12 hours of fingerprints for every channel of 10,000
    devices would be 122 MB; for the limited channels it is bound to, 46 MB.
    """

    def __init__(self, bound: Bound, capacity: int) -> None:
        self.bound = bound
        self.det = bound.detector
        self.slots = np.full(capacity, -1, dtype=np.int64)  # series row → slot
        self.n_slots = 0
        self.state: State | None = self.det.new_state(16)
        spec: dict[str, tuple[Any, Any]] = {
            "streak": (np.int64, 0),
            "first": (np.float64, np.nan),
            "firing": (np.bool_, False),
            "seen": (np.int64, 0),
        }
        if bound.gating.routine:
            # onsets of the condition, decayed over the series' own time (``at``: when
            # last judged), whether it was on, and whether the episode under way was
            # judged routine at its onset
            spec.update(
                ons=(np.float64, 0.0),
                at=(np.float64, np.nan),
                armed=(np.bool_, False),
                muted=(np.bool_, False),
                # the hours with an onset over the last 64 (bit i: ``hour`` − i), hours
                # counted from the epoch in device time
                hour=(np.int64, -1),
                hours=(np.uint64, 0),
            )
        if bound.gating.warm_up_for_s:
            # device time the series was first judged, moved on until its value first moves
            spec["since"] = (np.float64, np.nan)
            spec["moved"] = (np.bool_, False)
        self.gate = State(16, **spec)
        self.params = params_of(self.det)

    def grow(self, capacity: int) -> None:
        grow_attr(self, "slots", capacity, -1)

    def bind(self, row: int) -> None:
        if self.slots[row] >= 0:
            return
        self.slots[row] = self.n_slots
        self.n_slots += 1

    def settle(self) -> None:
        """Make room for the slots bound since the last call, in one step: growing a
        little per new series would copy the largest state (12 hours of copy-paste
        fingerprints per channel) again and again, holding old and new copies at once."""
        if self.n_slots > self.gate.capacity:
            cap = next_capacity(self.n_slots)
            self.gate.grow(cap)
            if self.state is not None:
                self.state.grow(cap)


def gate(
    inst: RuleInstance,
    r: np.ndarray,
    t: np.ndarray,
    hit: np.ndarray,
    score: np.ndarray,
    older: Callable[[np.ndarray], np.ndarray] | None = None,
    routine: np.ndarray | None = None,
    still: np.ndarray | None = None,
) -> np.ndarray:
    """Hits → firing: N in a row, spanning ``for``, with hysteresis while firing, the
    routine muted, nothing before the warm-up. ``r`` are this rule's slots, ``t`` the
    readings' device times; ``older(i)`` says which of the readings ``i`` are of series
    whose stored history reaches back past a restart's replay (``RuleEngine.warm``);
    ``routine`` the hits the detector itself knows to be the series' routine
    (``Hits.routine``): onsets like the others, never raised; ``still`` the readings
    that leave their series' value where it was (its first, an invalid one, a repeat):
    ``warm_up_for`` is counted from a series' first move, since a series that has only
    ever read one value has shown nothing to learn."""
    g = inst.bound.gating
    firing = inst.gate["firing"][r] if g.clear_score is not None else None
    on = hit.copy()
    if firing is not None:
        on |= firing & (np.nan_to_num(score, nan=-np.inf) >= g.clear_score)
    quiet = not on.any()  # the usual round: nothing on, every run ends
    streak: np.ndarray | int
    first: np.ndarray | float
    if quiet:
        streak, first, fire = 0, np.nan, on
    else:
        streak, first = inst.gate["streak"][r], inst.gate["first"][r]
        streak = np.where(on, streak + 1, 0)
        first = np.where(on & (streak == 1), t, np.where(on, first, np.nan))
        fire = on & (streak >= g.count) & ((t - first) >= g.for_s)
    if g.routine:
        fire = _routine(inst, r, t, fire)
    if routine is not None:
        fire &= ~routine
    if g.warm_up:
        # a series is learnt before it may raise anything (its level, noise, steps)
        seen = inst.gate["seen"][r] + 1
        inst.gate["seen"][r] = seen
        fire &= seen > g.warm_up
    if g.warm_up_for_s:
        # … and for long enough of its own time to have seen its daily cycle, dated
        # from the series' first reading, or its first move where ``still`` is given;
        # one whose stored history reaches back past a restart's replay (``warm``'s
        # ``older``) served it before
        since = inst.gate["since"][r]
        new = np.flatnonzero(np.isnan(since))  # a series' first reading: looked up once
        if new.size:
            start = t[new]
            if older is not None:
                old = older(new)
                start = np.where(old, start - g.warm_up_for_s, start)
                inst.gate["moved"][r[new]] = old  # its warm-up was served before
            since[new] = start
        if still is not None:
            moved = inst.gate["moved"][r]
            since = np.where(moved | ~still, since, t)  # not moved yet: its day not begun
            inst.gate["moved"][r] = moved | ~still
        inst.gate["since"][r] = since
        fire &= t - since >= g.warm_up_for_s
    inst.gate["streak"][r] = streak
    inst.gate["first"][r] = first
    if quiet:
        inst.gate["firing"][r] = False
    else:
        if firing is None:
            firing = inst.gate["firing"][r]
        inst.gate["firing"][r] = fire | (firing & on)
    return fire


def _routine(inst: RuleInstance, r: np.ndarray, t: np.ndarray, fire: np.ndarray) -> np.ndarray:
    """Mute a condition that is this series' routine: one whose onsets it has shown
    ``routine`` times (decayed over ``routine_window_s`` of device time, counted
    during the warm-up too) before this one. A square wave's daily steps, a noisy
    series' heavy tail, a slow series' long stays are what the series does; an
    alert on them tells nothing. A new kind of behaviour still raises its first
    onsets; an episode keeps the verdict of its onset."""
    g, gate = inst.bound.gating, inst.gate
    last = gate["at"][r]
    dt = np.where(np.isnan(last), 0.0, np.maximum(t - last, 0.0))
    ons = gate["ons"][r] * np.exp(-dt / g.routine_window_s)
    onset = fire & ~gate["armed"][r]
    muted = np.where(onset, ons >= g.routine - 1e-9, gate["muted"][r] & fire)
    k = np.flatnonzero(onset)
    if k.size:
        muted[k] |= daily_routine(gate, r[k], t[k])
    gate["ons"][r] = ons + onset
    gate["at"][r] = t
    gate["armed"][r] = fire
    gate["muted"][r] = muted
    return fire & ~muted


def daily_routine(gate: State, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Whether each onset comes within the neighbouring clock hours of an onset on each
    of the two days before (23–25 and 47–49 hours back): a condition the series
    shows at the same time every day (a daily lull, a shift change) is its day's
    routine from its third day, whatever the decayed count of its onsets says. A
    series that began (``since``, where the rule keeps it) after the clock hours 47–49
    back has one day before it, and that day is enough. Records the onset's hour."""
    hour = np.floor(t / 3600.0).astype(np.int64)
    ago = hour - gate["hour"][r]
    kept = (ago >= 0) & (ago < 64)
    shift = np.where(kept, ago, 0).astype(np.uint64)
    past = np.where(kept, gate["hours"][r] << shift, np.uint64(0))
    near = np.uint64(0b111)
    yesterday = ((past >> np.uint64(23)) & near) != 0
    before = ((past >> np.uint64(47)) & near) != 0
    if "since" in gate.arrays:  # a series that began after hour 49 back has one day before
        since = gate["since"][r]
        began = np.floor(np.where(np.isfinite(since), since, -np.inf) / 3600.0)
        before |= hour - began < 49
    daily = yesterday & before
    gate["hours"][r] = past | np.uint64(1)
    gate["hour"][r] = hour
    return daily

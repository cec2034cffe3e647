"""The evaluation suite: fleets with one known fault per device, and clean fleets.

What ``offsite eval`` scores the rule engine on. Per seed and fault kind, a few
devices (CEMS and wastewater mixed where the kind applies) each get one fault of
that kind at a random time after at least ``HISTORY_S`` of clean history (enough
for a copy_paste to repeat, and for statistical detectors to learn the series),
on 1-minute data over ``RUN_S``; plus clean devices over whole days. Every device
runs its daily automatic calibration (flagged C): the detectors must not take
that routine for a fault.

Everything derives from the seed; each kind draws from its own generator, so
asking for fewer kinds never changes the faults of the others.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from offsite.simulators.devices import CEMS, WASTEWATER, Profile, SimDevice, daily_calibration
from offsite.simulators.errors import ScenarioError
from offsite.simulators.faults import Fault, FaultKind
from offsite.simulators.scenarios import Fleet, build_registry, device_password

RATE_S = 60.0
RUN_S = 8 * 3600.0
HISTORY_S = 3 * 3600.0
# Faults end this long before the run does, so a late detection still lands in it.
TAIL_S = 30 * 60.0
CLEAN_S = 86400.0
DEVICES_PER_KIND = 6
CLEAN_DEVICES = 8
# Runs start on this day plus a seeded offset, so the faults meet every load phase.
EPOCH = datetime(2026, 3, 2, tzinfo=UTC)

# Fault lengths (minutes) per kind, drawn uniformly; a spike is 1–2 readings.
DURATION_MIN: dict[FaultKind, tuple[float, float]] = {
    FaultKind.FLATLINE: (30, 60),
    FaultKind.SPIKE: (1, 2),
    FaultKind.DRIFT: (120, 180),
    FaultKind.OFFLINE: (20, 40),
    FaultKind.EXCEEDANCE: (30, 60),
    FaultKind.CLAMP: (120, 240),
    FaultKind.DILUTION: (60, 120),
    FaultKind.FLOW_ZERO: (30, 60),
    FaultKind.COPY_PASTE: (60, 120),
    FaultKind.FLAG_ABUSE: (120, 240),
    FaultKind.FALSE_STOP: (60, 120),
    FaultKind.IMPLAUSIBLE: (10, 30),
    FaultKind.SHIFT: (120, 240),
    FaultKind.CAPTURE: (120, 240),
}
# Kinds that only make sense on a stack (dilution air changes O2).
CEMS_ONLY = frozenset({FaultKind.DILUTION})
# Channels without a permit limit, for the generic statistical detector's shift.
SHIFT_CHANNEL = {"cems": "a01012", "wastewater": "w01001"}
FLOW_CHANNEL = {"cems": "a01011", "wastewater": "w00000"}
# Impossible readings: (channel, value) choices per profile.
IMPLAUSIBLE = {
    "cems": (("a21026", -5.0), ("a19001", 25.0)),
    "wastewater": (("w01018", -5.0), ("w01001", 15.0)),
}
COPY_LAG_S = (2 * 3600.0, 4 * 3600.0)


@dataclass(frozen=True, slots=True)
class EvalRun:
    """One fleet to feed through the engine for ``duration_s`` from ``fleet.start``."""

    name: str
    fleet: Fleet
    duration_s: float
    clean: bool

    @property
    def device_days(self) -> float:
        return len(self.fleet.devices) * self.duration_s / 86400.0


def eval_mn(seed: int, group: str, index: int) -> str:
    """24 hex characters unique per (seed, group, index): runs of one suite never collide."""
    return hashlib.sha256(f"offsite-eval/{seed}/{group}/{index}".encode()).hexdigest()[:24].upper()


def build_suite(
    seed: int,
    kinds: Sequence[FaultKind | str] = tuple(FaultKind),
    *,
    devices_per_kind: int = DEVICES_PER_KIND,
    clean_devices: int = CLEAN_DEVICES,
    run_s: float = RUN_S,
    clean_s: float = CLEAN_S,
) -> list[EvalRun]:
    """The faulty run (every asked kind) and the clean run of one seed."""
    try:
        wanted = [FaultKind(k) for k in kinds]
    except ValueError as exc:
        raise ScenarioError(f"unknown fault kind in {list(kinds)!r}") from exc
    if devices_per_kind < 1 or clean_devices < 0 or seed < 0:
        raise ScenarioError("need devices_per_kind >= 1, clean_devices >= 0 and seed >= 0")
    longest = max((DURATION_MIN[k][1] * 60 for k in wanted), default=0.0)
    if run_s < HISTORY_S + longest + TAIL_S:
        raise ScenarioError(
            f"run_s must be at least {HISTORY_S + longest + TAIL_S:.0f} s "
            f"for these kinds (history, longest fault, tail)"
        )
    offset_min = int(np.random.default_rng([seed, 0]).integers(0, 24 * 60))
    start = EPOCH + timedelta(days=seed, minutes=offset_min)
    runs = []
    if wanted:
        devices: list[SimDevice] = []
        faults: list[Fault] = []
        for kind in wanted:
            rng = np.random.default_rng([seed, 1, list(FaultKind).index(kind)])
            for i in range(devices_per_kind):
                profile = CEMS if kind in CEMS_ONLY or i % 2 == 0 else WASTEWATER
                dev = _device(seed, f"{kind.value}", i, profile)
                devices.append(dev)
                faults.append(make_fault(kind, dev, rng, start, run_s))
        runs.append(
            EvalRun(f"seed {seed} faults", _fleet(devices, faults, seed, start), run_s, clean=False)
        )
    if clean_devices:
        devices = [
            _device(seed, "clean", i, CEMS if i % 2 == 0 else WASTEWATER)
            for i in range(clean_devices)
        ]
        runs.append(
            EvalRun(f"seed {seed} clean", _fleet(devices, [], seed, start), clean_s, clean=True)
        )
    return runs


def _device(seed: int, group: str, index: int, profile: Profile) -> SimDevice:
    mn = eval_mn(seed, group, index)
    dev_seed = int(np.random.SeedSequence([seed, index, *group.encode()]).generate_state(1)[0])
    return SimDevice(mn, profile, dev_seed, daily_calibration(mn, profile))


def _fleet(devices: list[SimDevice], faults: list[Fault], seed: int, start: datetime) -> Fleet:
    rng = np.random.default_rng([seed, 2])
    passwords = [device_password(seed, i) for i in range(len(devices))]
    registry = build_registry(rng, devices, passwords, RATE_S)
    return Fleet(
        registry=registry, devices=devices, faults=faults, rate_s=RATE_S, start=start, seed=seed
    )


def make_fault(
    kind: FaultKind, dev: SimDevice, rng: np.random.Generator, run_start: datetime, run_s: float
) -> Fault:
    """One fault of ``kind`` on ``dev``, after ``HISTORY_S`` and ending ``TAIL_S`` before
    the run does. Always draws the same count of numbers, whatever the kind."""
    lo, hi = DURATION_MIN[kind]
    minutes = round(float(rng.uniform(lo, hi)))
    latest = (run_s - TAIL_S) / 60.0 - minutes
    start_min = int(rng.integers(int(HISTORY_S / 60), int(latest) + 1))
    u = rng.random(4)
    t0 = run_start + timedelta(minutes=start_min)
    end = t0 + timedelta(minutes=minutes)
    prof = dev.profile
    code: str | None = prof.fault_pollutant
    level = dev.expected(t0)[prof.fault_pollutant]
    params: dict[str, float] = {}
    match kind:
        case FaultKind.FLATLINE:
            params = {"value": level}
        case FaultKind.SPIKE:
            params = {"factor": round(6.0 + 4.0 * u[0], 2)}
        case FaultKind.DRIFT:
            params = {"rate_per_h": round(max(0.5, 0.6 * 60.0 / minutes), 3), "baseline": level}
        case FaultKind.EXCEEDANCE:
            params = {
                "limit": float(prof.limits[prof.fault_pollutant]),
                "factor": round(1.5 + 1.5 * u[0], 2),
                "baseline": level,
            }
        case FaultKind.CLAMP:
            params = {
                "limit": float(prof.limits[prof.fault_pollutant]),
                "level": round(0.92 + 0.05 * u[0], 3),
            }
        case FaultKind.DILUTION:
            params = {"o2_add": round(4.0 + 3.0 * u[0], 2), "ramp_s": 120.0}
        case FaultKind.FLOW_ZERO:
            code = FLOW_CHANNEL[prof.name]
        case FaultKind.COPY_PASTE:
            code = None
            lag_min = COPY_LAG_S[0] / 60 + u[0] * (
                min(COPY_LAG_S[1] / 60, start_min) - COPY_LAG_S[0] / 60
            )
            params = {"lag_s": 60.0 * round(lag_min)}
        case FaultKind.FLAG_ABUSE:
            params = {"share": round(0.3 + 0.3 * u[0], 2)}
        case FaultKind.FALSE_STOP | FaultKind.OFFLINE:
            code = None
        case FaultKind.IMPLAUSIBLE:
            code, value = IMPLAUSIBLE[prof.name][int(u[0] * 2)]
            params = {"value": value}
        case FaultKind.SHIFT:
            code = SHIFT_CHANNEL[prof.name]
            ch = prof.channel(code)
            sign = 1.0 if u[1] < 0.5 else -1.0
            params = {
                "sd_steps": round(sign * (8.0 + 4.0 * u[0]), 2),
                "sd": round(math.hypot(ch.slow_sd, ch.white_sd), 4),
            }
        case FaultKind.CAPTURE:
            code = None
            params = {"drop": round(0.4 + 0.2 * u[0], 2)}
    return Fault(kind=kind, mn=dev.mn, pollutant=code, start=t0, end=end, params=params)

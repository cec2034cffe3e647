"""The plant evaluation suite: multi-day runs of every plant profile, faults on the last day.

What ``offsite eval`` scores the rule engine on (issue 17). Every run covers
``DAYS`` days of 1-minute data from the plant model (``simulators.plant``): load
wander, daily cycle, stops and starts, soot blowing, fuel changes, calibration and
maintenance. Per profile and fault kind, ``devices_per_kind`` devices each carry
one fault in the form the field reports it; ``clean_per_profile`` devices carry
none, and every alert on them is a false alert.

Tuning and scoring apart: ``SPLITS`` fixes which seeds and which profiles are for
tuning the detectors and which are held out. A held-out run never shares a seed or
a profile with a tuning run, so a figure on it is one the tuning never saw.

Faults, as the field does them (DOMAIN.md, issue 17):
  copy_paste   all channels repeat exactly what was sent 24 h earlier (in runs of 8 days
               or more, half of them: 7 days earlier), for 4–8 h
  drift        the analyser's slope creeps 1–2 %/h from day 2 to the end (reaching 1.4–1.9×)
  clamp        the value *after O2 correction* parked at 93–98.5 % of the limit
  dilution     O2 up 5–7 points as a 30-minute ramp, concentrations down with it
  flatline     a plausible value (the expected level) repeated
  exceedance   starts with a 5–15 minute ramp up to 1.5–3 × the limit
  and the other kinds of ``FaultKind`` as ``simulators.evalsuite`` draws them.
Short faults are placed where the plant runs all through them (a stack that is
down cannot be clamped); the long drift only starts while it runs.

Everything derives from (split, seed); each (profile, kind) draws from its own
generator, so asking for fewer kinds never moves the faults of the others.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from offsite.simulators.errors import ScenarioError
from offsite.simulators.faults import Fault, FaultKind
from offsite.simulators.plant import PLANT_PROFILES, PlantDevice, PlantProfile
from offsite.simulators.scenarios import Fleet, build_registry, device_password

RATE_S = 60.0
DAYS = 3
DEVICES_PER_KIND = 1
CLEAN_PER_PROFILE = 2
# Faults end this long before the run does, so a late detection still lands in it.
TAIL_S = 30 * 60.0
EPOCH = datetime(2026, 3, 2, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Split:
    """Seeds ``seed_base + 0 … n-1`` on these profiles."""

    name: str
    seed_base: int
    profiles: tuple[str, ...]


SPLITS: dict[str, Split] = {
    "tune": Split("tune", 0, ("coal_boiler", "gas_turbine", "municipal_wastewater")),
    "held-out": Split("held-out", 1000, ("waste_incinerator", "industrial_wastewater")),
}

# Fault lengths (minutes) per kind; drift is placed apart (day 2 to the end).
DURATION_MIN: dict[FaultKind, tuple[float, float]] = {
    FaultKind.FLATLINE: (30, 90),
    FaultKind.SPIKE: (1, 2),
    FaultKind.DRIFT: (0, 0),
    FaultKind.OFFLINE: (20, 40),
    FaultKind.EXCEEDANCE: (30, 90),
    FaultKind.CLAMP: (120, 240),
    FaultKind.DILUTION: (60, 120),
    FaultKind.FLOW_ZERO: (30, 60),
    FaultKind.COPY_PASTE: (240, 480),
    FaultKind.FLAG_ABUSE: (120, 240),
    FaultKind.FALSE_STOP: (60, 120),
    FaultKind.IMPLAUSIBLE: (10, 30),
    FaultKind.SHIFT: (120, 240),
    FaultKind.CAPTURE: (120, 240),
}
# At coarse intervals, the fewest readings a fault must span to be a fault at all: a
# silence shorter than the offline rule's 5 intervals is a late message, and a value
# repeated fewer times than the flatline rule counts is not yet a flatline.
MIN_TICKS: dict[FaultKind, int] = {FaultKind.OFFLINE: 8, FaultKind.FLATLINE: 8}
FLUE_GAS_ONLY = frozenset({FaultKind.DILUTION})
COPY_LAG_S = 86400.0
# Runs this long (a week of history plus the faulty day) draw half their copies from
# the same day a week earlier.
WEEK_COPY_MIN_S = 8 * 86400.0
DRIFT_RATE_PER_H = (0.01, 0.02)
CLAMP_LEVEL = (0.93, 0.985)
DILUTION_O2_ADD = (5.0, 7.0)
DILUTION_RAMP_S = 1800.0
EXCEEDANCE_RAMP_S = (300.0, 900.0)
# Tries at drawing a fault start while the plant runs, before taking the last draw.
PLACEMENT_TRIES = 40


@dataclass(frozen=True, slots=True)
class PlantRun:
    """One fleet over ``duration_s``: the faulty and clean devices of one or more splits.

    Splits share a run only to share the engine's per-round cost (the engine judges
    every device on its own; nothing one device does changes another's alerts);
    ``split_of`` says which split each device belongs to.
    """

    name: str
    seed_index: int
    fleet: Fleet
    duration_s: float
    clean_mns: frozenset[str]
    split_of: Mapping[str, str]

    @property
    def clean_device_days(self) -> float:
        return len(self.clean_mns) * self.duration_s / 86400.0

    def clean_device_days_of(self, split: str) -> float:
        n = sum(1 for mn in self.clean_mns if self.split_of[mn] == split)
        return n * self.duration_s / 86400.0

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.split_of.values()))


def plant_mn(seed: int, group: str, index: int) -> str:
    """24 hex characters unique per (seed, group, index)."""
    digest = hashlib.sha256(f"offsite-plant/{seed}/{group}/{index}".encode()).hexdigest()
    return digest[:24].upper()


def applicable(kind: FaultKind, profile: PlantProfile) -> bool:
    return kind not in FLUE_GAS_ONLY or profile.point_kind == "flue_gas"


def run_start(seed_index: int) -> datetime:
    """The calendar of the ``seed_index``-th seed (shared by the splits): a seeded day
    and minute, so that runs meet every load phase and season of the clock."""
    offset_min = int(np.random.default_rng([seed_index, 0]).integers(0, 24 * 60))
    return EPOCH + timedelta(days=(7 * seed_index) % 365, minutes=offset_min)


def build_plant_run(
    split: str | Sequence[str],
    seed_index: int,
    kinds: Sequence[FaultKind | str] = tuple(FaultKind),
    *,
    profiles: Sequence[str] | None = None,
    devices_per_kind: int = DEVICES_PER_KIND,
    clean_per_profile: int = CLEAN_PER_PROFILE,
    days: float = DAYS,
    rate_s: float = RATE_S,
) -> PlantRun:
    """The ``seed_index``-th seed of each of ``split`` (one name or several) in one fleet:
    per split, its own seed (``seed_base + seed_index``) on its profiles (or ``profiles``).

    ``rate_s`` is the devices' reporting interval (a divisor of a day, at most an hour):
    the rules' gating must hold at 5- or 15-minute data as well as at 1-minute data.
    Fault windows are snapped to the tick grid and last at least one tick.
    """
    names = [split] if isinstance(split, str) else list(split)
    bad = [s for s in names if s not in SPLITS]
    if bad or not names:
        raise ScenarioError(f"unknown split {bad or names!r} (one of {', '.join(SPLITS)})")
    try:
        wanted = [FaultKind(k) for k in kinds]
    except ValueError as exc:
        raise ScenarioError(f"unknown fault kind in {list(kinds)!r}") from exc
    if devices_per_kind < 0 or clean_per_profile < 0 or seed_index < 0:
        raise ScenarioError("need devices_per_kind, clean_per_profile and seed >= 0")
    long_memory = {FaultKind.COPY_PASTE, FaultKind.DRIFT} & set(wanted)
    if (days < 2 and long_memory) or days <= 1:
        raise ScenarioError(
            "plant runs need more than a day of data, and at least 2 days for "
            "copy_paste and drift (a day-old copy needs a day, a drift runs from day 2)"
        )
    if not (0 < rate_s <= 3600 and (86400.0 / rate_s).is_integer()):
        raise ScenarioError(f"rate_s must divide a day and be at most an hour, not {rate_s!r}")
    unknown = [p for p in profiles or () if p not in PLANT_PROFILES]
    if unknown:
        raise ScenarioError(
            f"unknown plant profiles {unknown} (one of {', '.join(PLANT_PROFILES)})"
        )
    start = run_start(seed_index)
    run_s = days * 86400.0
    devices: list[PlantDevice] = []
    faults: list[Fault] = []
    clean: set[str] = set()
    split_of: dict[str, str] = {}
    for sname in names:
        sp = SPLITS[sname]
        seed = sp.seed_base + seed_index
        for pname in tuple(profiles) if profiles is not None else sp.profiles:
            prof = PLANT_PROFILES[pname]
            pidx = list(PLANT_PROFILES).index(pname)
            for kind in wanted:
                if not applicable(kind, prof):
                    continue
                rng = np.random.default_rng([seed, 1, pidx, _k(kind)])
                for i in range(devices_per_kind):
                    dev = _device(seed, f"{pname}/{kind.value}", i, prof, start, rate_s)
                    devices.append(dev)
                    split_of[dev.mn] = sname
                    faults.append(plant_fault(kind, dev, rng, start, run_s))
            for i in range(clean_per_profile):
                dev = _device(seed, f"{pname}/clean", i, prof, start, rate_s)
                devices.append(dev)
                split_of[dev.mn] = sname
                clean.add(dev.mn)
    rng = np.random.default_rng([seed_index, 2])
    passwords = [device_password(seed_index, i) for i in range(len(devices))]
    registry = build_registry(rng, devices, passwords, rate_s)
    fleet = Fleet(
        registry=registry,
        devices=devices,
        faults=faults,
        rate_s=rate_s,
        start=start,
        seed=seed_index,
    )
    seeds = ", ".join(f"{s} seed {SPLITS[s].seed_base + seed_index}" for s in names)
    return PlantRun(seeds, seed_index, fleet, run_s, frozenset(clean), split_of)


def _k(kind: FaultKind) -> int:
    return list(FaultKind).index(kind)


def _device(
    seed: int, group: str, index: int, profile: PlantProfile, start: datetime, rate_s: float
) -> PlantDevice:
    mn = plant_mn(seed, group, index)
    dev_seed = int(np.random.SeedSequence([seed, index, *group.encode()]).generate_state(1)[0])
    return PlantDevice(mn, profile, dev_seed, start, rate_s)


def _on_grid(t: datetime, start: datetime, rate_s: float) -> datetime:
    """The first tick at or after ``t``."""
    k = math.ceil((t - start).total_seconds() / rate_s - 1e-9)
    return start + timedelta(seconds=k * rate_s)


def _scan(
    kind: FaultKind, dev: PlantDevice, last_day: datetime, t0: datetime, end: datetime
) -> tuple[datetime, datetime]:
    """The first window of the kind's shortest length on the last day where the plant
    runs all through (a long stop left no room for the drawn one); the drawn window
    if there is none at all."""
    minutes = DURATION_MIN[kind][0]
    for k in range(0, int((86400.0 - TAIL_S) / 60.0 - minutes), 15):
        a = last_day + timedelta(minutes=k)
        b = a + timedelta(minutes=minutes)
        if dev.running_between(a - timedelta(minutes=30), b + timedelta(minutes=15)):
            return a, b
    return t0, end


def plant_fault(
    kind: FaultKind, dev: PlantDevice, rng: np.random.Generator, run_start: datetime, run_s: float
) -> Fault:
    """One fault of ``kind`` on ``dev`` on the run's last day (drift: from day 2 on).

    Always draws the same count of numbers per try, whatever the kind.
    """
    prof = dev.profile
    last_day = run_start + timedelta(seconds=run_s - 86400.0)
    run_end = run_start + timedelta(seconds=run_s)
    t0 = end = last_day
    for _ in range(PLACEMENT_TRIES):
        u = rng.random(6)
        if kind is FaultKind.DRIFT:
            # from the start of day 2 (plus up to 6 h) to the end: 1.5–2 days of creep
            t0 = run_start + timedelta(seconds=run_s - 2 * 86400.0 + u[0] * 6 * 3600.0)
            t0 = t0.replace(second=0, microsecond=0)
            end = run_end - timedelta(seconds=TAIL_S)
            if dev.running_between(t0, t0 + timedelta(hours=1)):
                break
            continue
        lo, hi = DURATION_MIN[kind]
        minutes = max(round(lo + u[0] * (hi - lo)), MIN_TICKS.get(kind, 1) * dev.rate_s / 60.0)
        latest_min = (86400.0 - TAIL_S) / 60.0 - minutes
        t0 = last_day + timedelta(minutes=int(u[1] * latest_min))
        end = t0 + timedelta(minutes=minutes)
        if dev.running_between(t0 - timedelta(minutes=30), end + timedelta(minutes=15)):
            break
    else:
        if kind is not FaultKind.DRIFT:
            t0, end = _scan(kind, dev, last_day, t0, end)
    # on the device's tick grid, at least one tick long (a no-op at 1-minute data)
    t0 = _on_grid(t0, run_start, dev.rate_s)
    end = max(_on_grid(end, run_start, dev.rate_s), t0 + timedelta(seconds=dev.rate_s))
    code: str | None = prof.fault_pollutant
    level = dev.expected(t0)[prof.fault_pollutant]
    params: dict[str, float] = {}
    match kind:
        case FaultKind.FLATLINE:
            ch = prof.channel(prof.fault_pollutant)
            params = {"value": round(round(level / ch.resolution) * ch.resolution, 3)}
        case FaultKind.SPIKE:
            params = {"factor": round(6.0 + 4.0 * u[2], 2)}
        case FaultKind.DRIFT:
            code = prof.drift_pollutant
            rate = DRIFT_RATE_PER_H[0] + u[2] * (DRIFT_RATE_PER_H[1] - DRIFT_RATE_PER_H[0])
            params = {
                "rate_per_h": round(rate, 4),
                "baseline": dev.expected(t0)[code],
                "relative": 1.0,
            }
        case FaultKind.EXCEEDANCE:
            ramp = EXCEEDANCE_RAMP_S[0] + u[3] * (EXCEEDANCE_RAMP_S[1] - EXCEEDANCE_RAMP_S[0])
            params = {
                "limit": float(prof.limits[prof.fault_pollutant]),
                "factor": round(1.5 + 1.5 * u[2], 2),
                "baseline": level,
                "ramp_s": 60.0 * round(ramp / 60.0),
            }
        case FaultKind.CLAMP:
            params = {
                "limit": float(prof.limits[prof.fault_pollutant]),
                "level": round(CLAMP_LEVEL[0] + u[2] * (CLAMP_LEVEL[1] - CLAMP_LEVEL[0]), 3),
            }
            if prof.o2_ref is not None:
                params["o2_ref"] = prof.o2_ref
        case FaultKind.DILUTION:
            add = DILUTION_O2_ADD[0] + u[2] * (DILUTION_O2_ADD[1] - DILUTION_O2_ADD[0])
            params = {"o2_add": round(add, 2), "ramp_s": DILUTION_RAMP_S}
        case FaultKind.FLOW_ZERO:
            code = prof.flow
        case FaultKind.COPY_PASTE:
            code = None
            # last week's data at the same time of day, when the run holds a week
            week = run_s >= WEEK_COPY_MIN_S and u[3] < 0.5
            params = {"lag_s": 7 * COPY_LAG_S if week else COPY_LAG_S}
        case FaultKind.FLAG_ABUSE:
            params = {"share": round(0.3 + 0.3 * u[2], 2)}
        case FaultKind.FALSE_STOP | FaultKind.OFFLINE:
            code = None
        case FaultKind.IMPLAUSIBLE:
            code, value = prof.implausible[int(u[2] * len(prof.implausible))]
            params = {"value": value}
        case FaultKind.SHIFT:
            code = prof.shift
            ch = prof.channel(code)
            sign = 1.0 if u[3] < 0.5 else -1.0
            sd = math.hypot(ch.noise, ch.wander) * abs(dev.baselines[code])
            params = {"sd_steps": round(sign * (8.0 + 4.0 * u[2]), 2), "sd": round(sd, 4)}
        case FaultKind.CAPTURE:
            code = None
            params = {"drop": round(0.4 + 0.2 * u[2], 2)}
    return Fault(kind=kind, mn=dev.mn, pollutant=code, start=t0, end=end, params=params)

"""Device profiles and the seeded device that produces clean readings.

A profile is what a kind of monitoring point measures and how each channel
behaves; a ``SimDevice`` is one installed analyser with its own baselines, its
own phase of the daily cycle and its own random stream. Clean data only: faults
are layered on top by ``simulators.faults`` so that a faulty device's underlying
series is exactly the one it would have produced clean (which is what makes the
ground truth checkable).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from offsite.simulators.errors import ScenarioError
from offsite.simulators.signals import (
    PEAK_HOUR,
    StratifiedNoise,
    Wander,
    daily_cycle,
    hour_of_day,
    unit_hash,
)

# Loggers report three decimals; rounding here is also what makes a frozen value
# repeat *exactly*, as real flatlines do.
DECIMALS = 3


@dataclass(frozen=True, slots=True)
class Channel:
    """How one measured quantity behaves.

    ``value = baseline × (1 + load_gain × (load − 1)) + wander + noise`` where the
    wander is smoothed AR(1) with sd ``slow_sd`` and time constant ``tau_s`` and the
    noise is stratified uniform with sd ``white_sd`` (both absolute, in the
    channel's unit, both bounded; see ``simulators.signals``). ``white_sd`` is
    sized so that the rounded value changes at almost every reading (no false
    flatlines), with ``slow_sd`` ≈ 2 × ``white_sd`` and ``tau_s`` = 1 h so that a
    reading never strays > 5 robust sd from the median of the previous 30 (no
    false spikes) at reporting intervals of 1–60 s. ``spread`` is the relative
    device-to-device variation of the baseline.
    """

    code: str
    name: str
    unit: str
    baseline: float
    load_gain: float
    slow_sd: float
    white_sd: float
    tau_s: float = 3600.0
    lower: float | None = 0.0
    upper: float | None = None
    spread: float = 0.08


@dataclass(frozen=True, slots=True)
class Profile:
    """A kind of monitoring point: its channels, permit limits and registry shape."""

    name: str
    point_kind: str
    point_name: str
    channels: tuple[Channel, ...]
    limits: Mapping[str, float]
    load_amplitude: float
    fault_pollutant: str
    o2_ref: float | None = None
    codes: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "codes", tuple(c.code for c in self.channels))
        if len(set(self.codes)) != len(self.codes):
            raise ScenarioError(f"profile {self.name}: duplicate channel code")
        for code in (*self.limits, self.fault_pollutant):
            if code not in self.codes:
                raise ScenarioError(f"profile {self.name}: {code} is not one of its channels")

    def channel(self, code: str) -> Channel:
        return self.channels[self.codes.index(code)]


# Coal-fired boiler stack under ultra-low emission limits (GB 13223-2011, at 6 % O2).
# Baselines and spreads keep clean O2-corrected peaks well under the limits, so
# that every exceedance in a simulated run is an injected one.
CEMS = Profile(
    name="cems",
    point_kind="flue_gas",
    point_name="boiler stack",
    o2_ref=6.0,
    load_amplitude=0.2,
    fault_pollutant="a21026",
    limits={"a21026": 35.0, "a21002": 50.0, "a34013": 10.0},
    channels=(
        Channel("a21026", "SO2", "mg/m3", 15.0, 0.8, 0.6, 0.3),
        Channel("a21002", "NOx", "mg/m3", 30.0, 0.6, 1.0, 0.5, spread=0.06),
        Channel("a34013", "particulates", "mg/m3", 4.0, 0.8, 0.16, 0.08),
        # O2 falls as load rises: more fuel for the same excess air.
        Channel("a19001", "O2", "%", 8.0, -0.6, 0.15, 0.08, lower=0.1, upper=20.9, spread=0.05),
        Channel("a01012", "flue-gas temperature", "°C", 120.0, 0.15, 0.6, 0.3, spread=0.05),
        Channel("a01011", "flue-gas velocity", "m/s", 12.0, 1.0, 0.24, 0.12),
        # Negative (induced draft) and deeper at high load: not clamped at zero.
        Channel(
            "a01013", "flue-gas pressure", "kPa", -0.3, 0.8, 0.01, 0.005, lower=None, upper=None
        ),
        Channel("a01014", "flue-gas humidity", "%", 8.0, 0.0, 0.16, 0.08, upper=100.0),
    ),
)

# Municipal/industrial outlet under GB 18918-2002 class 1A. pH has no limit on
# purpose: limits in the registry are upper bounds only.
WASTEWATER = Profile(
    name="wastewater",
    point_kind="wastewater",
    point_name="wastewater outlet",
    load_amplitude=0.25,
    fault_pollutant="w01018",
    limits={"w01018": 50.0, "w21003": 5.0},
    channels=(
        Channel("w01018", "COD", "mg/L", 25.0, 0.5, 1.0, 0.5),
        Channel("w21003", "ammonia nitrogen", "mg/L", 1.5, 0.4, 0.08, 0.04),
        Channel("w01001", "pH", "", 7.2, 0.0, 0.04, 0.02, lower=0.0, upper=14.0, spread=0.03),
        Channel("w00000", "wastewater flow", "L/s", 40.0, 1.0, 1.2, 0.6, spread=0.15),
    ),
)

PROFILES: Mapping[str, Profile] = {p.name: p for p in (CEMS, WASTEWATER)}

# The HJ 212 flag of values measured on calibration gas (not emissions).
CALIBRATING = "C"
# Automatic calibrations last about ten minutes (zero gas, then span gas).
CALIBRATION_S = 600.0
# Span gas at 80 % of a range of 2.5 × the permit limit: well above the limit, so a
# rule that judged calibration values would see an exceedance.
SPAN_OF_LIMIT = 2.0


@dataclass(frozen=True, slots=True)
class Calibration:
    """A daily automatic zero/span check of one channel at a fixed local time.

    Clean behaviour, not a fault: its values are flagged C, and the detectors must
    leave them alone. First half zero gas (0.0), second half span gas (``span``).
    """

    code: str
    start_s: float  # seconds after local (plant clock) midnight
    span: float
    duration_s: float = CALIBRATION_S

    def value(self, ts: datetime) -> float | None:
        """The calibration gas reading at ``ts``, or None outside the calibration."""
        into = (hour_of_day(ts) * 3600.0 - self.start_s) % 86400.0
        if into >= self.duration_s:
            return None
        return 0.0 if into < self.duration_s / 2 else self.span


def daily_calibration(mn: str, profile: Profile) -> Calibration:
    """The device's routine: its headline channel, at a time of day fixed by its MN.

    Hashed from the MN rather than drawn from the device's generator, so enabling
    calibrations moves no other random number.
    """
    code = profile.fault_pollutant
    start = round(unit_hash("calibration", mn) * (86400.0 - CALIBRATION_S))
    return Calibration(code, float(start), round(SPAN_OF_LIMIT * profile.limits[code], DECIMALS))


class SimDevice:
    """One analyser + logger: same seed and same timestamps → identical readings.

    All randomness comes from the device's own generator and each step draws a
    fixed number of numbers, so a device's series does not depend on what other
    devices do, on faults, or on wall-clock time.
    """

    def __init__(
        self, mn: str, profile: Profile, seed: int, calibration: Calibration | None = None
    ) -> None:
        try:
            self._rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"device {mn}: unusable seed {seed!r}") from exc
        self.mn = mn
        self.profile = profile
        self.seed = seed
        if calibration is not None and calibration.code not in profile.codes:
            raise ScenarioError(
                f"device {mn}: cannot calibrate {calibration.code}, not one of its channels"
            )
        self.calibration = calibration
        chans = profile.channels
        # Per-installation character: baseline offsets and a shifted daily peak.
        u = self._rng.uniform(-1.0, 1.0, len(chans))
        self.peak_hour = PEAK_HOUR + float(self._rng.uniform(-1.5, 1.5))
        spread = np.array([c.spread for c in chans])
        self._base = np.array([c.baseline for c in chans]) * (1.0 + spread * u)
        self._gain = np.array([c.load_gain for c in chans])
        self._white = np.array([c.white_sd for c in chans])
        self._lower = np.array([-math.inf if c.lower is None else c.lower for c in chans])
        self._upper = np.array([math.inf if c.upper is None else c.upper for c in chans])
        self._wander = Wander(
            np.array([c.slow_sd for c in chans]), np.array([c.tau_s for c in chans])
        )
        self._noise = StratifiedNoise(len(chans))
        self._last_ts: datetime | None = None

    @property
    def baselines(self) -> dict[str, float]:
        """This installation's mean levels at average load (faults scale against them)."""
        return dict(zip(self.profile.codes, self._base.tolist(), strict=True))

    def load(self, ts: datetime) -> float:
        return daily_cycle(hour_of_day(ts), self.profile.load_amplitude, self.peak_hour)

    def _level(self, ts: datetime) -> np.ndarray:
        return self._base * (1.0 + self._gain * (self.load(ts) - 1.0))

    def expected(self, ts: datetime) -> dict[str, float]:
        """Noise-free reading at ``ts``, without touching the random stream.

        Lets a scenario fix fault parameters (a flatline's frozen value, an
        exceedance's scale) in advance, so faults stay pure functions of time.
        """
        level = np.round(np.clip(self._level(ts), self._lower, self._upper), DECIMALS)
        return dict(zip(self.profile.codes, level.tolist(), strict=True))

    def step(self, ts: datetime) -> dict[str, float]:
        """The logger's reading at ``ts``; advances the device's random stream.

        Timestamps that do not move forward get no wander (dt treated as 0)
        rather than an error, because a replay may legitimately repeat one.
        """
        if ts.tzinfo is None:
            raise ScenarioError(f"device {self.mn}: timestamps must be timezone-aware")
        dt = None if self._last_ts is None else (ts - self._last_ts).total_seconds()
        self._last_ts = ts
        wander = self._wander.advance(self._rng, dt)
        noise = self._noise.draw(self._rng) * self._white
        value = np.minimum(np.maximum(self._level(ts) + wander + noise, self._lower), self._upper)
        return dict(zip(self.profile.codes, value.round(DECIMALS).tolist(), strict=True))

    def reading(self, ts: datetime) -> tuple[dict[str, float], dict[str, str]]:
        """``step`` plus the device's routine: ``(values, flags)``, flags only where not N.

        During the daily calibration the calibrated channel reads the calibration
        gas, flagged C; the random stream advances exactly as in ``step``.
        """
        values = self.step(ts)
        cal = self.calibration
        if cal is not None:
            gas = cal.value(ts)
            if gas is not None:
                values[cal.code] = gas
                return values, {cal.code: CALIBRATING}
        return values, {}

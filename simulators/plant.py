"""Plant model: one process state drives every channel of a monitoring point.

Real CEMS and wastewater data are not independent channels with noise: the plant's
load wanders for tens of minutes at a time, follows a daily cycle and steps at
start-ups, shut-downs, soot blowing and fuel changes, and every channel of the
stack moves with it (concentrations and flue-gas flow/velocity with the load, O2
against it, temperature lagging it). An evaluation on data without that texture
confirms whatever rules were tuned on it (issue 17), so this model reproduces it:

    load(t)   = daily(t) × (1 + wander(t))                 process, while running
    on(t)     ∈ [0, 1]                                     run state: ramps at stops/starts
    target_c  = stopped_c + (level_c × (1 + gain_c × (load − 1)) × events_c − stopped_c) × on
    value_c   = quantise(lag_c(target_c) × (1 + analyser wander_c) + noise_c, resolution_c)

Flags follow the run state (F while the plant is below its minimum stable state),
the daily automatic calibration (C on the calibrated channel) and routine
maintenance (M on the analysers). Faults are layered on top by
``simulators.faults``, exactly as for ``SimDevice``: a faulty device's underlying
series is the one it would have produced clean.

Pure and deterministic: a device's series depends only on its seed, its start
and its reporting interval. Random events of day ``d`` (counted from ``start``)
come from a generator seeded by ``(seed, d)``, so the schedule is a function of
time alone; the continuous noise comes from the device's own generators, drawn in
fixed blocks of ``BLOCK`` ticks, so the values never depend on who asked first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from offsite.simulators.devices import CALIBRATING, DECIMALS, Calibration, daily_calibration
from offsite.simulators.errors import ScenarioError

STOPPED = "F"  # HJ 212: the monitored process is stopped
MAINTENANCE = "M"
# Below this share of its running state the unit is reported stopped (flag F): a
# boiler on its start-up burners or a turbine on its run-down is not "operating".
MIN_STABLE = 0.5
# Ticks generated at a time; the random streams are consumed in these units.
BLOCK = 1440
DAY_S = 86400.0
# Plants run on China Standard Time: the daily cycle follows the local clock.
CST_OFFSET_S = 8 * 3600.0
# How long one analyser's own slow wander (dirty optics, temperature) takes to turn.
ANALYSER_TAU_S = 2 * 3600.0


@dataclass(frozen=True, slots=True)
class PlantChannel:
    """One measured quantity and how it follows the process.

    ``level`` is the running value at nominal load (load 1); ``gain`` its relative
    change per unit of load (1: proportional, as flow; negative: O2). ``noise`` and
    ``wander`` are relative sds (fast measurement noise; the analyser's own slow
    wander); ``resolution`` is what the logger reports (values repeat at it).
    ``lag_s`` makes the channel follow the process through a first-order lag
    (flue-gas temperature, treated wastewater quality). ``stopped`` is the reading
    with the plant stopped (ambient air for O2, no flow). ``soot`` and ``fuel``: the
    relative rise during soot blowing, the relative sd of the level at a fuel change.
    """

    code: str
    name: str
    unit: str
    level: float
    gain: float
    noise: float
    resolution: float
    wander: float = 0.0
    lag_s: float = 0.0
    stopped: float = 0.0
    soot: float = 0.0
    fuel: float = 0.0
    analyser: bool = True  # an analyser channel (maintenance takes it off-line)
    lower: float | None = 0.0
    upper: float | None = None

    def __post_init__(self) -> None:
        if not (self.resolution > 0 and self.noise >= 0 and self.wander >= 0 and self.lag_s >= 0):
            raise ScenarioError(f"channel {self.code}: resolution > 0, noise/wander/lag >= 0")


@dataclass(frozen=True, slots=True)
class Events:
    """How often the process steps, per day (probabilities) and how long it takes.

    ``stop_p``: chance that a day holds a shut-down; it starts at a local hour in
    ``stop_hours`` and lasts ``stop_h`` hours (ramps ``ramp_down_s``/``ramp_up_s``).
    ``soot_hours``: local hours of the scheduled soot blowing (jittered ±30 min),
    each ``soot_s`` long. ``fuel_p``: chance of a fuel change per day (a new level
    for the channels with ``fuel`` > 0, reached over ``fuel_ramp_s``).
    ``maintenance_p``: chance of a maintenance visit per day (``maintenance_h``).
    """

    stop_p: float = 0.0
    stop_hours: tuple[float, float] = (0.0, 24.0)
    stop_h: tuple[float, float] = (4.0, 10.0)
    ramp_down_s: float = 1800.0
    ramp_up_s: float = 3600.0
    soot_hours: tuple[float, ...] = ()
    soot_s: float = 1200.0
    fuel_p: float = 0.0
    fuel_ramp_s: float = 1200.0
    maintenance_p: float = 0.1
    maintenance_h: tuple[float, float] = (1.0, 2.0)


@dataclass(frozen=True, slots=True)
class PlantProfile:
    """A kind of plant: its channels, permit limits, load dynamics and events.

    ``daily`` holds (amplitude, peak local hour, harmonic) terms of the daily load
    cycle; ``wander_sd``/``wander_tau_s`` the slow load wander (swings of about
    ±1.6 sd lasting about ``wander_tau_s``). ``fault_pollutant`` is the limited
    channel faults aim at, ``drift_pollutant`` the one an analyser drift hits,
    ``flow`` the flow-like channel, ``shift`` a channel without a limit.
    """

    name: str
    point_kind: str
    point_name: str
    channels: tuple[PlantChannel, ...]
    limits: Mapping[str, float]
    fault_pollutant: str
    drift_pollutant: str
    flow: str
    shift: str
    o2_ref: float | None = None
    daily: tuple[tuple[float, float, int], ...] = ((0.1, 14.0, 1),)
    wander_sd: float = 0.05
    wander_tau_s: float = 1800.0
    events: Events = Events()
    implausible: tuple[tuple[str, float], ...] = ()
    codes: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "codes", tuple(c.code for c in self.channels))
        if len(set(self.codes)) != len(self.codes):
            raise ScenarioError(f"profile {self.name}: duplicate channel code")
        named = (*self.limits, self.fault_pollutant, self.drift_pollutant, self.flow, self.shift)
        for code in (*named, *(c for c, _ in self.implausible)):
            if code not in self.codes:
                raise ScenarioError(f"profile {self.name}: {code} is not one of its channels")

    def channel(self, code: str) -> PlantChannel:
        return self.channels[self.codes.index(code)]

    @property
    def load_amplitude(self) -> float:
        return sum(abs(a) for a, _, _ in self.daily)


def _flue(
    so2: PlantChannel,
    nox: PlantChannel,
    pm: PlantChannel,
    o2: PlantChannel,
    velocity: float,
    flow: float,
    temperature: float,
    extra: tuple[PlantChannel, ...] = (),
    humidity: float = 10.0,
) -> tuple[PlantChannel, ...]:
    """The channels every stack has beyond its pollutants: flow follows the load."""
    return (
        so2,
        nox,
        pm,
        o2,
        *extra,
        PlantChannel("a01011", "flue-gas velocity", "m/s", velocity, 1.0, 0.008, 0.01, 0.005,
                     stopped=0.2, analyser=False),
        PlantChannel("a00000", "flue-gas flow", "m3/h", flow, 1.0, 0.008, 1.0, 0.005,
                     stopped=0.0, analyser=False),
        PlantChannel("a01012", "flue-gas temperature", "°C", temperature, 0.12, 0.002, 0.1,
                     0.002, lag_s=1200.0, stopped=25.0, analyser=False),
        PlantChannel("a01013", "flue-gas pressure", "kPa", 0.15, 1.4, 0.02, 0.001, 0.01,
                     stopped=0.0, analyser=False, lower=None),
        PlantChannel("a01014", "flue-gas humidity", "%", humidity, 0.05, 0.01, 0.01, 0.01,
                     soot=0.04, stopped=1.5, analyser=False, upper=100.0),
    )  # fmt: skip


O2_AMBIENT = 20.6

# Coal-fired boiler, ultra-low emission (GB 13223-2011 at 6 % O2): SO2 35, NOx 50,
# particulates 10 mg/m³. Soot blowing three times a day lifts particulates; coal
# from another pile moves SO2; a few stops a month.
COAL_BOILER = PlantProfile(
    name="coal_boiler",
    point_kind="flue_gas",
    point_name="boiler stack",
    o2_ref=6.0,
    limits={"a21026": 35.0, "a21002": 50.0, "a34013": 10.0},
    fault_pollutant="a21026",
    drift_pollutant="a34013",
    flow="a01011",
    shift="a01012",
    daily=((0.12, 14.0, 1), (0.04, 10.0, 2)),
    wander_sd=0.05,
    events=Events(stop_p=0.08, soot_hours=(3.0, 11.0, 19.0), fuel_p=0.6, maintenance_p=0.12),
    implausible=(("a21026", -5.0), ("a19001", 25.0)),
    channels=_flue(
        PlantChannel("a21026", "SO2", "mg/m3", 17.0, 0.5, 0.025, 0.1, 0.02, fuel=0.15),
        PlantChannel("a21002", "NOx", "mg/m3", 31.0, 0.35, 0.02, 0.1, 0.02, fuel=0.04),
        PlantChannel("a34013", "particulates", "mg/m3", 3.2, 0.8, 0.03, 0.01, 0.03, soot=0.6),
        PlantChannel("a19001", "O2", "%", 6.4, -0.55, 0.008, 0.01, 0.005,
                     stopped=O2_AMBIENT, upper=21.0),
        velocity=13.5,
        flow=1.15e6,
        temperature=49.0,
        humidity=12.0,
    ),
)  # fmt: skip

# Natural-gas turbine (GB 13223-2011 at 15 % O2: NOx 50, SO2 35, particulates 5):
# a peaking unit, so a deep daily cycle and frequent daily start/stop; NOx is its pollutant.
GAS_TURBINE = PlantProfile(
    name="gas_turbine",
    point_kind="flue_gas",
    point_name="turbine stack",
    o2_ref=15.0,
    limits={"a21026": 35.0, "a21002": 50.0, "a34013": 5.0},
    fault_pollutant="a21002",
    drift_pollutant="a21002",
    flow="a01011",
    shift="a01012",
    daily=((0.2, 15.0, 1),),
    wander_sd=0.06,
    wander_tau_s=1500.0,
    events=Events(stop_p=0.35, stop_hours=(22.0, 24.0), stop_h=(5.0, 8.0), ramp_down_s=900.0,
                  ramp_up_s=1800.0, maintenance_p=0.08),
    implausible=(("a21002", -5.0), ("a19001", 25.0)),
    channels=_flue(
        PlantChannel("a21026", "SO2", "mg/m3", 2.5, 0.3, 0.04, 0.1, 0.03),
        PlantChannel("a21002", "NOx", "mg/m3", 27.0, 0.6, 0.02, 0.1, 0.02),
        PlantChannel("a34013", "particulates", "mg/m3", 1.4, 0.5, 0.04, 0.01, 0.03),
        PlantChannel("a19001", "O2", "%", 14.6, -0.12, 0.004, 0.01, 0.003,
                     stopped=O2_AMBIENT, upper=21.0),
        velocity=17.0,
        flow=2.4e6,
        temperature=92.0,
        humidity=8.0,
    ),
)  # fmt: skip

# Municipal solid waste incinerator (GB 18485-2014 at 11 % O2, hourly limits:
# particulates 30, NOx 300, SO2 100, HCl 60, CO 100). Runs at base load, but the
# waste varies: acid gases and CO wander far more than at a coal boiler.
WASTE_INCINERATOR = PlantProfile(
    name="waste_incinerator",
    point_kind="flue_gas",
    point_name="incinerator stack",
    o2_ref=11.0,
    limits={"a21026": 100.0, "a21002": 300.0, "a34013": 30.0, "a21024": 60.0, "a21005": 100.0},
    fault_pollutant="a21002",
    drift_pollutant="a21026",
    flow="a01011",
    shift="a01012",
    daily=((0.05, 13.0, 1),),
    wander_sd=0.06,
    wander_tau_s=1200.0,
    events=Events(stop_p=0.03, stop_h=(8.0, 16.0), soot_hours=(8.0, 20.0), fuel_p=0.9,
                  fuel_ramp_s=900.0, maintenance_p=0.12),
    implausible=(("a21026", -5.0), ("a19001", 25.0)),
    channels=_flue(
        PlantChannel("a21026", "SO2", "mg/m3", 28.0, 0.6, 0.04, 0.1, 0.08, fuel=0.25),
        PlantChannel("a21002", "NOx", "mg/m3", 165.0, 0.3, 0.02, 0.1, 0.03, fuel=0.06),
        PlantChannel("a34013", "particulates", "mg/m3", 4.5, 0.7, 0.04, 0.01, 0.04, soot=0.5),
        PlantChannel("a19001", "O2", "%", 8.8, -0.35, 0.012, 0.01, 0.01,
                     stopped=O2_AMBIENT, upper=21.0),
        velocity=11.0,
        flow=1.6e5,
        temperature=148.0,
        extra=(
            PlantChannel("a21024", "HCl", "mg/m3", 18.0, 0.5, 0.05, 0.1, 0.08, fuel=0.3),
            PlantChannel("a21005", "CO", "mg/m3", 12.0, -0.8, 0.08, 0.1, 0.1, fuel=0.2),
        ),
        humidity=18.0,
    ),
)  # fmt: skip

# Municipal wastewater treatment outlet (GB 18918-2002 class 1A, daily averages:
# COD 50, NH3-N 5, TN 15, TP 0.5 mg/L). Inflow peaks morning and evening; the
# outlet's quality follows the hydraulic load hours later. Never stops.
MUNICIPAL_WASTEWATER = PlantProfile(
    name="municipal_wastewater",
    point_kind="wastewater",
    point_name="treatment outlet",
    limits={"w01018": 50.0, "w21003": 5.0, "w21001": 15.0, "w21011": 0.5},
    fault_pollutant="w01018",
    drift_pollutant="w21003",
    flow="w00000",
    shift="w01001",
    daily=((0.18, 11.0, 1), (0.1, 9.0, 2)),
    wander_sd=0.04,
    wander_tau_s=2400.0,
    events=Events(maintenance_p=0.1),
    implausible=(("w01018", -5.0), ("w01001", 15.0)),
    channels=(
        PlantChannel("w01018", "COD", "mg/L", 21.0, 0.5, 0.02, 0.1, 0.03, lag_s=3 * 3600.0,
                     stopped=21.0),
        PlantChannel("w21003", "ammonia nitrogen", "mg/L", 0.9, 0.9, 0.03, 0.01, 0.05,
                     lag_s=3 * 3600.0, stopped=0.9),
        PlantChannel("w21001", "total nitrogen", "mg/L", 9.0, 0.3, 0.02, 0.01, 0.03,
                     lag_s=3 * 3600.0, stopped=9.0),
        PlantChannel("w21011", "total phosphorus", "mg/L", 0.22, 0.4, 0.03, 0.001, 0.05,
                     lag_s=3 * 3600.0, stopped=0.22),
        PlantChannel("w01001", "pH", "", 7.1, 0.0, 0.003, 0.01, 0.005, stopped=7.1,
                     upper=14.0),
        PlantChannel("w00000", "wastewater flow", "L/s", 420.0, 1.0, 0.01, 0.1, 0.005,
                     stopped=0.0, analyser=False),
    ),
)  # fmt: skip

# Industrial outlet (GB 8978-1996 class 1: COD 100, NH3-N 15 mg/L): production in
# shifts, so batch discharges stop at night on many days; the water is less steady.
INDUSTRIAL_WASTEWATER = PlantProfile(
    name="industrial_wastewater",
    point_kind="wastewater",
    point_name="wastewater outlet",
    limits={"w01018": 100.0, "w21003": 15.0},
    fault_pollutant="w01018",
    drift_pollutant="w01018",
    flow="w00000",
    shift="w01001",
    daily=((0.15, 13.0, 1),),
    wander_sd=0.07,
    wander_tau_s=1800.0,
    events=Events(stop_p=0.4, stop_hours=(22.0, 24.0), stop_h=(5.0, 8.0), ramp_down_s=600.0,
                  ramp_up_s=900.0, fuel_p=0.5, fuel_ramp_s=3600.0, maintenance_p=0.1),
    implausible=(("w01018", -5.0), ("w01001", 15.0)),
    channels=(
        PlantChannel("w01018", "COD", "mg/L", 58.0, 0.4, 0.02, 0.1, 0.04, lag_s=5400.0,
                     stopped=58.0, fuel=0.12),
        PlantChannel("w21003", "ammonia nitrogen", "mg/L", 4.2, 0.5, 0.03, 0.01, 0.05,
                     lag_s=5400.0, stopped=4.2, fuel=0.1),
        PlantChannel("w01001", "pH", "", 7.6, 0.02, 0.004, 0.01, 0.01, stopped=7.6,
                     upper=14.0),
        PlantChannel("w00000", "wastewater flow", "L/s", 26.0, 1.0, 0.015, 0.1, 0.005,
                     stopped=0.0, analyser=False),
    ),
)  # fmt: skip

PLANT_PROFILES: Mapping[str, PlantProfile] = {
    p.name: p
    for p in (
        COAL_BOILER,
        GAS_TURBINE,
        WASTE_INCINERATOR,
        MUNICIPAL_WASTEWATER,
        INDUSTRIAL_WASTEWATER,
    )
}


@dataclass(frozen=True, slots=True)
class DayEvents:
    """What happens on one day of one device (seconds since the device's start)."""

    stop: tuple[float, float] | None  # [begin of ramp-down, begin of ramp-up)
    soot: tuple[float, ...]  # start of each soot blow
    fuel: tuple[float, float] | None  # (time of the change, new level multiplier's log)
    maintenance: tuple[float, float] | None  # [start, end)


def day_events(profile: PlantProfile, seed: int, day: int, start_epoch_s: float) -> DayEvents:
    """The events of day ``day`` of a device: a pure function of (seed, day).

    Always draws the same count of numbers, so a profile's probabilities never
    move another event's time.
    """
    ev = profile.events
    rng = np.random.default_rng([seed, 0x9E37, day])
    u = rng.random(12)
    d0 = day * DAY_S
    local0 = (start_epoch_s + CST_OFFSET_S + d0) % DAY_S  # local second of day at d0

    def at_local_hour(h: float) -> float:
        """Seconds since start of the first time the local clock reads ``h`` in day d."""
        return d0 + (h * 3600.0 - local0) % DAY_S

    stop = None
    if u[0] < ev.stop_p:
        h = ev.stop_hours[0] + u[1] * (ev.stop_hours[1] - ev.stop_hours[0])
        a = at_local_hour(h)
        length = 3600.0 * (ev.stop_h[0] + u[2] * (ev.stop_h[1] - ev.stop_h[0]))
        stop = (a, a + length)
    soot = tuple(at_local_hour(h + (u[3 + i % 3] - 0.5)) for i, h in enumerate(ev.soot_hours))
    fuel = (d0 + u[7] * DAY_S, float(rng.standard_normal())) if u[6] < ev.fuel_p else None
    maintenance = None
    if u[8] < ev.maintenance_p:
        m0 = d0 + u[9] * DAY_S
        maintenance = (
            m0,
            m0 + 3600.0 * (ev.maintenance_h[0] + u[10] * np.diff(ev.maintenance_h)[0]),
        )
    return DayEvents(stop, soot, fuel, maintenance)


@dataclass(frozen=True, slots=True)
class PlantSeries:
    """``n`` ticks of one device: device time in seconds since its start, the process
    state and what the logger reports (``flags`` holds '' where the value is N)."""

    t_s: np.ndarray  # (n,)
    load: np.ndarray  # (n,) actual load (0 when stopped)
    on: np.ndarray  # (n,) run state in [0, 1]
    values: np.ndarray  # (n, channels) reported, quantised
    flags: np.ndarray  # (n, channels) '' | 'F' | 'M' | 'C'


def _raised_cosine(x: np.ndarray) -> np.ndarray:
    """0 outside [0, 1], a smooth bump of height 1 inside (soot blowing)."""
    inside = (x >= 0) & (x < 1)
    return np.where(inside, 0.5 - 0.5 * np.cos(2 * np.pi * np.clip(x, 0, 1)), 0.0)


# values, flags, actual load, run state of BLOCK ticks
Block = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class PlantDevice:
    """One monitored point driven by the plant model; same seed → identical readings.

    Offers what ``Fleet`` needs of a device (``mn``, ``profile``, ``reading``,
    ``expected``) so fleets, publishers and the evaluation use it like a
    ``SimDevice``; ``series`` gives the arrays directly. Readings are computed in
    blocks of ``BLOCK`` ticks from ``start`` on the ``rate_s`` grid; a timestamp off
    the grid reads the tick at or before it.
    """

    def __init__(
        self,
        mn: str,
        profile: PlantProfile,
        seed: int,
        start: datetime,
        rate_s: float,
        calibration: Calibration | bool | None = True,
    ) -> None:
        if start.tzinfo is None:
            raise ScenarioError(f"device {mn}: start must be timezone-aware")
        if not (math.isfinite(rate_s) and rate_s > 0):
            raise ScenarioError(f"device {mn}: rate_s must be > 0")
        self.mn = mn
        self.profile = profile
        self.seed = seed
        self.start = start
        self.rate_s = float(rate_s)
        if calibration is True:
            calibration = daily_calibration(mn, profile)  # type: ignore[arg-type]
        self.calibration: Calibration | None = calibration or None
        chans = profile.channels
        init = np.random.default_rng([seed, 1])
        # Per-installation character: levels ±8 %, the daily peak ±1.5 h.
        self._level = np.array([c.level for c in chans]) * (
            1 + 0.08 * init.uniform(-1, 1, len(chans))
        )
        self._peak_shift_h = float(init.uniform(-1.5, 1.5))
        self._gain = np.array([c.gain for c in chans])
        self._noise = np.array([c.noise for c in chans])
        self._res = np.array([c.resolution for c in chans])
        self._aw = np.array([c.wander for c in chans])
        self._stopped = np.array([c.stopped for c in chans])
        self._soot = np.array([c.soot for c in chans])
        self._fuel = np.array([c.fuel for c in chans])
        self._lag = np.array([c.lag_s for c in chans])
        self._analyser = np.array([c.analyser for c in chans])
        self._lower = np.array([-math.inf if c.lower is None else c.lower for c in chans])
        self._upper = np.array([math.inf if c.upper is None else c.upper for c in chans])
        self._wander_rng = np.random.default_rng([seed, 2])
        self._noise_rng = np.random.default_rng([seed, 3])
        # sequential state carried from block to block
        self._w = np.zeros(2)  # load wander: AR(1) and its low-pass
        self._a = np.zeros((2, len(chans)))  # analyser wander, same shape per channel
        self._lagged: np.ndarray | None = None
        self._blocks: dict[int, Block] = {}
        self._next_block = 0
        self._days: dict[int, DayEvents] = {}
        self._epoch = start.timestamp()

    # -- the deterministic part: daily cycle, events, run state -------------------------
    def _day(self, d: int) -> DayEvents:
        if d < 0:
            return DayEvents(None, (), None, None)
        got = self._days.get(d)
        if got is None:
            got = self._days[d] = day_events(self.profile, self.seed, d, self._epoch)
            if len(self._days) > 8:
                del self._days[min(self._days)]
        return got

    def _state(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(daily load, run state, per-channel event multiplier, under maintenance) at
        ``t_s``, noise-free: a pure function of time."""
        p, ev = self.profile, self.profile.events
        hour = ((self._epoch + CST_OFFSET_S + t_s) % DAY_S) / 3600.0
        daily = np.ones_like(t_s)
        for amp, peak, harmonic in p.daily:
            daily += amp * np.cos(2 * np.pi * harmonic * (hour - peak - self._peak_shift_h) / 24.0)
        on = np.ones_like(t_s)
        mult = np.ones((t_s.size, len(p.channels)))
        maint = np.zeros(t_s.size, dtype=bool)
        days = np.floor(t_s / DAY_S).astype(int)
        for d in range(int(days.min()) - 1, int(days.max()) + 1):
            e = self._day(d)
            if e.stop is not None:
                a, b = e.stop
                down = np.clip((t_s - a) / ev.ramp_down_s, 0, 1)
                up = np.clip((t_s - b) / ev.ramp_up_s, 0, 1)
                on *= np.where(t_s < b, 1 - down, up)
            for s in e.soot:
                bump = _raised_cosine((t_s - s) / ev.soot_s)
                mult *= 1 + np.outer(bump, self._soot)
            if e.maintenance is not None:
                maint |= (t_s >= e.maintenance[0]) & (t_s < e.maintenance[1])
        # fuel: the level multiplier of the latest change, ramped from the one before
        changes = [(d, self._day(d).fuel) for d in range(int(days.min()) - 3, int(days.max()) + 1)]
        log_m = np.zeros_like(t_s)
        for _, fuel in changes:
            if fuel is None:
                continue
            at, z = fuel
            share = np.clip((t_s - at) / ev.fuel_ramp_s, 0, 1)
            log_m = log_m * (1 - share) + z * share
        mult *= np.exp(np.outer(log_m, self._fuel))
        return daily, on, mult, maint

    def _targets(
        self, t_s: np.ndarray, wander: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(channel targets, actual load, run state, under maintenance) before noise."""
        daily, on, mult, maint = self._state(t_s)
        load = daily * (1 + wander)
        running = self._level * (1 + np.outer(load - 1, self._gain)) * mult
        target = self._stopped + (running - self._stopped) * on[:, None]
        return target, load * on, on, maint

    # -- blocks ---------------------------------------------------------------------------
    def _make_block(self, b: int) -> Block:
        n = BLOCK
        t_s = (b * n + np.arange(n)) * self.rate_s
        p = self.profile
        phi = math.exp(-self.rate_s / p.wander_tau_s)
        z = self._wander_rng.standard_normal(n)
        sd = p.wander_sd * math.sqrt(2.0)  # the low-passed AR(1) has half its variance
        inno = sd * math.sqrt(1 - phi * phi)
        w_ar, w_lp = self._w
        if b == 0:
            w_ar = sd * z[0]
            w_lp = w_ar / math.sqrt(2.0)
        wander = np.empty(n)
        phi_a = math.exp(-self.rate_s / ANALYSER_TAU_S)
        sd_a = self._aw * math.sqrt(2.0)
        inno_a = sd_a * math.sqrt(1 - phi_a * phi_a)
        za = self._wander_rng.standard_normal((n, len(p.channels)))
        a_ar, a_lp = self._a
        if b == 0:
            a_ar = sd_a * za[0]
            a_lp = a_ar / math.sqrt(2.0)
        aw = np.empty((n, len(p.channels)))
        for k in range(n):
            w_ar = phi * w_ar + inno * z[k]
            w_lp = phi * w_lp + (1 - phi) * w_ar
            wander[k] = w_lp
            a_ar = phi_a * a_ar + inno_a * za[k]
            a_lp = phi_a * a_lp + (1 - phi_a) * a_ar
            aw[k] = a_lp
        self._w = np.array([w_ar, w_lp])
        self._a = np.stack([a_ar, a_lp])
        target, load, on, maint = self._targets(t_s, wander)
        # first-order lag (temperature, treated water) carried across blocks
        alpha = np.where(self._lag > 0, 1 - np.exp(-self.rate_s / np.maximum(self._lag, 1e-9)), 1.0)
        lagged = np.empty_like(target)
        prev = target[0] if self._lagged is None else self._lagged
        for k in range(n):
            prev = prev + alpha * (target[k] - prev)
            lagged[k] = prev
        self._lagged = prev
        # analysers wander and are noisy whatever the plant does; flows at rest read 0
        eps = self._noise_rng.standard_normal((n, len(p.channels)))
        scale = np.abs(self._level)
        value = lagged * (1 + aw) + eps * self._noise * scale * np.maximum(on, 0.05)[:, None]
        value = np.clip(value, self._lower, self._upper)
        value = np.round(np.round(value / self._res) * self._res, DECIMALS)
        flags = np.full((n, len(p.channels)), "", dtype="<U1")
        stopped = on < MIN_STABLE
        flags[stopped, :] = STOPPED
        if maint.any():
            cols = np.flatnonzero(self._analyser)
            rows = np.flatnonzero(maint)
            value[np.ix_(rows, cols)] = np.round(self._stopped[cols], DECIMALS)
            flags[np.ix_(rows, cols)] = MAINTENANCE
        cal = self.calibration
        if cal is not None:
            c = p.codes.index(cal.code)
            local_s = (self._epoch + CST_OFFSET_S + t_s) % DAY_S
            into = (local_s - cal.start_s) % DAY_S
            during = (into < cal.duration_s) & ~stopped & ~maint
            value[during, c] = np.where(into[during] < cal.duration_s / 2, 0.0, cal.span)
            flags[during, c] = CALIBRATING
        return value, flags, load, on

    def _block(self, b: int) -> Block:
        got = self._blocks.get(b)
        if got is not None:
            return got
        if b < self._next_block:
            raise ScenarioError(
                f"device {self.mn}: block {b} was already dropped; read ticks in time order"
            )
        while self._next_block <= b:
            self._blocks[self._next_block] = self._make_block(self._next_block)
            self._next_block += 1
            while len(self._blocks) > 2:
                del self._blocks[min(self._blocks)]
        return self._blocks[b]

    def index(self, ts: datetime) -> int:
        if ts.tzinfo is None:
            raise ScenarioError(f"device {self.mn}: timestamps must be timezone-aware")
        k = math.floor((ts - self.start).total_seconds() / self.rate_s + 1e-9)
        if k < 0:
            raise ScenarioError(f"device {self.mn}: {ts.isoformat()} is before its start")
        return k

    def reading(self, ts: datetime) -> tuple[dict[str, float], dict[str, str]]:
        """``(values, flags)`` the logger reports at ``ts``; flags only where not N."""
        k = self.index(ts)
        values, flags, _, _ = self._block(k // BLOCK)
        row, frow = values[k % BLOCK], flags[k % BLOCK]
        codes = self.profile.codes
        return (
            dict(zip(codes, row.tolist(), strict=True)),
            {c: str(f) for c, f in zip(codes, frow.tolist(), strict=True) if f},
        )

    def step(self, ts: datetime) -> dict[str, float]:
        return self.reading(ts)[0]

    def expected(self, ts: datetime) -> dict[str, float]:
        """Noise- and wander-free running value at ``ts`` (plausible fault levels)."""
        t = np.array([(ts - self.start).total_seconds()])
        target, _, _, _ = self._targets(t, np.zeros(1))
        level = np.round(np.clip(target[0], self._lower, self._upper), DECIMALS)
        return dict(zip(self.profile.codes, level.tolist(), strict=True))

    def run_state(self, ts: datetime) -> float:
        """The run state in [0, 1] at ``ts`` (1: running, 0: stopped); pure."""
        t = np.array([(ts - self.start).total_seconds()])
        return float(self._state(t)[1][0])

    def running_between(self, a: datetime, b: datetime, step_s: float = 300.0) -> bool:
        """True when the plant runs fully (state 1, no maintenance) all through ``[a, b]``."""
        n = max(2, math.ceil((b - a).total_seconds() / step_s) + 1)
        t = np.linspace((a - self.start).total_seconds(), (b - self.start).total_seconds(), n)
        _, on, _, maint = self._state(t)
        return bool(np.all(on >= 1.0) and not maint.any())

    @property
    def baselines(self) -> dict[str, float]:
        return dict(zip(self.profile.codes, self._level.tolist(), strict=True))


def simulate(
    profile: PlantProfile,
    seed: int,
    start: datetime,
    n: int,
    rate_s: float = 60.0,
    calibration: bool = True,
    mn: str = "PLANT",
) -> PlantSeries:
    """``n`` ticks of one clean device as arrays (the model without a fleet around it)."""
    dev = PlantDevice(mn, profile, seed, start, rate_s, calibration)
    blocks = [dev._block(b) for b in range((n + BLOCK - 1) // BLOCK)]
    values, flags, load, on = (np.concatenate([blk[i] for blk in blocks])[:n] for i in range(4))
    return PlantSeries(np.arange(n) * float(rate_s), load, on, values, flags)


def tick_times(start: datetime, n: int, rate_s: float) -> list[datetime]:
    return [start + timedelta(seconds=k * rate_s) for k in range(n)]

"""A fleet: a registry of enterprises, their devices, and the faults injected into them.

Everything is derived from one seed so that a demo, a benchmark and a test all
see the same plants, the same readings and the same ground truth. The layout
(profiles, enterprises, MNs) is drawn before the faults, so asking for other
fault kinds never reshuffles the plants.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from offsite.core.errors import RegistryError
from offsite.core.registry import Device, Enterprise, Point, Registry
from offsite.simulators.devices import CEMS, WASTEWATER, Profile, SimDevice, daily_calibration
from offsite.simulators.errors import ScenarioError
from offsite.simulators.faults import Fault, FaultKind, Message, apply_faults_flagged
from offsite.simulators.plant import (
    COAL_BOILER,
    GAS_TURBINE,
    INDUSTRIAL_WASTEWATER,
    MUNICIPAL_WASTEWATER,
    WASTE_INCINERATOR,
    PlantDevice,
    PlantProfile,
)
from offsite.simulators.signals import unit_hash

# What a fleet drives: the independent-channel device or the plant model.
AnyDevice = SimDevice | PlantDevice
MODELS = ("simple", "plant")
FLUE_PLANTS = (COAL_BOILER, GAS_TURBINE, WASTE_INCINERATOR)
WATER_PLANTS = (MUNICIPAL_WASTEWATER, INDUSTRIAL_WASTEWATER)

# The kinds ``build_fleet`` injects by default (the demo's set). It places every other
# kind too when asked (``offsite simulate --fault KIND``); ``simulators.evalsuite`` builds
# them with the hours of history the statistical detectors need to score them.
ALL_FAULTS: tuple[FaultKind, ...] = (
    FaultKind.FLATLINE,
    FaultKind.SPIKE,
    FaultKind.DRIFT,
    FaultKind.OFFLINE,
    FaultKind.EXCEEDANCE,
)

# Place names and trades for realistic enterprise names; an enterprise with a
# stack gets a combustion trade, one with only an outlet a water-intensive one.
_PLACES = (
    "Jiangnan",
    "Huaihe",
    "Taihu",
    "Changjiang",
    "Qinling",
    "Zhujiang",
    "Songhua",
    "Minjiang",
    "Xiangjiang",
    "Dongting",
    "Poyang",
    "Hanjiang",
    "Lishui",
    "Fenhe",
    "Weihe",
    "Luhe",
    "Qiantang",
    "Huangshan",
    "Yandang",
    "Jinsha",
    "Beijiang",
    "Liaohe",
    "Haihe",
    "Tianmu",
)
_STACK_TRADES = (
    "Thermal Power Co.",
    "Cogeneration Co., Ltd.",
    "Cement Co., Ltd.",
    "Iron & Steel Co.",
    "Glass Works",
    "Coking Co., Ltd.",
    "Paper Co., Ltd.",
    "Waste-to-Energy Co.",
)
_WATER_TRADES = (
    "Wastewater Treatment Co.",
    "Pharmaceutical Co., Ltd.",
    "Dyeing & Printing Co.",
    "Chemical Co., Ltd.",
    "Food Processing Co.",
    "Electroplating Co., Ltd.",
)
_REGIONS = (
    "Jiangsu/Nanjing",
    "Jiangsu/Suzhou",
    "Jiangsu/Wuxi",
    "Zhejiang/Hangzhou",
    "Zhejiang/Ningbo",
    "Shandong/Jinan",
    "Shandong/Zibo",
    "Hebei/Tangshan",
    "Henan/Zhengzhou",
    "Guangdong/Foshan",
    "Hubei/Wuhan",
    "Anhui/Hefei",
)
# Faulty-device starts are spread over this many ticks so that detectors cannot
# rely on every fault beginning at the same instant.
_START_SPREAD_TICKS = 5
# A drift reaches this fraction of the baseline by the end of its window, so it
# is visible whatever the window length (≥ +50 %/h, the rate of a bad analyser).
_DRIFT_AT_END = 0.6
_MIN_DRIFT_PER_H = 0.5


@dataclass(slots=True)
class Fleet:
    """Simulated devices plus their registry and ground truth; ``tick`` drives them."""

    registry: Registry
    devices: Sequence[AnyDevice]
    faults: list[Fault]
    rate_s: float
    start: datetime
    seed: int = 0
    _faults_by_mn: dict[str, list[Fault]] = field(init=False, repr=False)
    # what devices with a copy_paste fault sent (values, flags), by time, back to their
    # longest lag
    _sent: dict[str, dict[datetime, tuple[dict[str, float], dict[str, str]]]] = field(
        init=False, repr=False
    )
    _keep_s: dict[str, float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._faults_by_mn = {}
        self._sent = {}
        self._keep_s = {}
        for f in self.faults:
            self._faults_by_mn.setdefault(f.mn, []).append(f)
            if f.kind is FaultKind.COPY_PASTE:
                self._sent.setdefault(f.mn, {})
                self._keep_s[f.mn] = max(self._keep_s.get(f.mn, 0.0), f.params["lag_s"])

    def device(self, mn: str) -> AnyDevice:
        for d in self.devices:
            if d.mn == mn:
                return d
        raise KeyError(mn)

    def messages(self, ts: datetime) -> list[Message]:
        """A ``Message`` (values and non-N flags) for every device that sends at ``ts``.

        Every device advances even when offline, so its clean series (and every
        other device's) is the same whichever faults were injected. Ticks must come
        in time order for copy_paste faults, which repeat what was sent earlier.
        """
        out: list[Message] = []
        for dev in self.devices:
            values, flags = dev.reading(ts)
            faults = self._faults_by_mn.get(dev.mn)
            if not faults:
                out.append(Message(dev.mn, values, flags))
                continue
            sent = self._sent.get(dev.mn)
            got = apply_faults_flagged(
                faults, ts, values, flags, None if sent is None else sent.get
            )
            if sent is not None:
                self._remember(dev.mn, sent, ts, got)
            if got is not None:
                out.append(Message(dev.mn, *got))
        return out

    def _remember(
        self,
        mn: str,
        sent: dict[datetime, tuple[dict[str, float], dict[str, str]]],
        ts: datetime,
        got: tuple[dict[str, float], dict[str, str]] | None,
    ) -> None:
        if got is not None:
            sent[ts] = (dict(got[0]), dict(got[1]))
        horizon = ts - timedelta(seconds=self._keep_s[mn] + 2 * self.rate_s)
        while sent:
            oldest = next(iter(sent))
            if oldest >= horizon:
                break
            del sent[oldest]

    def tick(self, ts: datetime) -> list[tuple[str, dict[str, float]]]:
        """``(mn, values)`` of ``messages(ts)``: the values only, flags dropped.

        For callers that only look at numbers; anything that publishes or judges
        readings must use ``messages`` so that flagged values stay flagged.
        """
        return [(m.mn, m.values) for m in self.messages(ts)]

    def timestamps(self, duration_s: float, start: datetime | None = None) -> Iterator[datetime]:
        """Device time ``start, start + rate_s, …`` covering ``[start, start + duration_s)``."""
        t0 = self.start if start is None else start
        for k in range(math.ceil(duration_s / self.rate_s - 1e-9)):
            yield t0 + timedelta(seconds=k * self.rate_s)

    def ground_truth(self) -> list[dict[str, Any]]:
        """The injected faults as JSON-ready dicts, with the point and limit they concern."""
        out = []
        for f in self.faults:
            row = f.to_dict()
            point = self.registry.point_of(f.mn)
            row["point_id"] = point.id if point else None
            row["enterprise_id"] = point.enterprise_id if point else None
            limit = point.limits.get(f.pollutant) if point and f.pollutant else None
            row["limit"] = float(limit) if limit is not None else None
            out.append(row)
        return out


def device_mn(seed: int, index: int) -> str:
    """24 uppercase hex characters (the HJ 212 MN length), stable per (seed, index)."""
    return hashlib.sha256(f"offsite-sim/{seed}/{index}".encode()).hexdigest()[:24].upper()


def device_password(seed: int, index: int) -> str:
    """The logger's HJ 212 PW: six digits, as field loggers ship them, stable per (seed, index).

    Hashed rather than drawn from the fleet's generator so that adding passwords
    did not move any other random number (same seed → same plants, values, faults).
    """
    digest = hashlib.sha256(f"offsite-sim-pw/{seed}/{index}".encode()).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 1_000_000:06d}"


def device_seed(seed: int, index: int) -> int:
    """Independent, reproducible stream per device (numpy's recommended spawning)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def build_fleet(
    n_devices: int = 20,
    *,
    seed: int = 0,
    faults: Sequence[FaultKind | str] = ALL_FAULTS,
    start: datetime,
    rate_s: float = 1.0,
    fault_after_s: float = 15.0,
    fault_duration_s: float = 60.0,
    calibration: bool = False,
    model: str = "simple",
) -> Fleet:
    """A deterministic fleet of ``n_devices`` with the requested faults injected.

    About 2/3 CEMS stacks and 1/3 wastewater outlets, grouped into enterprises of
    1–3 devices, one point per device. Fault kinds go round-robin to distinct
    devices (at least one device per kind when the fleet is large enough, up to
    about half the fleet); the rest stay clean. Each fault hits the profile's
    limited headline pollutant (SO2 or COD), starts ``fault_after_s`` after
    ``start`` plus 0–4 ticks, and lasts ``fault_duration_s`` (a spike: one or two
    ticks). ``calibration`` gives every device its daily ~10-minute automatic
    calibration (values flagged C; ``simulators.devices.daily_calibration``).

    ``model="plant"`` drives each device by the plant model (``simulators.plant``):
    stacks become coal boilers, gas turbines or waste incinerators and outlets
    municipal or industrial wastewater (chosen by a hash, so the layout, the MNs and
    the faults' devices and times are the same as with the simple model).
    """
    if model not in MODELS:
        raise ScenarioError(f"unknown device model {model!r} (one of {', '.join(MODELS)})")
    _check_args(n_devices, seed, start, rate_s, fault_after_s, fault_duration_s)
    try:
        kinds = [FaultKind(k) for k in faults]
    except ValueError as exc:
        raise ScenarioError(f"unknown fault kind in {list(faults)!r}") from exc
    rng = np.random.default_rng(seed)

    n_water = round(n_devices / 3)
    kinds_of_device = [WASTEWATER] * n_water + [CEMS] * (n_devices - n_water)
    profiles: list[Profile] = [kinds_of_device[i] for i in rng.permutation(n_devices)]
    mns = [device_mn(seed, i) for i in range(n_devices)]
    devices: list[AnyDevice]
    if model == "plant":
        devices = [
            _plant_device(mns[i], profiles[i], seed, i, start, rate_s, calibration)
            for i in range(n_devices)
        ]
    else:
        devices = [
            SimDevice(
                mns[i],
                profiles[i],
                device_seed(seed, i),
                daily_calibration(mns[i], profiles[i]) if calibration else None,
            )
            for i in range(n_devices)
        ]
    passwords = [device_password(seed, i) for i in range(n_devices)]
    registry = build_registry(rng, devices, passwords, rate_s)
    fault_list = _assign_faults(rng, devices, kinds, start, rate_s, fault_after_s, fault_duration_s)
    return Fleet(
        registry=registry, devices=devices, faults=fault_list, rate_s=rate_s, start=start, seed=seed
    )


def _plant_device(
    mn: str,
    simple: Profile,
    seed: int,
    index: int,
    start: datetime,
    rate_s: float,
    calibration: bool,
) -> PlantDevice:
    """The plant-model device standing where the simple model puts ``simple``."""
    choices = FLUE_PLANTS if simple.point_kind == "flue_gas" else WATER_PLANTS
    profile = choices[int(unit_hash("plant-profile", seed, index) * len(choices))]
    # the model reads ticks from its start on; the publisher's first tick is the wall
    # clock truncated to the interval, so start one tick earlier on the grid
    t0 = start.timestamp()
    grid = datetime.fromtimestamp(t0 - t0 % rate_s - rate_s, tz=start.tzinfo)
    return PlantDevice(mn, profile, device_seed(seed, index), grid, rate_s, calibration)


def _check_args(
    n_devices: int,
    seed: int,
    start: datetime,
    rate_s: float,
    fault_after_s: float,
    fault_duration_s: float,
) -> None:
    if n_devices < 1:
        raise ScenarioError("a fleet needs at least one device")
    if not isinstance(seed, int) or seed < 0:
        raise ScenarioError(f"seed must be a non-negative integer, not {seed!r}")
    if start.tzinfo is None:
        raise ScenarioError("start must be timezone-aware")
    if not (math.isfinite(rate_s) and rate_s > 0):
        raise ScenarioError("rate_s must be a positive number of seconds")
    if not (math.isfinite(fault_after_s) and fault_after_s >= 0):
        raise ScenarioError("fault_after_s must be >= 0")
    if not (math.isfinite(fault_duration_s) and fault_duration_s > 0):
        raise ScenarioError("fault_duration_s must be > 0")


def build_registry(
    rng: np.random.Generator, devices: Sequence[AnyDevice], passwords: list[str], rate_s: float
) -> Registry:
    enterprises: list[Enterprise] = []
    points: list[Point] = []
    regs: list[Device] = []
    places = [_PLACES[i] for i in rng.permutation(len(_PLACES))]
    used_names: set[str] = set()
    password_of = dict(zip((d.mn for d in devices), passwords, strict=True))
    i = 0
    while i < len(devices):
        group = devices[i : i + int(rng.integers(1, 4))]
        i += len(group)
        eid = f"E{len(enterprises) + 1:04d}"
        has_stack = any(d.profile.point_kind == "flue_gas" for d in group)
        trades = _STACK_TRADES if has_stack else _WATER_TRADES
        name = f"{places[len(enterprises) % len(places)]} {trades[int(rng.integers(len(trades)))]}"
        if name in used_names:
            name = f"{name} (Plant {len(enterprises) + 1})"
        used_names.add(name)
        region = _REGIONS[int(rng.integers(len(_REGIONS)))]
        enterprises.append(Enterprise(id=eid, name=name, region=region))
        per_kind: dict[str, int] = {}
        for k, dev in enumerate(group, start=1):
            prof = dev.profile
            per_kind[prof.name] = per_kind.get(prof.name, 0) + 1
            pid = f"{eid}-P{k}"
            points.append(
                Point(
                    id=pid,
                    enterprise_id=eid,
                    name=f"{per_kind[prof.name]}# {prof.point_name}",
                    kind=prof.point_kind,
                    o2_ref=prof.o2_ref,
                    limits=dict(prof.limits),
                )
            )
            regs.append(
                Device(mn=dev.mn, point_id=pid, interval_s=rate_s, password=password_of[dev.mn])
            )
    try:
        return Registry(tuple(enterprises), tuple(points), tuple(regs))
    except RegistryError as exc:  # pragma: no cover - would be a bug in this module
        raise ScenarioError(f"generated registry is invalid: {exc}") from exc


def _assign_faults(
    rng: np.random.Generator,
    devices: Sequence[AnyDevice],
    kinds: list[FaultKind],
    start: datetime,
    rate_s: float,
    after_s: float,
    duration_s: float,
) -> list[Fault]:
    if not kinds:
        return []
    n = len(devices)
    n_faulty = min(n, max(len(kinds), n // 2))
    order = [int(i) for i in rng.permutation(n)]
    for j in range(n_faulty):
        kind = kinds[j % len(kinds)]
        if kind in _CEMS_ONLY and not _is_stack(devices[order[j]]):
            # dilution air changes O2, which only a stack measures: swap in a stack
            stacks = [k for k in range(j + 1, n) if _is_stack(devices[order[k]])]
            if stacks:
                order[j], order[stacks[0]] = order[stacks[0]], order[j]
    out = []
    for j, idx in enumerate(order[:n_faulty]):
        dev = devices[idx]
        kind = kinds[j % len(kinds)]
        t0 = start + timedelta(seconds=after_s + int(rng.integers(_START_SPREAD_TICKS)) * rate_s)
        # Draw every random number whatever the kind, so that one fault's kind
        # never changes another fault's timing or size.
        spike_ticks = int(rng.integers(1, 3))
        spike_factor = round(float(rng.uniform(6.0, 10.0)), 2)
        exceed_factor = round(float(rng.uniform(1.5, 3.0)), 2)
        code = dev.profile.fault_pollutant
        level = dev.expected(t0)[code]
        end = t0 + timedelta(seconds=duration_s)
        params: dict[str, float] = {}
        pollutant: str | None = code
        match kind:
            case FaultKind.FLATLINE:
                params = {"value": level}
            case FaultKind.SPIKE:
                # A window of k ticks holds exactly k readings on any tick grid.
                end = t0 + timedelta(seconds=spike_ticks * rate_s)
                params = {"factor": spike_factor}
            case FaultKind.DRIFT:
                rate = max(_MIN_DRIFT_PER_H, _DRIFT_AT_END * 3600.0 / duration_s)
                params = {"rate_per_h": round(rate, 3), "baseline": level}
            case FaultKind.EXCEEDANCE:
                params = {
                    "limit": float(dev.profile.limits[code]),
                    "factor": exceed_factor,
                    "baseline": level,
                }
            case FaultKind.OFFLINE:
                pollutant = None
            case _:
                pollutant, params = _other_fault(kind, dev, level, t0, after_s, rate_s)
        out.append(
            Fault(kind=kind, mn=dev.mn, pollutant=pollutant, start=t0, end=end, params=params)
        )
    return out


# Dilution air shows only where O2 is measured.
_CEMS_ONLY = frozenset({FaultKind.DILUTION})


# The channel a shift or a flow_zero acts on, per profile (as in simulators.evalsuite).
def _is_stack(dev: AnyDevice) -> bool:
    """A flue-gas device (O2 and a flow), where dilution and its kin can show."""
    prof = dev.profile
    if isinstance(prof, PlantProfile):
        return prof.point_kind == "flue_gas"
    return prof.name == "cems"


_SHIFT_CHANNEL = {"cems": "a01012", "wastewater": "w01001"}
_FLOW_CHANNEL = {"cems": "a01011", "wastewater": "w00000"}
_IMPLAUSIBLE = {"cems": ("a21026", -5.0), "wastewater": ("w01018", -5.0)}


def _other_fault(
    kind: FaultKind,
    dev: AnyDevice,
    level: float,
    t0: datetime,
    after_s: float,
    rate_s: float,
) -> tuple[str | None, dict[str, float]]:
    """(pollutant, params) of the kinds beyond the demo's set, sized to be visible within
    a live run. Their variety comes from a hash of the device and start, not from the
    fleet's generator, so asking for them never moves the other faults."""
    prof = dev.profile
    u = unit_hash("fault", dev.mn, kind.value, t0.isoformat())
    code = prof.fault_pollutant
    match kind:
        case FaultKind.CLAMP:
            return code, {"limit": float(prof.limits[code]), "level": round(0.92 + 0.05 * u, 3)}
        case FaultKind.DILUTION:
            return code, {"o2_add": round(4.0 + 3.0 * u, 2), "ramp_s": 2 * rate_s}
        case FaultKind.FLOW_ZERO:
            flow = prof.flow if isinstance(prof, PlantProfile) else _FLOW_CHANNEL[prof.name]
            return flow, {}
        case FaultKind.COPY_PASTE:
            # repeat what was sent from the start of the run: a whole number of ticks back
            return None, {"lag_s": max(1, round(after_s / rate_s)) * rate_s}
        case FaultKind.FLAG_ABUSE:
            return code, {"share": round(0.3 + 0.3 * u, 2)}
        case FaultKind.FALSE_STOP:
            return None, {}
        case FaultKind.CAPTURE:
            return None, {"drop": round(0.4 + 0.2 * u, 2)}
        case FaultKind.IMPLAUSIBLE:
            if isinstance(prof, PlantProfile):
                channel, value = prof.implausible[0]
            else:
                channel, value = _IMPLAUSIBLE[prof.name]
            return channel, {"value": value}
        case FaultKind.SHIFT:
            sign = 1.0 if u < 0.5 else -1.0
            if isinstance(prof, PlantProfile):
                pch = prof.channel(prof.shift)
                sd = math.hypot(pch.noise, pch.wander) * max(pch.level, pch.resolution)
                return prof.shift, {"sd_steps": round(sign * (8.0 + 4.0 * u), 2), "sd": sd}
            channel = _SHIFT_CHANNEL[prof.name]
            ch = prof.channel(channel)
            return channel, {
                "sd_steps": round(sign * (8.0 + 4.0 * u), 2),
                "sd": round(math.hypot(ch.slow_sd, ch.white_sd), 4),
            }
    raise ScenarioError(f"no live placement for {kind.value} faults")  # pragma: no cover

"""Injected faults: what they do to a device's readings, as pure functions of time.

A ``Fault`` is also the ground truth a detector is scored against, so it carries
everything needed to reproduce its effect (the frozen value of a flatline, the
limit an exceedance overshoots) and nothing that depends on how the run went.

Random-looking choices inside a fault (which readings carry a false flag, which
messages a failing link drops, the clamp's tiny jitter) come from a hash of the
device, the fault and the timestamp, not from a generator: the effect at ``ts``
is the same whatever was asked before, so a replay, a test and a scorer agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from offsite.simulators.devices import DECIMALS
from offsite.simulators.errors import ScenarioError
from offsite.simulators.signals import unit_hash


class FaultKind(StrEnum):
    """The falsification and failure patterns the detectors must catch (see DOMAIN.md)."""

    FLATLINE = "flatline"  # 恒值: the same number repeated
    SPIKE = "spike"  # one or two absurd readings
    DRIFT = "drift"  # analyser slope/zero wandering away, growing with time
    OFFLINE = "offline"  # the logger sends nothing
    EXCEEDANCE = "exceedance"  # a real emission above the permit limit
    CLAMP = "clamp"  # 贴限排放: values parked just under the permit limit
    DILUTION = "dilution"  # dilution air in the sample line: O2 up, concentrations down
    FLOW_ZERO = "flow_zero"  # flow (or flue-gas velocity) reads zero while emitting
    COPY_PASTE = "copy_paste"  # fabricated record: an earlier stretch sent again
    FLAG_ABUSE = "flag_abuse"  # false maintenance/fault flags on normal values
    FALSE_STOP = "false_stop"  # 标停未停: flagged stopped while the values say operating
    IMPLAUSIBLE = "implausible"  # a physically impossible value
    SHIFT = "shift"  # a sustained level step on a channel without a limit
    CAPTURE = "capture"  # data-capture gaps: a share of the messages never arrive


# Parameters each kind needs; checked at construction so that a run never fails
# half-way through because a fault was under-specified.
REQUIRED_PARAMS: Mapping[FaultKind, tuple[str, ...]] = {
    FaultKind.FLATLINE: ("value",),
    FaultKind.SPIKE: ("factor",),
    FaultKind.DRIFT: ("rate_per_h", "baseline"),
    FaultKind.OFFLINE: (),
    FaultKind.EXCEEDANCE: ("limit", "factor", "baseline"),
    FaultKind.CLAMP: ("limit", "level"),
    FaultKind.DILUTION: ("o2_add", "ramp_s"),
    FaultKind.FLOW_ZERO: (),
    FaultKind.COPY_PASTE: ("lag_s",),
    FaultKind.FLAG_ABUSE: ("share",),
    FaultKind.FALSE_STOP: (),
    FaultKind.IMPLAUSIBLE: ("value",),
    FaultKind.SHIFT: ("sd_steps", "sd"),
    FaultKind.CAPTURE: ("drop",),
}

# Kinds that act on the whole device: their ground truth names no pollutant, so an
# alert on any channel of the device (or on the device itself) can be explained by it.
DEVICE_WIDE: frozenset[FaultKind] = frozenset(
    {FaultKind.OFFLINE, FaultKind.CAPTURE, FaultKind.FALSE_STOP, FaultKind.COPY_PASTE}
)

# Channels diluted along with the sample gas (O2 is what rises instead): every
# concentration read through the sample line (SO2, NOx, particulates, CO, HCl).
O2 = "a19001"
DILUTED = ("a21026", "a21002", "a34013", "a21005", "a21024")
# Relative sd of a clamp's jitter: a logger parked on a set point still wobbles a bit.
CLAMP_JITTER = 0.002
# Flags a false maintenance/fault declaration uses, and the one for "stopped".
ABUSE_FLAGS = ("M", "D")
STOPPED = "F"

# The device's earlier *sent* values (after faults) by timestamp, for copy_paste: the
# values alone, or (values, non-N flags) so that a copy repeats the flags too.
Sent = Mapping[str, float] | tuple[Mapping[str, float], Mapping[str, str]]
History = Callable[[datetime], Sent | None]


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault on one device, active on ``[start, end)``.

    params by kind:
      flatline    ``value``: the number repeated (the reading expected at ``start``)
      spike       ``factor``: readings multiplied by it (6–10 in scenarios)
      drift       ``rate_per_h``, ``baseline``: adds ``baseline × rate_per_h × hours since start``;
                  with ``relative`` = 1 the value itself is scaled by ``1 + rate_per_h × hours``
                  instead (an analyser's slope creeping: 1–2 %/h over days, issue 17)
      exceedance  ``limit``, ``factor``, ``baseline``: the clean series rescaled so that
                  its baseline sits at ``factor × limit`` (noise kept: a parked constant
                  would be a flatline, not an exceedance); optional ``ramp_s``: the scale
                  grows linearly from 1 to its full value over that time (real exceedances
                  ramp up)
      clamp       ``limit``, ``level``: ``limit × level × (1 + jitter)``, jitter of relative
                  sd ``CLAMP_JITTER`` hashed from the timestamp; optional ``o2_ref``: the
                  value parked is the one *converted to reference O2*, so the raw value
                  sent is ``limit × level × (1 + jitter) × (21 − O2) / (21 − o2_ref)`` with
                  the O2 the device sends at that instant (how a point with a reference O2
                  is judged, and how it is clamped in the field)
      dilution    ``o2_add``, ``ramp_s``: O2 rises by ``o2_add`` points, linearly over
                  ``ramp_s``; SO2, NOx and particulates scale by (21 − O2_new)/(21 − O2_old)
                  (``pollutant`` is the headline one the ground truth names)
      flow_zero   none; ``pollutant`` is the flow-like channel, which reads 0.0
      copy_paste  ``lag_s``: every channel repeats what the device sent ``lag_s`` earlier
                  (values and flags, when the history knows the flags)
      flag_abuse  ``share``: that share of ``pollutant``'s readings (hashed by timestamp)
                  flagged M or D, values unchanged
      false_stop  none; every channel flagged F, values unchanged
      implausible ``value``: what ``pollutant`` reads (−5 mg/m³, O2 25 %, pH 15 …)
      shift       ``sd_steps``, ``sd``: adds ``sd_steps × sd`` (``sd`` = the channel's noise)
      capture     ``drop``: that share of the device's messages (hashed by timestamp) lost
      offline     none: the device sends nothing
    ``pollutant`` is None exactly for the device-wide kinds (``DEVICE_WIDE``).
    """

    kind: FaultKind
    mn: str
    pollutant: str | None
    start: datetime
    end: datetime
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            kind = FaultKind(self.kind)
        except ValueError as exc:
            raise ScenarioError(f"unknown fault kind {self.kind!r}") from exc
        object.__setattr__(self, "kind", kind)
        where = f"{kind} fault on {self.mn}"
        try:
            params = {k: float(v) for k, v in self.params.items()}
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"{where}: params must be numbers") from exc
        object.__setattr__(self, "params", params)
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ScenarioError(f"{where}: start and end must be timezone-aware")
        if not self.end > self.start:
            raise ScenarioError(f"{where}: end must be after start")
        if (kind in DEVICE_WIDE) != (self.pollutant is None):
            raise ScenarioError(
                f"{where}: pollutant must be None exactly for device-wide "
                f"faults ({', '.join(sorted(DEVICE_WIDE))})"
            )
        missing = [p for p in REQUIRED_PARAMS[kind] if p not in self.params]
        if missing:
            raise ScenarioError(f"{where}: missing params {missing}")
        bad = [k for k, v in params.items() if not math.isfinite(v)]
        if bad:
            raise ScenarioError(f"{where}: params {bad} must be finite numbers")

    def active(self, ts: datetime) -> bool:
        return self.start <= ts < self.end

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ground truth (ISO 8601 times with their zone)."""
        return {
            "kind": str(self.kind),
            "mn": self.mn,
            "pollutant": self.pollutant,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "params": {k: float(v) for k, v in self.params.items()},
        }


def _draw(fault: Fault, ts: datetime, salt: str) -> float:
    return unit_hash(fault.kind.value, fault.mn, ts.timestamp(), salt)


def _faulty_value(fault: Fault, ts: datetime, value: float) -> float:
    p = fault.params
    match fault.kind:
        case FaultKind.FLATLINE:
            return float(p["value"])
        case FaultKind.SPIKE:
            return value * p["factor"]
        case FaultKind.DRIFT:
            hours = (ts - fault.start).total_seconds() / 3600.0
            if p.get("relative"):
                return value * (1.0 + p["rate_per_h"] * hours)
            return value + p["baseline"] * p["rate_per_h"] * hours
        case FaultKind.EXCEEDANCE:
            scale = p["factor"] * p["limit"] / p["baseline"]
            ramp = p.get("ramp_s", 0.0)
            if ramp > 0:
                share = min(1.0, (ts - fault.start).total_seconds() / ramp)
                scale = 1.0 + (scale - 1.0) * share
            return value * scale
        case FaultKind.CLAMP:
            # uniform on ±√3 has sd 1
            jitter = (2.0 * _draw(fault, ts, "clamp") - 1.0) * math.sqrt(3.0) * CLAMP_JITTER
            return p["limit"] * p["level"] * (1.0 + jitter)
        case FaultKind.FLOW_ZERO:
            return 0.0
        case FaultKind.IMPLAUSIBLE:
            return float(p["value"])
        case FaultKind.SHIFT:
            return value + p["sd_steps"] * p["sd"]
    raise ScenarioError(f"fault kind {fault.kind} does not alter a value")  # pragma: no cover


def _dilute(fault: Fault, ts: datetime, out: dict[str, float]) -> None:
    """Dilution air: O2 up, every concentration down by the same physical ratio."""
    if O2 not in out:
        return
    ramp = fault.params["ramp_s"]
    elapsed = (ts - fault.start).total_seconds()
    share = 1.0 if ramp <= 0 else min(1.0, elapsed / ramp)
    old = out[O2]
    new = min(old + fault.params["o2_add"] * share, 20.9)
    ratio = (21.0 - new) / (21.0 - old)
    out[O2] = round(new, DECIMALS)
    for code in DILUTED:
        if code in out:
            out[code] = round(out[code] * ratio, DECIMALS)


@dataclass(frozen=True, slots=True)
class Message:
    """What one device sends at one instant: values and their HJ 212 flags.

    ``flags`` holds only the values not flagged N (normal), so a clean message's
    flags are empty and payloads stay as compact as before flags existed.
    """

    mn: str
    values: dict[str, float]
    flags: dict[str, str] = field(default_factory=dict)


def apply_faults_flagged(
    faults_for_device: Iterable[Fault],
    ts: datetime,
    values: Mapping[str, float],
    flags: Mapping[str, str] | None = None,
    history: History | None = None,
) -> tuple[dict[str, float], dict[str, str]] | None:
    """The device's ``(values, flags)`` at ``ts`` once its active faults are applied.

    Returns None when the device sends nothing (an active offline fault, or a
    capture fault dropping this message). ``history(t)`` gives what the device sent
    at an earlier ``t`` (None if unknown); a copy_paste fault without it, or
    without a record at ``ts − lag``, changes nothing. Inputs are not modified;
    faulty values are rounded like the logger's and, except for the implausible
    kind (whose point is an impossible value), kept non-negative.
    """
    out = dict(values)
    out_flags = dict(flags or {})
    for fault in faults_for_device:
        if not fault.active(ts):
            continue
        match fault.kind:
            case FaultKind.OFFLINE:
                return None
            case FaultKind.CAPTURE:
                if _draw(fault, ts, "drop") < fault.params["drop"]:
                    return None
                continue
            case FaultKind.FALSE_STOP:
                out_flags = dict.fromkeys(out, STOPPED)
                continue
            case FaultKind.COPY_PASTE:
                earlier = history(_lagged(ts, fault.params["lag_s"])) if history else None
                if isinstance(earlier, tuple):
                    old_values, old_flags = earlier
                    out.update({k: v for k, v in old_values.items() if k in out})
                    out_flags = {k: f for k, f in old_flags.items() if k in out}
                elif earlier is not None:
                    out.update({k: v for k, v in earlier.items() if k in out})
                continue
            case FaultKind.DILUTION:
                _dilute(fault, ts, out)
                continue
        code = fault.pollutant
        if code is None or code not in out:
            continue
        if fault.kind is FaultKind.FLAG_ABUSE:
            u = _draw(fault, ts, "flag")
            if u < fault.params["share"]:
                out_flags[code] = ABUSE_FLAGS[int(u / fault.params["share"] * 2) % 2]
            continue
        new = _faulty_value(fault, ts, out[code])
        if fault.kind is FaultKind.CLAMP and "o2_ref" in fault.params and O2 in out:
            new *= (21.0 - min(out[O2], 20.0)) / (21.0 - fault.params["o2_ref"])
        # Concentrations cannot go negative; a channel that already is (draft
        # pressure) is left alone, and an implausible value is the point.
        if fault.kind is not FaultKind.IMPLAUSIBLE and out[code] >= 0:
            new = max(new, 0.0)
        out[code] = round(new, DECIMALS)
    return out, out_flags


def _lagged(ts: datetime, lag_s: float) -> datetime:
    return ts - timedelta(seconds=lag_s)


def apply_faults(
    faults_for_device: Iterable[Fault], ts: datetime, values: Mapping[str, float]
) -> dict[str, float] | None:
    """The values part of ``apply_faults_flagged`` (no flags, no history).

    Returns None when the device sends nothing. Faults outside their window, or on
    a pollutant the device does not send, change nothing. The caller passes only
    this device's faults; several active faults on one pollutant apply in order.
    """
    got = apply_faults_flagged(faults_for_device, ts, values)
    return None if got is None else got[0]

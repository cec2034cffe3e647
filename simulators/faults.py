"""Injected faults: what they do to a device's readings, as pure functions of time.

A ``Fault`` is also the ground truth a detector is scored against, so it carries
everything needed to reproduce its effect (the frozen value of a flatline, the
limit an exceedance overshoots) and nothing that depends on how the run went.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from simulators.devices import DECIMALS
from simulators.errors import ScenarioError


class FaultKind(StrEnum):
    """The falsification and failure patterns the detectors must catch (see DOMAIN.md)."""

    FLATLINE = "flatline"  # 恒值: the same number repeated
    SPIKE = "spike"  # one or two absurd readings
    DRIFT = "drift"  # analyser slope/zero wandering away, growing with time
    OFFLINE = "offline"  # the logger sends nothing
    EXCEEDANCE = "exceedance"  # a real emission above the permit limit


# Parameters each kind needs; checked at construction so that a run never fails
# half-way through because a fault was under-specified.
REQUIRED_PARAMS: Mapping[FaultKind, tuple[str, ...]] = {
    FaultKind.FLATLINE: ("value",),
    FaultKind.SPIKE: ("factor",),
    FaultKind.DRIFT: ("rate_per_h", "baseline"),
    FaultKind.OFFLINE: (),
    FaultKind.EXCEEDANCE: ("limit", "factor", "baseline"),
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault on one device, active on ``[start, end)``.

    params by kind:
      flatline   ``value``: the number repeated (the reading expected at ``start``)
      spike      ``factor``: readings multiplied by it (6–10 in scenarios)
      drift      ``rate_per_h``, ``baseline``: adds ``baseline × rate_per_h × hours since start``
      exceedance ``limit``, ``factor``, ``baseline``: the clean series rescaled so that
                 its baseline sits at ``factor × limit`` (noise kept: a parked constant
                 would be a flatline, not an exceedance)
      offline    none; ``pollutant`` is None because the whole device goes silent
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
        object.__setattr__(self, "params", dict(self.params))
        where = f"{kind} fault on {self.mn}"
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ScenarioError(f"{where}: start and end must be timezone-aware")
        if not self.end > self.start:
            raise ScenarioError(f"{where}: end must be after start")
        if (kind is FaultKind.OFFLINE) != (self.pollutant is None):
            raise ScenarioError(f"{where}: pollutant must be None exactly for offline faults")
        missing = [p for p in REQUIRED_PARAMS[kind] if p not in self.params]
        if missing:
            raise ScenarioError(f"{where}: missing params {missing}")

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


def _faulty_value(fault: Fault, ts: datetime, value: float) -> float:
    p = fault.params
    match fault.kind:
        case FaultKind.FLATLINE:
            return float(p["value"])
        case FaultKind.SPIKE:
            return value * p["factor"]
        case FaultKind.DRIFT:
            hours = (ts - fault.start).total_seconds() / 3600.0
            return value + p["baseline"] * p["rate_per_h"] * hours
        case FaultKind.EXCEEDANCE:
            return value * p["factor"] * p["limit"] / p["baseline"]
    raise ScenarioError(f"fault kind {fault.kind} does not alter a value")  # pragma: no cover


def apply_faults(
    faults_for_device: Iterable[Fault], ts: datetime, values: Mapping[str, float]
) -> dict[str, float] | None:
    """The device's message at ``ts`` once its active faults are applied.

    Returns None when the device sends nothing (an active offline fault). Faults
    outside their window, or on a pollutant the device does not send, change
    nothing. ``values`` is not modified; faulty values are rounded like the
    logger's and kept non-negative. The caller passes only this device's faults;
    several active faults on one pollutant apply in order.
    """
    out = dict(values)
    for fault in faults_for_device:
        if not fault.active(ts):
            continue
        if fault.kind is FaultKind.OFFLINE:
            return None
        code = fault.pollutant
        if code is None or code not in out:
            continue
        new = _faulty_value(fault, ts, out[code])
        # Concentrations cannot go negative; a channel that already is (draft
        # pressure) is left alone.
        out[code] = round(max(new, 0.0) if out[code] >= 0 else new, DECIMALS)
    return out

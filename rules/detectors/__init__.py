"""The detector catalog. Each detector is a frozen dataclass of parameters following the
contract in ``base.py``; rules files name them by ``kind``."""

from __future__ import annotations

from offsite.rules.detectors.averages import AverageExceedance
from offsite.rules.detectors.base import Batch, Detector, Hits, Partner, State, params_of
from offsite.rules.detectors.drift import Drift, SlowDrift
from offsite.rules.detectors.flatline import Flatline
from offsite.rules.detectors.integrity import Capture, CopyPaste, FlagAbuse, Offline
from offsite.rules.detectors.limits import Clamp, Exceedance, Implausible
from offsite.rules.detectors.noise import Noise
from offsite.rules.detectors.physics import Dilution, FalseStop, FlowZero
from offsite.rules.detectors.seasonal import Seasonal
from offsite.rules.detectors.spike import Spike
from offsite.rules.detectors.spikes import SpikeRate
from offsite.rules.detectors.stat import Stat

CATALOG: dict[str, type] = {
    d.kind: d
    for d in (
        Exceedance,
        AverageExceedance,
        Implausible,
        Clamp,
        Spike,
        Flatline,
        Stat,
        Seasonal,
        Noise,
        SpikeRate,
        Drift,
        SlowDrift,
        Dilution,
        FlowZero,
        FalseStop,
        CopyPaste,
        FlagAbuse,
        Capture,
    )
}
"""Round detectors by kind. ``offline`` runs on a timer and is configured apart."""

__all__ = [
    "CATALOG",
    "AverageExceedance",
    "Batch",
    "Capture",
    "Clamp",
    "CopyPaste",
    "Detector",
    "Dilution",
    "Drift",
    "Exceedance",
    "FalseStop",
    "FlagAbuse",
    "Flatline",
    "FlowZero",
    "Hits",
    "Implausible",
    "Noise",
    "Offline",
    "Partner",
    "Seasonal",
    "SlowDrift",
    "Spike",
    "SpikeRate",
    "Stat",
    "State",
    "params_of",
]

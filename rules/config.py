"""The rules as the engine uses them: which detector runs on which series, with what
parameters and gating, after the override cascade (device type < enterprise < point <
device: the most specific wins), and the silences. ``rules_file`` reads them from TOML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from offsite.rules.detectors import CATALOG

KINDS = ("rtd", "min", "hour", "day")
FLOW_CODES = frozenset({"a00000", "w00000", "a01011"})
O2_CODE = "a19001"
LEVELS = ("device_type", "enterprise", "point", "device")  # override cascade, weakest first
GATING_KEYS = {
    "severity",
    "count",
    "for",
    "clear_after",
    "clear_readings",
    "clear_score",
    "cooldown",
    "critical_score",
    "mute_on_maintenance",
    "enabled",
    "warm_up",
    "routine",
    "routine_window",
    "warm_up_for",
}


@dataclass(frozen=True, slots=True)
class Gating:
    """When a detector's hits become an alert, and when the alert goes away."""

    severity: str = "warning"
    count: int = 1  # N hits in a row
    for_s: float = 0.0  # … spanning at least this long (device time)
    clear_after_s: float = 300.0  # condition absent this long → the alert clears
    # … and for at least this many of the device's reporting intervals (0: the alert
    # book's own floor of 3): a detector that finds a fault again only every n readings
    clear_readings: int = 0
    clear_score: float | None = None  # hysteresis: while firing, stay on while score ≥ this
    cooldown_s: float = 0.0  # after a clear, no new alert on the same key for this long
    critical_score: float | None = None  # score at which the severity becomes critical
    mute_on_maintenance: bool = True  # mark suppressed while the device reports M/C
    warm_up: int = 0  # readings of a series the rule judges before it may fire at all
    warm_up_for_s: float = 0.0  # … and how long of its own (device) time
    # a condition this series has shown ``routine`` times (onsets, decayed) within the
    # last ``routine_window_s`` of its own time is its nature, not raised (0: off)
    routine: int = 0
    routine_window_s: float = 4 * 86400.0


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """What rules can be bound by: one series of one device."""

    mn: str
    pollutant: str
    kind: str
    device_type: str
    enterprise: str
    point: str
    limited: bool


@dataclass(frozen=True, slots=True)
class Bound:
    """A rule as it applies to one series: its name, detector and gating."""

    name: str
    detector: Any
    gating: Gating
    version: str

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.name, self.detector, self.gating)


@dataclass(frozen=True, slots=True)
class Silence:
    start: datetime
    end: datetime
    reason: str
    rules: frozenset[str]  # empty = all
    device_type: str | None = None
    enterprise: str | None = None
    point: str | None = None
    device: str | None = None

    def covers(self, rule: str, info: SeriesInfo, at: datetime) -> bool:
        if not (self.start <= at < self.end):
            return False
        if self.rules and rule not in self.rules and rule.split(".")[0] not in self.rules:
            return False
        return all(
            want is None or want == have
            for want, have in (
                (self.device_type, info.device_type),
                (self.enterprise, info.enterprise),
                (self.point, info.point),
                (self.device, info.mn),
            )
        )


@dataclass(frozen=True, slots=True)
class RuleDef:
    name: str
    detector: str
    params: Mapping[str, Any]
    gating: Gating
    enabled: bool
    device_types: frozenset[str] | None
    pollutants: tuple[str, ...]
    kinds: frozenset[str]


@dataclass(frozen=True, slots=True)
class OverrideDef:
    rule: str
    level: str
    target: str
    pollutants: tuple[str, ...]
    params: Mapping[str, Any]
    gating: Mapping[str, Any]
    enabled: bool | None


@dataclass(frozen=True, slots=True)
class RuleSet:
    version: str
    digest: str  # sha256 of the file's text: what the audit log and evidence refer to
    source: str
    rules: tuple[RuleDef, ...]
    overrides: tuple[OverrideDef, ...] = ()
    silences: tuple[Silence, ...] = ()
    offline_intervals: float = 5.0
    offline_severity: str = "major"
    offline_clear_after_s: float = 0.0
    offline_enabled: bool = True
    # [cases] open_for_severity: alerts opened at this severity or worse open a case
    # (store/cases.py open_cases_for); None: the engine opens no cases
    case_open_severity: str | None = None
    _cache: dict[SeriesInfo, tuple[Bound, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    # one object per distinct binding, shared by every series it applies to: tens of
    # thousands of series otherwise each held their own equal detectors (60+ MB at
    # 10,000 devices)
    _interned: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    # per override level: the enterprises, points and devices some override names
    _targets: dict[str, frozenset[str]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rules]

    def _signature(self, info: SeriesInfo) -> SeriesInfo:
        """``info`` with the enterprise, point and device left out where no override names
        them: what the rules it binds depend on. Series of 10,000 devices resolve as a
        few dozen kinds of series, not 80,000 (the cascade cost ~80 µs a series)."""
        t = self._targets
        if not t:
            for level in LEVELS[1:]:
                t[level] = frozenset(ov.target for ov in self.overrides if ov.level == level)

        def keep(level: str, value: str) -> str:
            named = t[level]
            return value if value in named or "" in named else ""

        return SeriesInfo(
            keep("device", info.mn),
            info.pollutant,
            info.kind,
            info.device_type,
            keep("enterprise", info.enterprise),
            keep("point", info.point),
            info.limited,
        )

    def resolve(self, info: SeriesInfo) -> tuple[Bound, ...]:
        """The rules that run on a series, after the override cascade."""
        info = self._signature(info)
        hit = self._cache.get(info)
        if hit is not None:
            return hit
        out: list[Bound] = []
        for rule in self.rules:
            if info.kind not in rule.kinds:
                continue
            if rule.device_types is not None and info.device_type not in rule.device_types:
                continue
            if not _pollutant_matches(rule.pollutants, info):
                continue
            params, gating, enabled = dict(rule.params), rule.gating, rule.enabled
            for level in LEVELS:
                for ov in self.overrides:
                    if ov.rule != rule.name or ov.level != level:
                        continue
                    if ov.target != _level_value(level, info):
                        continue
                    if ov.pollutants and not _pollutant_matches(ov.pollutants, info):
                        continue
                    params.update(ov.params)
                    gating = apply_gating(gating, ov.gating)
                    if ov.enabled is not None:
                        enabled = ov.enabled
            if not enabled:
                continue
            det = CATALOG[rule.detector](**params)
            bound = Bound(rule.name, det, gating, self.version)
            out.append(self._interned.setdefault(bound, bound))
        res = tuple(out)
        res = self._interned.setdefault(res, res)
        self._cache[info] = res
        return res

    def silenced(self, rule: str, info: SeriesInfo, at: datetime) -> str | None:
        for s in self.silences:
            if s.covers(rule, info, at):
                return s.reason
        return None


def _level_value(level: str, info: SeriesInfo) -> str:
    return {
        "device_type": info.device_type,
        "enterprise": info.enterprise,
        "point": info.point,
        "device": info.mn,
    }[level]


def _pollutant_matches(patterns: Sequence[str], info: SeriesInfo) -> bool:
    for p in patterns:
        if p == "*" or p == info.pollutant:
            return True
        if p == "@limited" and info.limited:
            return True
        if p == "@flow" and info.pollutant in FLOW_CODES:
            return True
        if p == "@concentration" and info.limited and info.pollutant not in FLOW_CODES:
            return True
        if p == "@unlimited" and not info.limited:
            return True
    return False


def apply_gating(g: Gating, raw: Mapping[str, Any]) -> Gating:
    names = {
        "for": "for_s",
        "clear_after": "clear_after_s",
        "cooldown": "cooldown_s",
        "routine_window": "routine_window_s",
        "warm_up_for": "warm_up_for_s",
    }
    return replace(g, **{names.get(k, k): v for k, v in raw.items() if k != "enabled"})


# -- parsing --------------------------------------------------------------------------

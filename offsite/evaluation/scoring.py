"""Scoring detections against injected ground truth. Pure: lists in, figures out.

Which rules are meant to catch which fault kind is a table (``KIND_RULES``), kept
here as data so that a new detector is scored by adding its name, not by editing
the arithmetic. An alert *matches* a fault when it is on the same device, on the
same pollutant (or either names none: device-wide faults, device-level rules; or
one the fault also moves, ``ALSO_AFFECTS``),
and raised within ``[start, end + grace]``.

Per kind:
  recall     faults with at least one matching alert of the kind's rules / faults
  precision  alerts of the kind's rules that match any injected fault on their device
             / alerts of the kind's rules (over every run, clean ones included)
  delay      median of (first matching alert − fault start), over detected faults
  clean      alerts of the kind's rules on clean runs per device-day
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# Rule names that detect each fault kind. Rules on averages ("exceedance.hour") are
# listed where they would be the detecting rule. A rule named after one of these with
# a suffix ("drift_long", "spike.xchan") counts for the same kind (``rule_detects``),
# so a new variant of a detector is scored without editing this table.
KIND_RULES: Mapping[str, tuple[str, ...]] = {
    "flatline": ("flatline",),
    "spike": ("spike",),
    "drift": ("drift", "slow_drift"),  # the fast runaway and the per-cent-an-hour creep
    "offline": ("offline",),
    "exceedance": ("exceedance", "exceedance.hour", "exceedance_1h", "exceedance_1d"),
    "clamp": ("clamp",),
    "dilution": ("dilution",),
    "flow_zero": ("flow_zero",),
    "copy_paste": ("copy_paste",),
    "flag_abuse": ("flag_abuse",),
    "false_stop": ("false_stop",),
    "implausible": ("implausible",),
    "shift": ("stat",),
    "capture": ("capture",),
}
DEFAULT_GRACE = timedelta(minutes=10)
# How long after a fault ends an alert still counts: a capture rate is judged over an
# hour, and an hourly exceedance only exists once its hour is over.
GRACE: Mapping[str, timedelta] = {
    "capture": timedelta(minutes=70),
    "offline": timedelta(minutes=15),
    "exceedance": timedelta(minutes=70),
}
UNEXPLAINED = "none"
# Channels a fault also moves besides the pollutant its ground truth names: dilution
# air raises O2 and lowers every concentration, so an alert on any of them is the
# fault's doing (simulators.faults.O2 and DILUTED).
ALSO_AFFECTS: Mapping[str, frozenset[str]] = {
    "dilution": frozenset({"a19001", "a21026", "a21002", "a34013", "a21005", "a21024"}),
}


# Median delay targets (minutes) for the kinds that are not step-like (issue 17): a
# drift of 1–2 %/h is only visible after hours, a day-old copy after a few readings.
DELAY_TARGETS_MIN: Mapping[str, float] = {"drift": 360.0, "copy_paste": 10.0}


@dataclass(frozen=True, slots=True)
class Targets:
    precision: float = 0.95
    recall: float = 0.95
    delay_min: float = 5.0  # step-like faults
    clean_per_device_day: float = 0.1
    delay_by_kind: Mapping[str, float] = field(default_factory=lambda: dict(DELAY_TARGETS_MIN))

    def delay_for(self, kind: str) -> float:
        return self.delay_by_kind.get(kind, self.delay_min)


def rule_detects(kind: str, rule: str, kind_rules: Mapping[str, tuple[str, ...]]) -> bool:
    """True when ``rule`` is one of the kind's rules or a suffixed variant of one."""
    for base in kind_rules.get(kind, ()):
        if rule == base or rule.startswith((base + "_", base + ".")):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Truth:
    """One injected fault, as far as scoring cares."""

    kind: str
    mn: str
    pollutant: str | None
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Raised:
    """One alert opened by the engine: rule, device, pollutant ('' for the device), when."""

    rule: str
    mn: str
    pollutant: str
    at: datetime


@dataclass(frozen=True, slots=True)
class KindScore:
    kind: str
    faults: int
    detected: int
    alerts: int  # alerts of the kind's rules, every run
    true_alerts: int  # … of which explained by an injected fault on their device
    delays_min: tuple[float, ...]
    clean_alerts: int  # alerts of the kind's rules on clean runs
    clean_device_days: float

    @property
    def recall(self) -> float | None:
        return self.detected / self.faults if self.faults else None

    @property
    def precision(self) -> float | None:
        return self.true_alerts / self.alerts if self.alerts else None

    @property
    def median_delay_min(self) -> float | None:
        return statistics.median(self.delays_min) if self.delays_min else None

    @property
    def clean_rate(self) -> float | None:
        return self.clean_alerts / self.clean_device_days if self.clean_device_days else None

    def missed(self, t: Targets) -> list[str]:
        """The targets this kind misses, in words. A figure that cannot be computed
        (no alerts → no precision) misses nothing by itself: recall says it."""
        out = []
        if self.recall is not None and self.recall < t.recall:
            out.append(f"recall {self.recall:.2f} < {t.recall:.2f}")
        if self.precision is not None and self.precision < t.precision:
            out.append(f"precision {self.precision:.2f} < {t.precision:.2f}")
        target = t.delay_for(self.kind)
        if self.median_delay_min is not None and self.median_delay_min > target:
            out.append(f"median delay {self.median_delay_min:.1f} min > {target:g}")
        if self.clean_rate is not None and self.clean_rate > t.clean_per_device_day:
            out.append(
                f"clean false alerts {self.clean_rate:.2f}/device-day > {t.clean_per_device_day:g}"
            )
        return out


@dataclass(slots=True)
class Scores:
    kinds: list[KindScore]
    # rule → fault kind (or UNEXPLAINED) → alerts of that rule it explains
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    clean_alerts: int = 0
    clean_device_days: float = 0.0
    alerts: int = 0
    clean_by_rule: dict[str, int] = field(default_factory=dict)
    # per group of clean devices (the plant profile): device-days and alerts by rule
    clean_days_by_group: dict[str, float] = field(default_factory=dict)
    clean_by_group: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def clean_rate(self) -> float | None:
        return self.clean_alerts / self.clean_device_days if self.clean_device_days else None

    def missed(self, t: Targets) -> dict[str, list[str]]:
        out = {k.kind: m for k in self.kinds if (m := k.missed(t))}
        rate = self.clean_rate
        if rate is not None and rate > t.clean_per_device_day:
            out["clean (all rules)"] = [
                f"false alerts {rate:.2f}/device-day > {t.clean_per_device_day:g}"
            ]
        return out


def grace_of(kind: str) -> timedelta:
    return GRACE.get(kind, DEFAULT_GRACE)


def matches(fault: Truth, alert: Raised) -> bool:
    """Same device, compatible pollutant, raised within the fault's window plus grace."""
    if alert.mn != fault.mn:
        return False
    if (
        fault.pollutant
        and alert.pollutant
        and fault.pollutant != alert.pollutant
        and alert.pollutant not in ALSO_AFFECTS.get(fault.kind, ())
    ):
        return False
    return fault.start <= alert.at <= fault.end + grace_of(fault.kind)


def score(
    faults: Sequence[Truth],
    alerts: Sequence[Raised],
    clean_alerts: Sequence[Raised],
    clean_device_days: float,
    kinds: Iterable[str] | None = None,
    kind_rules: Mapping[str, tuple[str, ...]] = KIND_RULES,
    group_of: Mapping[str, str] | None = None,
    clean_days_by_group: Mapping[str, float] | None = None,
) -> Scores:
    """Score ``alerts`` (from the faulty runs) and ``clean_alerts`` (from clean runs).

    ``group_of`` (device → group, e.g. its plant profile) and ``clean_days_by_group``
    break the clean false alerts down by group: which plants cry wolf, and why.
    """
    by_mn: dict[str, list[Truth]] = {}
    for f in faults:
        by_mn.setdefault(f.mn, []).append(f)
    every = [*alerts, *clean_alerts]

    def explained_by(a: Raised) -> list[Truth]:
        return [f for f in by_mn.get(a.mn, ()) if matches(f, a)]

    names = list(kinds) if kinds is not None else sorted({f.kind for f in faults})
    out = []
    for kind in names:
        mine = [a for a in every if rule_detects(kind, a.rule, kind_rules)]
        delays = []
        detected = 0
        kind_faults = [f for f in faults if f.kind == kind]
        for f in kind_faults:
            hits = [a.at for a in mine if matches(f, a)]
            if hits:
                detected += 1
                delays.append((min(hits) - f.start).total_seconds() / 60.0)
        out.append(
            KindScore(
                kind,
                len(kind_faults),
                detected,
                len(mine),
                sum(1 for a in mine if explained_by(a)),
                tuple(sorted(delays)),
                sum(1 for a in clean_alerts if rule_detects(kind, a.rule, kind_rules)),
                clean_device_days,
            )
        )
    confusion: dict[str, dict[str, int]] = {}
    for a in every:
        row = confusion.setdefault(a.rule, {})
        why = {f.kind for f in explained_by(a)} or {UNEXPLAINED}
        for k in why:
            row[k] = row.get(k, 0) + 1
    by_rule: dict[str, int] = {}
    for a in clean_alerts:
        by_rule[a.rule] = by_rule.get(a.rule, 0) + 1
    by_group: dict[str, dict[str, int]] = {g: {} for g in clean_days_by_group or {}}
    for a in clean_alerts:
        g = (group_of or {}).get(a.mn)
        if g is not None:
            row = by_group.setdefault(g, {})
            row[a.rule] = row.get(a.rule, 0) + 1
    return Scores(
        out,
        confusion,
        len(clean_alerts),
        clean_device_days,
        len(every),
        by_rule,
        dict(clean_days_by_group or {}),
        by_group,
    )

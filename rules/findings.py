"""What a rule says about one value: the input to the alert lifecycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SEVERITY_RANK = {"info": 0, "warning": 1, "major": 2, "critical": 3}


def rule_name(base: str, kind: str) -> str:
    """Rules on averages are rules of their own ("exceedance.hour"): an hourly average
    and the real-time values beside it are different series with different periods, so
    their alerts open and clear apart."""
    return base if kind == "rtd" else f"{base}.{kind}"


def seen_key(rule: str, mn: str, pollutant: str) -> tuple[str, str]:
    """The ``Evaluation.seen`` key that tells whether ``rule``'s condition is gone."""
    if not pollutant:
        return (mn, "")
    kind = rule.partition(".")[2]
    return (mn, f"{pollutant}@{kind}" if kind else pollutant)


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    mn: str
    pollutant: str  # '' for device-level rules (offline)
    ts: datetime
    value: float | None
    severity: str
    message: str
    limit: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    # why the alert is muted (maintenance flags, a declared silence), None if it is not:
    # a muted alert is still stored and shown as such, never dropped
    suppressed: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rule, self.mn, self.pollutant)

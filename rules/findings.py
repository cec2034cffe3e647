"""What a rule says about one value: the input to the alert lifecycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SEVERITY_RANK = {"info": 0, "warning": 1, "major": 2, "critical": 3}


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

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rule, self.mn, self.pollutant)

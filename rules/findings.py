"""What a rule says about one value: the input to the alert lifecycle."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

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


class SeenTimes(Mapping[tuple[str, str], datetime]):
    """``Evaluation.seen`` over a slice of series, looked up rather than built.

    The alert lifecycle asks it only about keys with an active alert, a few among tens
    of thousands of series; building a key and a datetime for every series of every
    slice cost the rule runner ~20 MB at a time and a datetime per series. Holds the
    slice's series keys (mn, pollutant, kind), their newest device times (epoch s, -inf
    where the slice has none) and the devices' receive times under (mn, '')."""

    def __init__(
        self,
        keys: Sequence[tuple[str, str, str]],
        newest: np.ndarray,
        devices: Mapping[tuple[str, str], datetime],
        index: Mapping[tuple[str, str, str], int] | None = None,
    ) -> None:
        # ``index`` (keys → position), when given, is shared with another view of them
        self._index = index if index is not None else {k: i for i, k in enumerate(keys)}
        self._newest = newest
        self._devices = dict(devices)

    def __getitem__(self, key: tuple[str, str]) -> datetime:
        mn, what = key
        if not what:
            return self._devices[key]
        pollutant, _, kind = what.partition("@")  # the inverse of seen_key
        i = self._index.get((mn, pollutant, kind or "rtd"))
        if i is None or not np.isfinite(self._newest[i]):
            raise KeyError(key)
        return datetime.fromtimestamp(float(self._newest[i]), UTC)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        yield from self._devices
        for (mn, pollutant, kind), i in self._index.items():
            if np.isfinite(self._newest[i]):
                yield seen_key(rule_name("any", kind), mn, pollutant)

    def __len__(self) -> int:
        return len(self._devices) + int(np.isfinite(self._newest).sum())


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
    # rules of valid readings: the series' newest valid reading before this one (None:
    # unknown, or a rule that judges every reading); the alert book ends an episode
    # only when valid readings showed the condition gone for its clear time
    judged_before: datetime | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rule, self.mn, self.pollutant)

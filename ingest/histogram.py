"""A histogram as plain counts: observed in the hot path without locks or a metrics
library, read by the Prometheus collector at scrape time (cumulative, as Prometheus
wants). One thread writes; a scrape may read a count one observation stale, never torn.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field


@dataclass(slots=True)
class Counts:
    bounds: tuple[float, ...]  # upper bounds, ascending; +Inf implied
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ValueError("histogram bounds must be strictly ascending")
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: value ≤ bound
        self.total += value
        self.n += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """[(le, count of values ≤ le)], ending with +Inf — Prometheus' bucket form."""
        out, running = [], 0
        for le, c in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            running += c
            out.append((le, running))
        return out


BATCH_SIZE_BOUNDS = (1, 10, 50, 100, 500, 1000, 2500, 5000, 10_000, 50_000)
COMMIT_SECONDS_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)

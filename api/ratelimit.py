"""A small in-process token-bucket limiter. Pure: the caller passes the clock.

One process, one memory: with several API processes each enforces its own limit, so the
effective limit is that many times higher — still enough to stop password guessing and
check-in floods. Idle buckets are forgotten, so memory is bounded by the active keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class RateLimiter:
    per_minute: float
    burst: int
    max_keys: int = 100_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key → (tokens, t)

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs per_minute > 0 and burst ≥ 1")

    def hit(self, key: str, now: float) -> float | None:
        """Spend one token of ``key``'s bucket: None if allowed, else seconds to wait."""
        rate = self.per_minute / 60.0
        tokens = self._tokens(key, now)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate
        if len(self._buckets) >= self.max_keys and key not in self._buckets:
            self._forget_full(now)
        self._buckets[key] = (tokens - 1.0, now)
        return None

    def refund(self, key: str, now: float) -> None:
        """Give back the token a request spent (a sign-in that succeeded costs nothing)."""
        if key in self._buckets:
            self._buckets[key] = (min(float(self.burst), self._tokens(key, now) + 1.0), now)

    def _tokens(self, key: str, now: float) -> float:
        """``key``'s tokens at ``now``: what it held, refilled since, at most the burst."""
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - last) * self.per_minute / 60.0)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled completely: they hold no information."""
        rate = self.per_minute / 60.0
        full = [
            k for k, (t, last) in self._buckets.items() if t + (now - last) * rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]

"""Pure signal helpers: the plant's daily load and the sensors' noise.

Real emission series are a slow process signal (plant load over the day) plus
correlated analyser wander plus fast measurement noise. Detectors for flatlines
and spikes are tuned on exactly that texture, so the simulated one has to have
it: too little noise and clean data looks frozen, too heavy tails and clean data
looks spiky.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta, timezone

import numpy as np

# Plants in the domain run on China Standard Time; load follows the local clock.
CST = timezone(timedelta(hours=8))
# Peak load in the early afternoon, trough in the small hours (a cosine puts the
# trough 12 h after the peak: 02:00).
PEAK_HOUR = 14.0
# Fast noise is drawn in blocks of this many readings, one per equal-width stratum
# of a uniform law (in random order). Why: a spike detector compares each reading
# with the median/MAD of the previous ~30; with i.i.d. noise (even bounded) the
# MAD of 30 draws is sometimes small by chance and clean data then "spikes" at
# more than 5 robust sd a few times per 100 000 readings. Stratified noise keeps
# every window's spread honest, and its rounded value can never sit still for 10
# readings, so clean data trips neither detector.
NOISE_BLOCK = 10
_SQRT3 = math.sqrt(3.0)


def unit_hash(*parts: object) -> float:
    """A number in [0, 1) fixed by ``parts``: per-timestamp 'randomness' with no generator.

    Used where an effect must depend on the instant alone (which readings a fault
    touches, when a device calibrates), so it is the same whatever ran before.
    """
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def hour_of_day(ts: datetime, tz: timezone = CST) -> float:
    """Fractional local hour, so that the load cycle follows the plant's clock, not UTC."""
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    local = ts.astimezone(tz)
    return local.hour + local.minute / 60 + (local.second + local.microsecond / 1e6) / 3600


def daily_cycle(hour_of_day: float, amplitude: float, peak_hour: float = PEAK_HOUR) -> float:
    """Relative plant load: ``1 ± amplitude``, peaking at ``peak_hour``.

    A single cosine is smooth everywhere (including midnight), so the load never
    introduces a step that a spike detector could mistake for a fault.
    """
    return 1.0 + amplitude * math.cos(2.0 * math.pi * (hour_of_day - peak_hour) / 24.0)


class StratifiedNoise:
    """Unit-variance white noise for ``n`` channels, stratified in blocks (see NOISE_BLOCK).

    The marginal law is uniform on ±√3 (sd 1): bounded, so no reading can stray
    far from its neighbours however long the run.
    """

    __slots__ = ("_block", "_i", "block", "n")

    def __init__(self, n: int, block: int = NOISE_BLOCK) -> None:
        if n < 1 or block < 2:
            raise ValueError("StratifiedNoise needs n >= 1 channels and block >= 2")
        self.n = n
        self.block = block
        self._block = np.empty((block, n))
        self._i = block

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Next vector of noise; consumes random numbers once per block, deterministically."""
        if self._i == self.block:
            order = rng.permuted(np.tile(np.arange(self.block), (self.n, 1)), axis=1).T
            u = (order + rng.random((self.block, self.n))) / self.block  # in [0, 1)
            self._block = (2.0 * u - 1.0) * _SQRT3
            self._i = 0
        out = self._block[self._i]
        self._i += 1
        return out


class AR1:
    """Correlated analyser wander: a stationary AR(1) per channel, in continuous time.

    The correlation depends on the time elapsed (``phi = exp(-dt/tau)``) rather than
    on the number of steps, so a device reporting every second and one reporting
    every minute wander alike in wall-clock terms. One instance holds a vector of
    channels because a device advances all its channels at once, and one numpy
    call per step is what keeps an hour of a fleet replayable in about a second.
    """

    __slots__ = ("_coef", "_started", "sd", "tau_s", "x")

    def __init__(self, sd: np.ndarray, tau_s: np.ndarray) -> None:
        self.sd = np.asarray(sd, dtype=float)
        self.tau_s = np.asarray(tau_s, dtype=float)
        if self.sd.shape != self.tau_s.shape or np.any(self.tau_s <= 0) or np.any(self.sd < 0):
            raise ValueError("AR1 needs matching sd >= 0 and tau_s > 0 arrays")
        self.x = np.zeros_like(self.sd)
        self._started = False
        self._coef: tuple[float, np.ndarray, np.ndarray] | None = None  # (dt, phi, innovation sd)

    def coefficients(self, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        """``(phi, innovation sd)`` for a step of ``dt_s``; cached because dt rarely changes."""
        dt_s = max(dt_s, 0.0)
        if self._coef is None or self._coef[0] != dt_s:
            phi = np.exp(-dt_s / self.tau_s)
            self._coef = (dt_s, phi, self.sd * np.sqrt(1.0 - phi * phi))
        return self._coef[1], self._coef[2]

    @property
    def started(self) -> bool:
        return self._started

    def advance(self, rng: np.random.Generator, dt_s: float | None) -> np.ndarray:
        """Move the state by ``dt_s`` seconds with uniform innovations; return it.

        Exactly one draw per channel whatever ``dt_s``, so the random stream, and
        therefore every later value, depends only on the seed and the number of
        steps. ``dt_s=None`` (or the first call) starts from the stationary law.
        """
        z = rng.uniform(-_SQRT3, _SQRT3, self.sd.size)
        if not self._started or dt_s is None:
            self.x = self.sd * z
            self._started = True
        else:
            phi, innovation = self.coefficients(dt_s)
            self.x = phi * self.x + innovation * z
        # Safe to hand out: the state is rebound, never mutated in place.
        return self.x


class Wander:
    """Slow analyser/process wander: an AR(1) smoothed by a first-order low-pass.

    Raw AR(1) paths are jagged: sampled every minute, a 30-minute window holds
    only a few independent stretches and its MAD is unreliable, so clean data
    trips spike detectors. Low-passing the AR(1) with the same time constant
    gives smooth, trend-like paths (which move the median and the MAD together)
    while keeping the stationary sd at ``sd``.
    """

    __slots__ = ("_ar", "y")

    def __init__(self, sd: np.ndarray, tau_s: np.ndarray) -> None:
        # The low-passed OU process has half the variance of its input.
        self._ar = AR1(np.asarray(sd, dtype=float) * math.sqrt(2.0), tau_s)
        self.y = np.zeros_like(self._ar.sd)

    def advance(self, rng: np.random.Generator, dt_s: float | None) -> np.ndarray:
        """Like ``AR1.advance``: one draw per channel, ``dt_s=None`` restarts stationary."""
        started = self._ar.started
        x = self._ar.advance(rng, dt_s)
        if not started or dt_s is None:
            self.y = x / math.sqrt(2.0)
        else:
            phi = self._ar.coefficients(dt_s)[0]
            self.y = phi * self.y + (1.0 - phi) * x
        return self.y

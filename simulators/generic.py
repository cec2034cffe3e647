"""Series the engine knows nothing about: a seeded family of NAB-like shapes.

The rules on channels without a permit limit (``implausible``, ``spike``,
``flatline``, ``stat``) must hold on whatever a device reports, not only on the
plant model they were tuned on. This generator stands in for a public benchmark of
labelled real and artificial series (Numenta's NAB): flat, seasonal, square, noisy,
random-walk, quantised and slow series at 5-minute to 1-hour intervals, some with a
labelled anomaly (a level shift, a flat stretch, a change of noise, denser spikes).

Labels follow NAB's convention so that the figures compare: one window per anomaly,
centred on its onset, 10 % of the series' length divided by the number of anomalies.
Pure and deterministic: the same seed gives the same series.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday: the weekly family starts its week
INTERVALS_S = (300.0, 600.0, 3600.0)
# readings per series: 14 days of 5-minute data, 28 of 10-minute, 84 of hourly
POINTS = {300.0: 4032, 600.0: 4032, 3600.0: 2016}
WINDOW_SHARE = 0.10  # NAB: the windows of a series cover 10 % of it
DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class GenericSeries:
    """One labelled series: its values at ``start + i × interval_s`` (NaN: no reading)
    and the windows (device time, [start, end)) its anomalies are labelled in."""

    name: str
    family: str
    interval_s: float
    start: datetime
    values: np.ndarray
    windows: tuple[tuple[datetime, datetime], ...] = ()

    @property
    def anomalous(self) -> bool:
        return bool(self.windows)

    @property
    def days(self) -> float:
        return float(self.values.shape[0]) * self.interval_s / DAY_S

    def time(self, i: int) -> datetime:
        return self.start + timedelta(seconds=i * self.interval_s)


Shape = Callable[[np.random.Generator, np.ndarray, float], tuple[np.ndarray, list[int]]]


def _daily(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A daily cycle with a random phase and a second harmonic: not a pure sine."""
    ph = rng.uniform(0, 2 * np.pi)
    return np.sin(2 * np.pi * t + ph) + rng.uniform(0, 0.4) * np.sin(4 * np.pi * t + 2 * ph)


def _onset(rng: np.random.Generator, n: int) -> int:
    """Where an anomaly starts: somewhere in the second half, leaving room after it."""
    return int(rng.integers(n // 2, n - n // 8))


def _flat(rng: np.random.Generator, t: np.ndarray, dt: float) -> tuple[np.ndarray, list[int]]:
    return np.full(t.shape[0], round(float(rng.uniform(-50, 100)), 2)), []


def _sine(rng: np.random.Generator, t: np.ndarray, dt: float) -> tuple[np.ndarray, list[int]]:
    level, amp = rng.uniform(20, 100), rng.uniform(5, 40)
    return level + amp * _daily(rng, t), []


def _sine_noise(rng: np.random.Generator, t: np.ndarray, dt: float) -> tuple[np.ndarray, list[int]]:
    level, amp = rng.uniform(20, 100), rng.uniform(5, 40)
    return level + amp * _daily(rng, t) + rng.normal(0, 0.05 * amp, t.shape[0]), []


def _square(rng: np.random.Generator, t: np.ndarray, dt: float) -> tuple[np.ndarray, list[int]]:
    """Low at night, high by day (NAB's artificial daily series), small noise."""
    lo, hi = rng.uniform(10, 30), rng.uniform(60, 90)
    start, length = rng.uniform(0.2, 0.4), rng.uniform(0.3, 0.5)
    day = ((t % 1.0) >= start) & ((t % 1.0) < start + length)
    return np.where(day, hi, lo) + rng.normal(0, 0.02 * (hi - lo), t.shape[0]), []


def _noise(rng: np.random.Generator, t: np.ndarray, dt: float) -> tuple[np.ndarray, list[int]]:
    level, sd = rng.uniform(-20, 100), rng.uniform(1, 20)
    return level + rng.normal(0, sd, size=int(t.shape[0])), []


def _walk(rng: np.random.Generator, t: np.ndarray, dt: float) -> tuple[np.ndarray, list[int]]:
    sd = rng.uniform(0.1, 2.0)
    return rng.uniform(0, 100) + np.cumsum(rng.normal(0, sd, t.shape[0])), []


def _integers(rng: np.random.Generator, t: np.ndarray, dt: float) -> tuple[np.ndarray, list[int]]:
    """Small counts: a Poisson series around a low daily cycle (requests, events)."""
    lam = rng.uniform(1, 6) * (1.0 + 0.6 * _daily(rng, t) / 1.4)
    return rng.poisson(np.maximum(lam, 0.05)).astype(float), []


def _slow(rng: np.random.Generator, t: np.ndarray, dt: float) -> tuple[np.ndarray, list[int]]:
    """A slowly varying reading at a coarse resolution (a tank level, a room): it sits
    on one value for hours at a time."""
    period = rng.uniform(3, 10)
    x = rng.uniform(10, 40) + rng.uniform(2, 6) * np.sin(2 * np.pi * t / period)
    x = x + np.cumsum(rng.normal(0, 0.02 * np.sqrt(dt / 300.0), t.shape[0]))
    return np.round(x * 2) / 2, []


def _weekly(rng: np.random.Generator, t: np.ndarray, dt: float) -> tuple[np.ndarray, list[int]]:
    """Daily and weekly seasonality (quieter weekends), multiplicative noise (taxi rides)."""
    level = rng.uniform(100, 1000)
    weekend = (np.floor(t) % 7) >= 5
    x = level * (1 + 0.5 * _daily(rng, t)) * np.where(weekend, 0.6, 1.0)
    return np.round(np.maximum(x, 0) * (1 + rng.normal(0, 0.05, t.shape[0]))), []


def _level(sign: float) -> Shape:
    def make(rng: np.random.Generator, t: np.ndarray, dt: float) -> tuple[np.ndarray, list[int]]:
        """NAB's jumps up/down: a daily pattern whose level moves for about a day."""
        x, _ = _sine_noise(rng, t, dt)
        at = _onset(rng, t.shape[0])
        length = max(int(DAY_S / dt), 2)
        amp = float(np.std(x)) * rng.uniform(1.5, 2.5)
        x[at : at + length] += sign * amp
        return x, [at]

    return make


def _flat_middle(
    rng: np.random.Generator, t: np.ndarray, dt: float
) -> tuple[np.ndarray, list[int]]:
    """A daily pattern that stops and holds one value for about a day."""
    x, _ = _sine_noise(rng, t, dt)
    at = _onset(rng, t.shape[0])
    length = max(int(DAY_S / dt), 2)
    x[at : at + length] = x[at]
    return x, [at]


def _noise_change(
    rng: np.random.Generator, t: np.ndarray, dt: float
) -> tuple[np.ndarray, list[int]]:
    """Noise around a daily cycle that becomes several times louder, and stays so."""
    level, amp, sd = rng.uniform(20, 100), rng.uniform(2, 10), rng.uniform(0.5, 1.5)
    noise = rng.normal(0, sd, size=int(t.shape[0]))
    at = _onset(rng, t.shape[0])
    noise[at:] *= rng.uniform(4, 8)
    return level + amp * _daily(rng, t) + noise, [at]


def _spike_density(
    rng: np.random.Generator, t: np.ndarray, dt: float
) -> tuple[np.ndarray, list[int]]:
    """Occasional spikes on a noisy level, then many more of them (NAB's
    art_increase_spike_density): the normal spikes are part of the series."""
    n = t.shape[0]
    level, sd = rng.uniform(20, 100), rng.uniform(0.5, 2)
    x = level + rng.normal(0, sd, size=int(n))
    at = _onset(rng, n)
    per_day = DAY_S / dt
    rate = np.where(np.arange(n) < at, 1.0 / (3 * per_day), 12.0 / per_day)
    spikes = rng.random(n) < rate
    x[spikes] += rng.uniform(10, 20) * sd * rng.choice([-1.0, 1.0], int(spikes.sum()))
    return x, [at]


FAMILIES: dict[str, Shape] = {
    "flat": _flat,
    "daily_sine": _sine,
    "daily_sine_noise": _sine_noise,
    "square": _square,
    "noise": _noise,
    "random_walk": _walk,
    "integers": _integers,
    "slow": _slow,
    "weekly": _weekly,
    "level_up": _level(1.0),
    "level_down": _level(-1.0),
    "flat_middle": _flat_middle,
    "noise_change": _noise_change,
    "spike_density": _spike_density,
}


def nab_windows(
    onsets: list[int], n: int, start: datetime, interval_s: float
) -> tuple[tuple[datetime, datetime], ...]:
    """NAB's labels: per anomaly a window of 10 % of the series over their number,
    centred on the onset and cut to the series."""
    if not onsets:
        return ()
    half = WINDOW_SHARE * n / len(onsets) / 2
    out = []
    for at in onsets:
        lo, hi = max(0.0, at - half), min(float(n), at + half)
        out.append(
            (start + timedelta(seconds=lo * interval_s), start + timedelta(seconds=hi * interval_s))
        )
    return tuple(out)


def generic_series(
    seed: int,
    families: tuple[str, ...] | None = None,
    intervals_s: tuple[float, ...] = INTERVALS_S,
) -> list[GenericSeries]:
    """Every family at every interval for one seed (each series its own stream)."""
    out = []
    for family in families or tuple(FAMILIES):
        for dt in intervals_s:
            # one stream per (seed, family, interval): adding a family moves no other
            rng = np.random.default_rng([seed, list(FAMILIES).index(family), int(dt)])
            n = POINTS.get(dt, 4032)
            t = np.arange(n) * dt / DAY_S
            values, onsets = FAMILIES[family](rng, t, dt)
            values = np.round(values, 6)
            out.append(
                GenericSeries(
                    f"{family}@{dt / 60:g}m#{seed}",
                    family,
                    dt,
                    START,
                    values,
                    nab_windows(onsets, n, START, dt),
                )
            )
    return out


def _nab_time(text: str) -> datetime:
    """NAB's timestamps carry no zone: read as UTC (only differences matter here)."""
    ts = datetime.fromisoformat(text.strip())
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def nab_series(name: str, csv_text: str, windows: list[list[str]] | None = None) -> GenericSeries:
    """A NAB data file (``timestamp,value`` with a header) and its labelled windows as
    a series on a regular grid: the interval is the median step between readings, each
    reading goes to its nearest grid slot (the first one wins), missing slots are NaN."""
    rows = [line.split(",") for line in csv_text.strip().splitlines()[1:] if line.strip()]
    if len(rows) < 3:
        raise ValueError(f"{name}: fewer than 3 readings")
    ts = [_nab_time(r[0]) for r in rows]
    vals = np.array([float(r[1]) for r in rows])
    secs = np.array([(t - ts[0]).total_seconds() for t in ts])
    interval = float(np.median(np.diff(secs)))
    if not interval > 0:
        raise ValueError(f"{name}: timestamps do not advance")
    slot = np.round(secs / interval).astype(np.int64)
    values = np.full(int(slot.max()) + 1, np.nan)
    first = np.unique(slot, return_index=True)[1]
    values[slot[first]] = vals[first]
    labelled = tuple((_nab_time(lo), _nab_time(hi)) for lo, hi in windows or [])
    family = name.rsplit("/", 1)[-1].removesuffix(".csv")
    return GenericSeries(name, family, interval, ts[0], values, labelled)

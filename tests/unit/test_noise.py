"""Growing noise: moves several times their usual size are raised; a daily cycle, a
spike, a level shift and a process channel are not."""

from __future__ import annotations

import numpy as np

from offsite.rules.detectors import Hits, Noise
from tests.unit.one_series import feed

DT = 300.0  # five-minute data
PER_DAY = int(86400 / DT)


def judge(det: Noise, x: np.ndarray, load_until: int | None = None) -> list[Hits]:
    """Feed one series through a window as wide as the detector reads."""
    return feed(det, x, DT, det.history, load_until=load_until)


def run(det: Noise, x: np.ndarray, load_until: int | None = None) -> np.ndarray:
    """The indices of the readings it flags."""
    return np.array([i for i, h in enumerate(judge(det, x, load_until)) if h.hit[0]], dtype=int)


def daily(days: int, sd: float = 1.0, seed: int = 3) -> np.ndarray:
    """A daily cycle of amplitude 10 around 50 with Gaussian noise."""
    t = np.arange(days * PER_DAY) / PER_DAY
    rng = np.random.default_rng(seed)
    return 50 + 10 * np.sin(2 * np.pi * t) + rng.normal(0, sd, t.shape[0])


def test_noise_that_grows_five_times_is_raised_within_hours_and_not_before():
    x = daily(6)
    at = 4 * PER_DAY
    x[at:] += np.random.default_rng(4).normal(0, 5.0, x.size - at)
    hits = run(Noise(), x)
    assert hits.size and hits.min() >= at
    assert hits.min() - at <= 2 * 3600 / DT  # within two hours of five-minute data


def test_a_daily_cycle_a_spike_and_a_level_shift_are_not_noise():
    x = daily(6)
    assert run(Noise(), x).size == 0
    spiked = x.copy()
    spiked[4 * PER_DAY] += 200.0  # two large moves among 24
    shifted = x.copy()
    shifted[4 * PER_DAY :] += 40.0  # one large move, then moves as before
    assert run(Noise(), spiked).size == 0
    assert run(Noise(), shifted).size == 0


def test_nothing_is_judged_before_min_moves():
    det = Noise(min_moves=48)
    scores = np.array([h.score[0] for h in judge(det, daily(1))])
    # reading i has made i moves, and learnt the first i − 23 (each as it leaves the
    # newest 24, which are judged)
    late = det.history - 1
    assert np.isnan(scores[: 49 + late]).all()
    assert np.isfinite(scores[49 + late :]).all()


def test_a_channel_seen_with_partners_is_learnt_not_judged():
    x = daily(6)
    x[4 * PER_DAY :] += np.random.default_rng(6).normal(0, 6.0, x.size - 4 * PER_DAY)
    ctx = Noise(context=("@flow", "@concentration"))
    assert run(ctx, x).size  # lone: judged
    # with partners, even after they go invalid (the plant stops): not judged
    assert run(ctx, x, load_until=2 * PER_DAY).size == 0


def test_memory_is_what_it_states():
    det = Noise()
    st = det.new_state(100)
    assert sum(a.nbytes for a in st.arrays.values()) == 100 * det.bytes_per_series


def test_hourly_noise_grown_six_times_is_raised_within_a_day():
    # hourly data: 12 loud moves of the newest 24 are half a day; learnt as they came,
    # they had pulled the usual size up by then (the score stayed near 2.4, under 4)
    per_day = 24
    t = np.arange(14 * per_day) / per_day
    rng = np.random.default_rng(0)
    x = 50 + 5 * np.sin(2 * np.pi * t) + rng.normal(0, 1.0, t.shape[0])
    at = 10 * per_day
    x[at:] = 50 + 5 * np.sin(2 * np.pi * t[at:]) + rng.normal(0, 6.0, t.shape[0] - at)
    hits = [i for i, h in enumerate(feed(Noise(), x, 3600.0, Noise().history)) if h.hit[0]]
    assert hits and at <= hits[0] <= at + per_day

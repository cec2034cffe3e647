"""Spikes grown frequent: a series that spikes many times as often as it usually does is
raised; its usual spikes, a daily cycle, a level shift and a process channel are not."""

from __future__ import annotations

import numpy as np

from offsite.rules.detectors import Hits, SpikeRate
from tests.unit.one_series import feed

DT = 300.0  # five-minute data
PER_DAY = int(86400 / DT)


def judge(det: SpikeRate, x: np.ndarray, load_until: int | None = None, **kw) -> list[Hits]:
    """Feed one series through a window as wide as the detector reads (``state``,
    ``times``: see ``feed``)."""
    return feed(det, x, DT, det.history + 1, load_until=load_until, **kw)


def run(det: SpikeRate, x: np.ndarray, load_until: int | None = None, **kw) -> np.ndarray:
    """The indices of the readings it flags."""
    hits = judge(det, x, load_until, **kw)
    return np.array([i for i, h in enumerate(hits) if h.hit[0]], dtype=int)


def spiky(days: int, per_day: np.ndarray | float, seed: int = 3) -> np.ndarray:
    """Noise of sd 1 around 50 with spikes of 12–20 sds, ``per_day`` of them a day on
    average (one rate, or one per reading)."""
    rng = np.random.default_rng(seed)
    n = days * PER_DAY
    x = 50.0 + rng.normal(0, 1.0, n)
    at = rng.random(n) < np.broadcast_to(per_day, (n,)) / PER_DAY
    x[at] += rng.uniform(12, 20, int(at.sum())) * rng.choice([-1.0, 1.0], int(at.sum()))
    return x


def test_spikes_grown_ten_times_as_frequent_are_raised_within_a_day_and_not_before():
    onset = 5 * PER_DAY
    rate = np.where(np.arange(8 * PER_DAY) < onset, 1.0, 12.0)  # one a day, then 12
    hits = run(SpikeRate(), spiky(8, rate))
    assert hits.size and hits.min() >= onset
    assert hits.min() - onset <= PER_DAY


def test_a_series_spiking_often_by_nature_is_not_raised():
    # six spikes a day all along: its own rate, learnt while young
    assert run(SpikeRate(), spiky(8, 6.0, seed=5)).size == 0


def test_a_series_that_goes_on_spiking_becomes_its_own_normal():
    onset = 3 * PER_DAY
    rate = np.where(np.arange(12 * PER_DAY) < onset, 1.0, 12.0)
    hits = run(SpikeRate(), spiky(12, rate, seed=7))
    assert hits.size and hits.max() < onset + 4 * PER_DAY  # learnt over its 3 days


def test_a_daily_cycle_a_lone_spike_and_a_level_shift_are_not_raised():
    t = np.arange(6 * PER_DAY) / PER_DAY
    x = 50 + 10 * np.sin(2 * np.pi * t) + np.random.default_rng(8).normal(0, 1.0, t.size)
    assert run(SpikeRate(), x).size == 0
    one = x.copy()
    one[4 * PER_DAY] += 40.0
    shifted = x.copy()
    shifted[4 * PER_DAY :] += 40.0  # it stays: not a spike that came and went
    assert run(SpikeRate(), one).size == 0
    assert run(SpikeRate(), shifted).size == 0


def test_small_counts_at_their_usual_rate_raise_nothing():
    # small counts: mostly 0, a 1 or 2 now and then, many a day. Against a window of
    # zeros a 1 or a 2 stands out (several a day are counted): at the series' own rate
    rng = np.random.default_rng(9)
    assert run(SpikeRate(), rng.poisson(0.1, 6 * PER_DAY).astype(float)).size == 0


def test_spikes_age_in_device_time_across_an_outage():
    # four spikes just before a day's outage, then two after it: the four have aged a
    # day, so six spikes in a row of readings are not six within the last hours
    x = spiky(6, 0.0, seed=12)
    at = 4 * PER_DAY
    x[at - 40 : at : 10] += 15.0  # four spikes, 10 readings apart
    x[at + 10 : at + 30 : 10] += 15.0  # two more after the outage
    det = SpikeRate()
    times = np.r_[np.arange(at), np.arange(at, x.size) + PER_DAY] * DT  # a day missing
    assert run(det, x).size  # without the outage: 6 spikes within 4 hours
    assert run(det, x, times=times).size == 0


def test_a_channel_seen_with_partners_is_not_judged():
    rate = np.where(np.arange(8 * PER_DAY) < 5 * PER_DAY, 1.0, 12.0)
    x = spiky(8, rate)
    ctx = SpikeRate(context=("@flow", "@concentration"))
    assert run(ctx, x).size  # lone: judged
    # with partners, even after they go invalid (the plant stops): not judged
    assert run(ctx, x, load_until=2 * PER_DAY).size == 0


def test_memory_is_what_it_states():
    det = SpikeRate()
    st = det.new_state(100)
    assert sum(a.nbytes for a in st.arrays.values()) == 100 * det.bytes_per_series

"""The time-of-day profile: a daily pattern's own steps are not judged, a day that
breaks it is; a series without a cycle keeps its spreads wide."""

from __future__ import annotations

import numpy as np

from offsite.rules.detectors import Seasonal
from tests.unit.one_series import one_reading

DT = 300.0  # five-minute data
PER_DAY = int(86400 / DT)


def run(
    det: Seasonal,
    x: np.ndarray,
    load: bool = False,
    registered: float = DT,
    load_until: int | None = None,
) -> np.ndarray:
    """Feed one series reading by reading; the indices of the readings it flags (with
    ``load``, the channel has partners whose load the engine passes, up to reading
    ``load_until`` and invalid after; ``registered``, the device's registered interval,
    while the engine sees it report every DT)."""
    st = det.new_state(1)
    hits = []
    for i, v in enumerate(x):
        gone = load_until is not None and i >= load_until
        b = one_reading(
            i * DT,
            v,
            registered,
            load=(np.nan if gone else 1.0) if load else None,
            seen_interval=DT if i >= 16 else np.nan,
        )
        if det(b, st).hit[0]:
            hits.append(i)
    return np.array(hits, dtype=int)


def square(days: int, seed: int = 1) -> np.ndarray:
    """Low at night, high from 09:00 to 18:00, a little noise (NAB's daily series)."""
    t = np.arange(days * PER_DAY) * DT / 86400.0
    day = ((t % 1.0) >= 0.375) & ((t % 1.0) < 0.75)
    return np.where(day, 80.0, 20.0) + np.random.default_rng(seed).normal(0, 1.0, t.shape[0])


def test_a_daily_pattern_is_not_judged_and_a_day_that_breaks_it_is():
    x = square(8)
    assert run(Seasonal(), x).size == 0  # its steps come where they always come
    jumped = x.copy()
    day7 = slice(6 * PER_DAY + int(0.5 * PER_DAY), 6 * PER_DAY + int(0.6 * PER_DAY))
    jumped[day7] += 80.0  # the day's high doubles for a while (NAB's art_daily_jumpsup)
    hits = run(Seasonal(), jumped)
    assert hits.size and hits.min() == day7.start  # at once
    # registered at the default 60 s, sent every 5 minutes: learnt at its own pace
    assert hits.min() in run(Seasonal(), jumped, registered=60.0)
    # a channel of a process (partners in ``context``) is judged along its load instead
    ctx = Seasonal(context=("@flow", "@concentration"))
    assert run(ctx, jumped).size and run(ctx, jumped, load=True).size == 0
    # its partners going invalid (the plant stops) does not make it a lone channel
    assert run(ctx, jumped, load=True, load_until=5 * PER_DAY).size == 0
    flat = x.copy()
    flat[6 * PER_DAY : 7 * PER_DAY] = x[6 * PER_DAY]  # a day held at night's level
    assert (run(Seasonal(), flat) >= 6 * PER_DAY + int(0.375 * PER_DAY)).any()


def test_nothing_is_judged_before_a_bin_has_two_days_behind_it():
    x = square(3)
    x[int(1.5 * PER_DAY)] += 500.0
    hits = run(Seasonal(), x)
    assert not (hits < 2 * PER_DAY).any()


def test_a_random_walk_is_not_held_to_a_profile_it_does_not_keep():
    rng = np.random.default_rng(7)
    walk = 50 + np.cumsum(rng.normal(0, 0.5, 14 * PER_DAY))
    hits = run(Seasonal(), walk)
    # what the packaged rule would raise: runs of 3 hits in a row (``count = 3``)
    runs = sum(1 for i in hits if {i - 1, i - 2} <= set(hits) and i - 3 not in set(hits))
    assert runs <= 1  # in two weeks


def test_memory_is_what_it_states():
    det = Seasonal()
    st = det.new_state(100)
    assert sum(a.nbytes for a in st.arrays.values()) == 100 * det.bytes_per_series

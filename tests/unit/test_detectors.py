"""rules.detectors: one vectorised contract for every window detector, then specifics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rules.detectors import WINDOW_DETECTORS, Exceedance, Flatline, Offline, Spike

W = 30
LEVEL, LIMIT = 50.0, 100.0


def call(det, x, window, limit=None, valid=None):
    x = np.asarray(x, dtype=float)
    window = np.asarray(window, dtype=float)
    if window.ndim == 1:
        window = window.reshape(len(x), -1)
    limit = np.full(len(x), LIMIT) if limit is None else np.asarray(limit, dtype=float)
    valid = np.ones(len(x), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a detector must not warn either
        return det(x, window, limit, valid)


def noisy(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    window = LEVEL + rng.normal(0.0, 1.0, size=(n, W))
    x = LEVEL + rng.normal(0.0, 1.0, size=n)
    return x, window


def test_every_window_detector_is_covered():
    assert set(WINDOW_DETECTORS) == {Exceedance, Flatline, Spike}


# -- the contract ---------------------------------------------------------------------

@pytest.fixture(params=WINDOW_DETECTORS, ids=lambda c: c.__name__)
def det(request):
    return request.param()


@pytest.mark.parametrize("n", [0, 1, 7])
def test_contract_shapes_and_dtypes(det, n):
    x, window = noisy(n)
    hit, score = call(det, x, window)
    assert hit.shape == (n,) and hit.dtype == np.bool_
    assert score.shape == (n,) and np.issubdtype(score.dtype, np.floating)


def test_contract_deterministic_and_inputs_untouched(det):
    x, window = noisy(20, seed=7)
    x[3] = 500.0
    window[4, -9:] = 42.0
    x[4] = 42.0
    limit = np.full(20, LIMIT)
    valid = np.ones(20, dtype=bool)
    copies = [a.copy() for a in (x, window, limit, valid)]
    h1, s1 = call(det, x, window, limit, valid)
    h2, s2 = call(det, x, window, limit, valid)
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(s1, s2)
    for a, c in zip((x, window, limit, valid), copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_contract_nan_never_raises_and_nan_x_never_hits(det):
    x, window = noisy(6)
    x[[0, 2]] = np.nan
    window[1, :] = np.nan          # empty history
    window[2, ::2] = np.nan        # NaN x and a holey window
    window[3, :5] = np.nan         # partially filled
    window[4, -1] = np.nan
    hit, score = call(det, x, window)
    assert not hit[0] and not hit[2]
    assert np.isnan(score[0]) and np.isnan(score[2])


def test_contract_nan_x_with_flat_window_and_huge_limit_ratio(det):
    window = np.full((1, W), 200.0)
    hit, _ = call(det, [np.nan], window, limit=[1.0])
    assert not hit[0]


def test_contract_clean_noisy_data_gives_no_hit(det):
    x, window = noisy(500, seed=2026)
    assert window.max() < LIMIT and x.max() < LIMIT
    hit, score = call(det, x, window)
    assert not hit.any()
    assert not np.isnan(score).all()


def test_contract_series_are_judged_independently(det):
    x, window = noisy(5, seed=3)
    hit_all, score_all = call(det, x, window)
    for i in range(5):
        h, s = call(det, x[i:i + 1], window[i:i + 1])
        assert h[0] == hit_all[i]
        np.testing.assert_array_equal(s, score_all[i:i + 1])


def test_contract_describe_returns_text(det):
    assert isinstance(det.describe(123.0, 2.5, 100.0), str)


# -- exceedance -----------------------------------------------------------------------

def test_exceedance_hits_strictly_above_the_limit_with_ratio_score():
    hit, score = call(Exceedance(), [99.0, 100.0, 100.01, 250.0], np.zeros((4, 2)),
                      limit=[100.0] * 4)
    assert list(hit) == [False, False, True, True]
    np.testing.assert_allclose(score, [0.99, 1.0, 1.0001, 2.5])


def test_exceedance_ignores_invalid_flags():
    hit, score = call(Exceedance(), [300.0, 300.0], np.zeros((2, 2)), valid=[False, True])
    assert list(hit) == [False, True]
    assert score[0] == pytest.approx(3.0)  # still scored, just not judged


def test_exceedance_without_a_limit_never_hits():
    hit, score = call(Exceedance(), [1e9, 5.0], np.zeros((2, 2)), limit=[np.nan, 0.0])
    assert not hit.any()
    assert np.isnan(score).all()


def test_exceedance_describe_mentions_limit_and_ratio():
    text = Exceedance().describe(70.0, 2.0, 35.0)
    assert "70" in text and "35" in text and "2.00" in text


# -- flatline -------------------------------------------------------------------------

def test_flatline_needs_count_identical_values_including_x():
    det = Flatline(count=5)
    window = np.array([[1.0, 2.0, 7.0, 7.0, 7.0, 7.0],   # 4 in window + x = 5 → hit
                       [1.0, 2.0, 3.0, 7.0, 7.0, 7.0],   # 3 + x = 4 → no hit
                       [7.0, 7.0, 7.0, 7.0, 7.0, 8.0],   # broken by the newest → no hit
                       [np.nan, np.nan, 7.0, 7.0, 7.0, 7.0]])  # just enough history
    hit, score = call(det, [7.0, 7.0, 7.0, 7.0], window)
    assert list(hit) == [True, False, False, True]
    assert score[0] >= 5 and score[1] == 4


def test_flatline_does_not_hit_on_a_partial_window():
    det = Flatline(count=5)
    window = np.array([[np.nan, np.nan, np.nan, 7.0, 7.0, 7.0]])
    hit, _ = call(det, [7.0], window)
    assert not hit[0]


def test_flatline_refuses_a_window_too_narrow():
    with pytest.raises(ValueError):
        Flatline(count=10)(np.zeros(1), np.zeros((1, 5)), np.zeros(1), np.ones(1, bool))


# -- spike ----------------------------------------------------------------------------

def test_spike_hits_a_jump():
    _, window = noisy(1, seed=11)
    hit, score = call(Spike(), [LEVEL + 30.0], window)
    assert hit[0] and score[0] > 8


def test_spike_is_robust_to_one_earlier_outlier():
    x, window = noisy(1, seed=12)
    window[0, 10] = 10_000.0  # mean/stdev would be dragged far away by this
    hit, _ = call(Spike(), [LEVEL + 30.0], window)
    assert hit[0]
    hit, _ = call(Spike(), [x[0]], window)
    assert not hit[0]


def test_spike_respects_min_history():
    det = Spike(min_history=10)
    window = np.full((2, W), np.nan)
    window[0, -9:] = LEVEL
    window[1, -10:] = LEVEL
    hit, score = call(det, [LEVEL * 10, LEVEL * 10], window)
    assert list(hit) == [False, True]
    assert np.isnan(score[0])


def test_spike_scale_floor_stops_quantised_wiggles():
    window = np.full((1, W), LEVEL)  # MAD 0: the floor (2 % of the median = 1.0) applies
    hit, score = call(Spike(), [LEVEL + 1.0], window)
    assert not hit[0] and score[0] == pytest.approx(1.0)
    hit, _ = call(Spike(), [LEVEL + 8.5], window)
    assert hit[0]


def test_spike_abs_floor_on_a_zero_series():
    window = np.zeros((1, W))
    hit, score = call(Spike(), [0.0005, 0.01], np.vstack([window, window]))
    assert list(hit) == [False, True]
    assert score[0] == pytest.approx(0.5)


# -- offline --------------------------------------------------------------------------

def test_offline_silent_is_strictly_more_than_intervals():
    det = Offline(intervals=5.0)
    last = np.array([0.0, 0.0, 100.0, -np.inf])
    interval = np.array([60.0, 10.0, 60.0, 60.0])
    silent = det.silent(last, interval, now=300.0)
    assert list(silent) == [False, True, False, True]
    assert det.silent(np.array([0.0]), np.array([60.0]), now=300.001)[0]

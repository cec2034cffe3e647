"""rules.windows: per-series ring buffers."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.windows import Windows


def push1(w: Windows, key: object, value: float, t: float) -> None:
    w.push(w.rows([key]), np.array([value]), np.array([t]))


def win(w: Windows, key: object) -> np.ndarray:
    return w.window(w.rows([key]))[0]


def test_width_below_two_is_refused():
    with pytest.raises(ValueError):
        Windows(1)


def test_rows_are_stable_and_new_keys_get_new_rows():
    w = Windows(3)
    r = w.rows(["a", "b", "a"])
    assert r.dtype == np.int64
    assert r[0] == r[2] != r[1]
    assert len(w) == 2
    assert list(w.rows(["b", "c"])) == [r[1], 2]
    assert len(w) == 3


def test_new_series_is_all_nan_with_last_t_minus_inf():
    w = Windows(4)
    rows = w.rows(["a"])
    assert np.isnan(w.window(rows)).all()
    assert w.window(rows).shape == (1, 4)
    assert w.last_t(rows)[0] == -np.inf


def test_nan_padding_at_the_front_before_full():
    w = Windows(4)
    push1(w, "a", 1.0, 1)
    push1(w, "a", 2.0, 2)
    out = win(w, "a")
    assert np.isnan(out[:2]).all()
    assert list(out[2:]) == [1.0, 2.0]


def test_oldest_to_newest_when_full_and_after_wrap_around():
    w = Windows(3)
    for i in range(1, 4):
        push1(w, "a", float(i), i)
    assert list(win(w, "a")) == [1.0, 2.0, 3.0]
    for i in range(4, 9):
        push1(w, "a", float(i), i)
    assert list(win(w, "a")) == [6.0, 7.0, 8.0]


def test_series_are_independent_in_one_vectorised_push():
    w = Windows(3)
    rows = w.rows(["a", "b"])
    w.push(rows, np.array([1.0, 10.0]), np.array([1.0, 1.0]))
    w.push(rows[:1], np.array([2.0]), np.array([2.0]))
    out = w.window(rows)
    assert np.isnan(out[0, 0]) and list(out[0, 1:]) == [1.0, 2.0]
    assert np.isnan(out[1, :2]).all() and out[1, 2] == 10.0


def test_last_t_is_the_newest_time_not_the_last_pushed():
    w = Windows(3)
    push1(w, "a", 1.0, 100.0)
    push1(w, "a", 2.0, 50.0)
    assert w.last_t(w.rows(["a"]))[0] == 100.0
    push1(w, "a", 3.0, 150.0)
    assert w.last_t(w.rows(["a"]))[0] == 150.0


def test_growth_past_initial_capacity_keeps_data():
    w = Windows(3, capacity=2)
    for i in range(2):
        push1(w, i, float(i), float(i))
        push1(w, i, float(i) + 0.5, float(i) + 0.5)
    rows = w.rows(list(range(9)))  # forces growth 2 → 4 → 8 → 16
    assert len(w) == 9
    out = w.window(rows)
    assert out.shape == (9, 3)
    assert list(out[0, 1:]) == [0.0, 0.5] and np.isnan(out[0, 0])
    assert list(out[1, 1:]) == [1.0, 1.5]
    assert np.isnan(out[2:]).all()
    lt = w.last_t(rows)
    assert list(lt[:2]) == [0.5, 1.5] and (lt[2:] == -np.inf).all()
    # the ring position survives growth too
    push1(w, 0, 9.0, 9.0)
    push1(w, 0, 10.0, 10.0)
    assert list(win(w, 0)) == [0.5, 9.0, 10.0]


@settings(max_examples=60, deadline=None)
@given(width=st.integers(2, 6),
       ops=st.lists(st.tuples(st.integers(0, 4), st.floats(-1e6, 1e6)), max_size=60))
def test_matches_a_deque_model(width, ops):
    w = Windows(width, capacity=1)
    model: dict[int, deque] = {}
    for t, (key, value) in enumerate(ops):
        push1(w, key, value, float(t))
        model.setdefault(key, deque(maxlen=width)).append(value)
    for key, d in model.items():
        out = win(w, key)
        pad = width - len(d)
        assert np.isnan(out[:pad]).all()
        assert list(out[pad:]) == list(d)

"""offsite.rules.windows: per-series ring buffers of values, flags and device times."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offsite.rules.windows import Windows

N = ord("N")


def rows_of(w: Windows, keys: list) -> np.ndarray:
    return w.rows(keys)[0]


def push1(w: Windows, key: object, value: float, t: float, flag: str = "N") -> None:
    w.push(
        rows_of(w, [key]), np.array([value]), np.array([ord(flag)], dtype=np.uint8), np.array([t])
    )


def win(w: Windows, key: object) -> np.ndarray:
    return w.window(rows_of(w, [key]))[0][0]


def test_width_below_two_is_refused():
    with pytest.raises(ValueError):
        Windows(1)


def test_rows_are_stable_and_new_keys_get_new_rows():
    w = Windows(3)
    r, new = w.rows(["a", "b", "a"])
    assert r.dtype == np.int64
    assert r[0] == r[2] != r[1]
    assert new == [0, 1]
    assert len(w) == 2
    r2, new2 = w.rows(["b", "c"])
    assert list(r2) == [r[1], 2] and new2 == [2]
    assert len(w) == 3 and w.keys == ["a", "b", "c"]
    assert w.row("c") == 2 and w.row("zz") is None


def test_new_series_is_empty_with_last_t_minus_inf():
    w = Windows(4)
    rows = rows_of(w, ["a"])
    vals, flags, times = w.window(rows)
    assert vals.shape == flags.shape == times.shape == (1, 4)
    assert np.isnan(vals).all() and np.isnan(times).all() and (flags == 0).all()
    assert flags.dtype == np.uint8
    assert w.last_t(rows)[0] == -np.inf
    assert np.isnan(w.latest(rows)[0])


def test_empty_slots_at_the_front_before_full():
    w = Windows(4)
    push1(w, "a", 1.0, 10.0)
    push1(w, "a", 2.0, 20.0, flag="M")
    vals, flags, times = w.window(rows_of(w, ["a"]))
    assert np.isnan(vals[0, :2]).all() and list(vals[0, 2:]) == [1.0, 2.0]
    assert list(flags[0]) == [0, 0, N, ord("M")]
    assert np.isnan(times[0, :2]).all() and list(times[0, 2:]) == [10.0, 20.0]


def test_values_flags_and_times_stay_aligned_after_wrap_around():
    w = Windows(3)
    for i in range(1, 9):
        push1(w, "a", float(i), 100.0 + i, flag="NMC"[i % 3])
    vals, flags, times = w.window(rows_of(w, ["a"]))
    assert list(vals[0]) == [6.0, 7.0, 8.0]
    assert bytes(flags[0]).decode() == "NMC"[6 % 3] + "NMC"[7 % 3] + "NMC"[8 % 3]
    assert list(times[0]) == [106.0, 107.0, 108.0]
    assert w.latest(rows_of(w, ["a"]))[0] == 8.0


def test_flagged_values_are_kept():
    # detectors judge flags (flag abuse, false stops); statistics mask them themselves
    w = Windows(2)
    push1(w, "a", 400.0, 1.0, flag="C")
    assert win(w, "a")[-1] == 400.0


def test_series_are_independent_in_one_vectorised_push():
    w = Windows(3)
    rows = rows_of(w, ["a", "b"])
    w.push(rows, np.array([1.0, 10.0]), np.full(2, N, dtype=np.uint8), np.array([1.0, 1.0]))
    w.push(rows[:1], np.array([2.0]), np.full(1, N, dtype=np.uint8), np.array([2.0]))
    out = w.window(rows)[0]
    assert np.isnan(out[0, 0]) and list(out[0, 1:]) == [1.0, 2.0]
    assert np.isnan(out[1, :2]).all() and out[1, 2] == 10.0
    assert list(w.latest(rows)) == [2.0, 10.0]


def test_last_t_is_the_newest_time_not_the_last_pushed():
    w = Windows(3)
    push1(w, "a", 1.0, 100.0)
    push1(w, "a", 2.0, 50.0)
    assert w.last_t(rows_of(w, ["a"]))[0] == 100.0
    push1(w, "a", 3.0, 150.0)
    assert w.last_t(rows_of(w, ["a"]))[0] == 150.0


def test_growth_past_initial_capacity_keeps_data():
    w = Windows(3, capacity=2)
    for i in range(2):
        push1(w, i, float(i), float(i), flag="M")
        push1(w, i, float(i) + 0.5, float(i) + 0.5)
    rows = rows_of(w, list(range(9)))  # forces growth 2 → 4 → 8 → 16
    assert len(w) == 9 and w.capacity >= 9
    vals, flags, times = w.window(rows)
    assert vals.shape == (9, 3)
    assert list(vals[0, 1:]) == [0.0, 0.5] and np.isnan(vals[0, 0])
    assert list(vals[1, 1:]) == [1.0, 1.5]
    assert list(flags[1]) == [0, ord("M"), N] and list(times[1, 1:]) == [1.0, 1.5]
    assert np.isnan(vals[2:]).all() and (flags[2:] == 0).all()
    lt = w.last_t(rows)
    assert list(lt[:2]) == [0.5, 1.5] and (lt[2:] == -np.inf).all()
    # the ring position survives growth too
    push1(w, 0, 9.0, 9.0)
    push1(w, 0, 10.0, 10.0)
    assert list(win(w, 0)) == [0.5, 9.0, 10.0]


def test_widen_keeps_what_is_held_and_then_holds_more():
    w = Windows(3)
    for i in range(1, 6):
        push1(w, "a", float(i), float(i), flag="NM"[i % 2])
    push1(w, "b", 9.0, 1.0)
    w.widen(2)  # never narrows
    assert w.width == 3
    w.widen(5)
    assert w.width == 5
    vals, flags, times = w.window(rows_of(w, ["a", "b"]))
    assert list(vals[0, 2:]) == [3.0, 4.0, 5.0] and np.isnan(vals[0, :2]).all()
    assert list(flags[0]) == [0, 0, ord("M"), N, ord("M")] and list(times[0, 2:]) == [3, 4, 5]
    assert vals[1, -1] == 9.0 and np.isnan(vals[1, :-1]).all()
    for i in range(6, 9):
        push1(w, "a", float(i), float(i))
    assert list(win(w, "a")) == [4.0, 5.0, 6.0, 7.0, 8.0]
    assert w.latest(rows_of(w, ["a"]))[0] == 8.0


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(2, 6),
    ops=st.lists(
        st.tuples(st.integers(0, 4), st.floats(-1e6, 1e6), st.sampled_from("NMCDF")), max_size=60
    ),
    widen_at=st.integers(0, 60),
    wider=st.integers(0, 4),
)
def test_matches_a_deque_model(width, ops, widen_at, wider):
    w = Windows(width, capacity=1)
    model: dict[int, deque] = {}
    for t, (key, value, flag) in enumerate(ops):
        if t == widen_at and wider:
            width += wider
            w.widen(width)
            model = {k: deque(d, maxlen=width) for k, d in model.items()}
        push1(w, key, value, float(t), flag)
        model.setdefault(key, deque(maxlen=width)).append((value, ord(flag), float(t)))
    for key, d in model.items():
        vals, flags, times = (a[0] for a in w.window(rows_of(w, [key])))
        pad = width - len(d)
        assert np.isnan(vals[:pad]).all() and (flags[:pad] == 0).all()
        assert list(zip(vals[pad:], flags[pad:], times[pad:], strict=True)) == list(d)
        assert w.latest(rows_of(w, [key]))[0] == d[-1][0]
        assert w.last_t(rows_of(w, [key]))[0] == max(x[2] for x in d)

"""Growing rule-state arrays: in place when the array is not shared, copied when it is —
the same contents either way."""

from __future__ import annotations

import numpy as np

from offsite.rules.detectors.base import State
from offsite.rules.growth import grow_attr, grow_rows, next_capacity


def test_an_unshared_array_grows_in_place_with_the_fill_after_its_rows() -> None:
    box = {"a": np.arange(6, dtype=np.float64).reshape(3, 2).copy()}  # owns its data
    ident = id(box["a"])
    box["a"] = grow_rows(box.pop("a"), 5, np.nan)
    assert id(box["a"]) == ident  # resized, not copied
    assert box["a"][:3].tolist() == [[0, 1], [2, 3], [4, 5]]
    assert np.isnan(box["a"][3:]).all()


def test_a_shared_array_is_copied_and_the_other_holder_keeps_valid_data() -> None:
    a = np.arange(4, dtype=np.int64)
    view = a[1:3]
    b = grow_rows(a, 6, -1)
    assert b is not a and b.tolist() == [0, 1, 2, 3, -1, -1]
    assert view.tolist() == [1, 2]  # the old buffer is untouched
    assert grow_rows(b, 4, 0) is b  # never shrinks


def test_state_and_attributes_grow_keeping_their_values() -> None:
    s = State(2, fp=(np.uint32, 0, 3), mu=(np.float64, np.nan))
    s["fp"][1] = [7, 8, 9]
    s["mu"][0] = 1.5
    fp = id(s["fp"])
    s.grow(5)
    assert id(s["fp"]) == fp  # in place
    assert s.capacity == 5 and s["fp"][1].tolist() == [7, 8, 9] and s["fp"][4].tolist() == [0] * 3
    assert s["mu"][0] == 1.5 and np.isnan(s["mu"][1:]).all()

    class Holder:
        def __init__(self) -> None:
            self.x = np.zeros(2, dtype=bool)

    h = Holder()
    h.x[1] = True
    x = id(h.x)
    grow_attr(h, "x", 4, True)
    assert id(h.x) == x
    assert h.x.tolist() == [False, True, True, True]


def test_capacity_leaves_a_sixteenth_to_spare() -> None:
    assert next_capacity(16_000) == 17_000 and next_capacity(10) == 74

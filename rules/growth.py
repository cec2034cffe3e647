"""Growing the per-series arrays of the rule state (windows, detector state, slots).

At 10,000 devices the largest of them, copy-paste's fingerprints, is ~46 MB. Growing by
copying holds the old and the new array at once, and that made the rule runner's peak
memory while thousands of devices were first heard. ``grow_rows`` resizes in place when
nothing else refers to the array: realloc, which for blocks this large moves pages with
mremap instead of copying them. When something does refer to it (a view, a caller's
variable), numpy refuses and the array is copied as before, so the result is the same
either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def next_capacity(needed: int) -> int:
    """Room for ``needed`` rows and a sixteenth more. Callers grow once per batch of new
    series, so a small margin is enough; doubling left up to half of every per-series
    array empty with tens of thousands of series."""
    return needed + max(64, needed // 16)


def grow_rows(a: np.ndarray, rows: int, fill: Any) -> np.ndarray:
    """``a`` with ``rows`` rows (the first axis), the new ones set to ``fill``.

    Pass the only reference, e.g. ``d[k] = grow_rows(d.pop(k), …)``: any other one makes
    numpy's reference check refuse the in-place resize, and the array is copied."""
    old = a.shape[0]
    if rows <= old:
        return a
    try:
        a.resize((rows, *a.shape[1:]), refcheck=True)
    except ValueError:  # referenced elsewhere: copy, which is always safe
        b = np.empty((rows, *a.shape[1:]), dtype=a.dtype)
        b[:old] = a
        a = b
    a[old:] = fill
    return a


def grow_attr(obj: object, name: str, rows: int, fill: Any) -> None:
    """``grow_rows`` on an attribute (taken off the object first, so it is the only
    reference)."""
    setattr(obj, name, grow_rows(vars(obj).pop(name), rows, fill))

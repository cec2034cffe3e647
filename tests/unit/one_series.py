"""One series' round, as the engine would pass it to a detector: what the tests of the
detectors for lone channels (``seasonal``, ``noise``, ``spike_rate``) feed them reading
by reading."""

from __future__ import annotations

from typing import Any

import numpy as np

from offsite.rules.detectors import Batch, Hits, Partner, State


def one_reading(
    t: float,
    value: float,
    interval: float,
    *,
    window: np.ndarray | None = None,
    load: float | None = None,
    seen_interval: float | None = None,
) -> Batch:
    """The reading ``value`` at ``t`` of a series registered at ``interval``, with the
    previous values ``window`` (oldest first, NaN where none), partners whose load is
    ``load`` (None: no partners; NaN: they are invalid now) and the interval the engine
    sees it report at."""
    w = np.zeros((1, 0)) if window is None else window[None, :]
    return Batch(
        rows=np.array([0]),
        x=np.array([float(value)]),
        t=np.array([t]),
        flag=np.array([ord("N")], dtype=np.uint8),
        limit=np.array([np.nan]),
        lo=np.array([-np.inf]),
        hi=np.array([np.inf]),
        o2ref=np.array([np.nan]),
        interval=np.array([interval]),
        window=w,
        wflag=np.where(np.isnan(w), 0, ord("N")).astype(np.uint8),
        wt=np.where(np.isnan(w), np.nan, 0.0),
        partners={} if load is None else {"load": Partner(np.array([load]), np.full((1, 1), load))},
        seen_interval=None if seen_interval is None else np.array([seen_interval]),
    )


def feed(
    det: Any,
    x: np.ndarray,
    dt: float,
    width: int,
    *,
    load_until: int | None = None,
    state: State | None = None,
    times: np.ndarray | None = None,
) -> list[Hits]:
    """Feed series ``x`` to ``det`` reading by reading, each with the ``width`` values
    before it as its window (with ``load_until``, the channel has partners up to that
    reading and invalid ones after; ``times``: the readings' device times, default
    every ``dt``; ``state``: the detector's, new by default)."""
    st = det.new_state(1) if state is None else state
    out = []
    for i, v in enumerate(x):
        past = x[max(0, i - width) : i]
        window = np.concatenate([np.full(width - past.size, np.nan), past])
        gone = load_until is not None and i >= load_until
        load = None if load_until is None else np.nan if gone else 1.0
        t = i * dt if times is None else float(times[i])
        out.append(det(one_reading(t, v, dt, window=window, load=load), st))
    return out

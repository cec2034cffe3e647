"""One series' round, as the engine would pass it to a detector: what the tests of the
detectors for lone channels (``seasonal``, ``noise``) feed them reading by reading."""

from __future__ import annotations

import numpy as np

from offsite.rules.detectors import Batch, Partner


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

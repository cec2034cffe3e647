"""The one contract every detector follows, and the arrays it is given.

A detector judges a *round*: for n series at once, each series' newest reading against
the values that preceded it. It is a frozen object (its parameters) plus, where it
needs memory longer than the shared window (a CUSUM, an hourly average, a day of
fingerprints), an explicit ``State`` the engine owns and passes in. Same parameters,
same state, same batch → same answer: nothing reads a clock or draws a random number,
which is what lets ``offsite eval`` and a restart's warm-up replay history exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Protocol

import numpy as np

from offsite.rules.growth import grow_rows

# HJ 212 data flags as uint8 codes (ord), so flags live in numpy arrays.
FLAG_N = ord("N")
EMPTY = 0  # a window slot that has never been written
DAY_S = 86400.0


# robust scales to a normal law's sd
MAD_TO_SIGMA = 1.4826
MEAN_ABS_TO_SIGMA = 1.2533  # E|X - mu| = sigma * sqrt(2/pi) for a normal law


def series_hash(mn: str, pollutant: str) -> int:
    """A 32-bit hash of a series' device and pollutant that is the same in every process
    (Python's ``hash`` of a str is salted per process): what spreads per-series work
    over rounds without depending on the order the engine met the series in."""
    digest = hashlib.blake2b(f"{mn}\x00{pollutant}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def flag_codes(flags: str) -> np.ndarray:
    return np.frombuffer(flags.encode("ascii"), dtype=np.uint8).copy()


def flag_table(flags: str) -> np.ndarray:
    """A 256-entry lookup: ``flag_table("MD")[codes]`` is "is the flag M or D", for any
    shape of codes, in one gather (np.isin sorts)."""
    table = np.zeros(256, dtype=bool)
    table[flag_codes(flags)] = True
    return table


def nanmedian_rows(w: np.ndarray) -> np.ndarray:
    """Median of the non-NaN values of each row (NaN for an empty row).

    One sort per call; numpy's nanmedian goes through masked arrays for short rows,
    which is ten times slower on the (n, 30) windows the detectors use. Rows without a
    NaN (most: NaN sorts last, so their last value tells) take the middle columns as
    they are; only the others count their values and pick the middle per row.
    """
    if w.shape[0] == 0 or w.shape[1] == 0:
        return np.full(w.shape[0], np.nan)
    s = np.sort(w, axis=1)  # NaN sorts last
    width = w.shape[1]
    med = (s[:, (width - 1) // 2] + s[:, width // 2]) / 2.0
    gaps = np.flatnonzero(np.isnan(s[:, -1]))
    if gaps.size:
        sg = s[gaps]
        cnt = width - np.isnan(sg).sum(axis=1)
        lo = np.maximum((cnt - 1) // 2, 0)
        hi = np.minimum(np.maximum(cnt // 2, 0), width - 1)
        mid = (
            np.take_along_axis(sg, lo[:, None], axis=1)[:, 0]
            + np.take_along_axis(sg, hi[:, None], axis=1)[:, 0]
        ) / 2.0
        med[gaps] = np.where(cnt > 0, mid, np.nan)
    return med


def last_valid(w: np.ndarray) -> np.ndarray:
    """Each row's last non-NaN value (NaN for an empty row). Most rows end in one, so
    only the others are searched: a reversed-view argmax over every row was slow."""
    if w.shape[1] == 0:
        return np.full(w.shape[0], np.nan)
    last = w[:, -1].copy()
    gaps = np.flatnonzero(np.isnan(last))
    if gaps.size:
        filled = ~np.isnan(w[gaps])
        at = w.shape[1] - 1 - np.argmax(filled[:, ::-1], axis=1)
        last[gaps] = np.where(filled.any(axis=1), w[gaps, at], np.nan)
    return last


def nanmean_rows(a: np.ndarray) -> np.ndarray:
    """``np.nanmean(a, axis=1)`` (NaN for an empty row, without its warning): the same
    sum of the same zero-filled rows over the same count, without nanmean's copies and
    checks, which cost more than the sum on the (n, ≤ 30) windows the detectors use."""
    gap = np.isnan(a)
    cnt = np.sum(~gap, axis=1, dtype=np.intp)
    tot = np.sum(np.where(gap, 0.0, a), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.divide(tot, cnt, out=tot, casting="unsafe")


def learning_weight(n: np.ndarray, interval: np.ndarray, days: float) -> np.ndarray:
    """The weight of a series' ``n``-th value in what it has learnt: a running mean's
    1/n while the series is young, then an exponentially weighted mean's over ``days``
    of readings ``interval`` seconds apart (so a new normal is its own within days)."""
    return np.fmax(1.0 / n, np.minimum(interval / (days * DAY_S), 1.0))


def partnered(b: Batch, seen: np.ndarray) -> np.ndarray:
    """Whether each row's channel has ever been seen with partners (its ``context``
    load), ``seen`` the detector's per-series memory of it, updated here. Once seen, a
    channel stays one of a process: when a plant stops its partners go invalid, and
    it is not then a lone channel."""
    load = b.partners.get("load")
    if load is not None:
        now = np.isfinite(load.x) | np.isfinite(load.window).any(axis=1)
        seen[b.rows[now]] = True
    return seen[b.rows]


def as_selectors(det: object, name: str = "context") -> None:
    """A rules file gives a list; a detector keeps a tuple (it is hashed, and interned)."""
    v = getattr(det, name)
    if isinstance(v, str):
        v = (v,)
    if not all(isinstance(p, str) for p in v):
        raise ValueError(f"{name} must be a list of pollutant codes or @flow/@concentration")
    object.__setattr__(det, name, tuple(v))


def against_load(
    b: Batch, x: np.ndarray, window: np.ndarray, fit: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and its ``window`` with the process taken out: each earlier value divided by
    the load then relative to the load now (the ``load`` partner's window, see the
    engine). A value that moves with its partners comes out flat; an analyser leaving
    them does not. With ``fit``, the series' own elasticity β to the load is fitted on
    the window (least squares on logs, in [0, 2]; 1 when the load barely moved) and the
    load taken out as load^β: a channel that follows the load by less than one for one
    (NOx often does) is not left with a share of every ramp. Rows without a usable load
    (no ``load`` partner, partners missing now or over most of the window) come back
    unchanged: judged on their own.
    """
    load = b.partners.get("load")
    if load is None or x.shape[0] == 0:
        return x, window
    rel = load.window[:, load.window.shape[1] - window.shape[1] :]
    use = np.isfinite(load.x) & (np.isfinite(rel).sum(axis=1) * 2 >= window.shape[1])
    if not use.any():
        return x, window
    with np.errstate(invalid="ignore", divide="ignore"):
        if not fit:
            return x, np.where(use[:, None], window / rel, window)
        ll = np.log(rel)
        lx = np.log(np.where(window > 0, window, np.nan))
        ok = np.isfinite(ll) & np.isfinite(lx)
        cnt = np.maximum(ok.sum(axis=1), 1)
        dl = np.where(ok, ll - (np.where(ok, ll, 0.0).sum(axis=1) / cnt)[:, None], 0.0)
        dx = np.where(ok, lx - (np.where(ok, lx, 0.0).sum(axis=1) / cnt)[:, None], 0.0)
        var = (dl * dl).sum(axis=1) / cnt
        beta = (dl * dx).sum(axis=1) / cnt / var
        beta = np.where((var > 1e-4) & (cnt >= 5) & np.isfinite(beta), beta, 1.0)
        beta = np.clip(beta, 0.0, 2.0)
        return x, np.where(use[:, None], window * np.exp(-beta[:, None] * ll), window)


@dataclass(frozen=True, slots=True)
class Partner:
    """Another channel of the same device, aligned with the batch's rows (NaN if none)."""

    x: np.ndarray  # float[n]: its value at the same instant (or its latest)
    window: np.ndarray  # float[n, W]: its recent values, oldest → newest (valid only)


@dataclass(frozen=True, slots=True)
class Batch:
    """One round: n series, one new reading each, and what came before it."""

    rows: np.ndarray  # int64[n]: the series' row numbers (index into State arrays)
    x: np.ndarray  # float64[n]
    t: np.ndarray  # float64[n]: device time, epoch seconds
    flag: np.ndarray  # uint8[n]: HJ 212 flag codes
    limit: np.ndarray  # float64[n]: permit limit, NaN where none
    lo: np.ndarray  # float64[n]: lowest physically possible value (-inf if unknown)
    hi: np.ndarray  # float64[n]: highest physically possible value (+inf if unknown)
    o2ref: np.ndarray  # float64[n]: the point's reference O2 %, NaN where none
    interval: np.ndarray  # float64[n]: the device's reporting interval, s
    window: np.ndarray  # float64[n, W]: previous values, oldest → newest, NaN where empty
    wflag: np.ndarray  # uint8[n, W]: their flags (EMPTY where empty)
    wt: np.ndarray  # float64[n, W]: their device times (NaN where empty)
    partners: Mapping[str, Partner] = field(default_factory=dict)
    # uint32[n]: a stable hash of each series' (device, pollutant), the same in every
    # engine, order of rows and restart (``series_hash``); None where not known (0)
    key: np.ndarray | None = None
    # float64[n]: the interval each series is seen to report at (median step of its
    # last readings; NaN until known), beside the registered ``interval``; None: unknown
    seen_interval: np.ndarray | None = None
    # int64[n, CONTEXT_MAX]: the state rows, in the same rule, of each series' context
    # partners (-1: none; -2: a partner the rule does not judge); given to a detector
    # that asks (``peers``), which may read what the rule found on them
    peers: np.ndarray | None = None
    # what has been worked out from the windows (``valid_window``), shared by the
    # copies ``same_windows`` makes; not an argument, so ``replace`` starts afresh
    _memo: dict[str, np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def valid(self) -> np.ndarray:
        return self.flag == FLAG_N

    def reporting_interval(self) -> np.ndarray:
        """The interval each series reports at: its registered one (60 s where none), or
        the one it is seen to report at when that is longer (a 5-minute series
        registered at the default 60 s)."""
        ok = np.isfinite(self.interval) & (self.interval > 0)
        interval = np.where(ok, self.interval, 60.0)
        if self.seen_interval is not None:
            interval = np.fmax(interval, self.seen_interval)
        return interval

    def valid_window(self) -> np.ndarray:
        """The window with invalid-flagged values as NaN: what statistics are taken over.

        Worked out once per batch (most rules read it, a round has several); read-only,
        as it is shared."""
        vw = self._memo.get("valid")
        if vw is None:
            vw = np.where(self.wflag == FLAG_N, self.window, np.nan)
            vw.flags.writeable = False
            self._memo["valid"] = vw
        return vw

    def same_windows(self, **changes: Any) -> Batch:
        """``replace`` for changes that leave the windows as they are (the rows state is
        indexed by, the partners): the copy shares what was worked out from them."""
        if {"window", "wflag"} & changes.keys():
            raise ValueError("same_windows cannot change the windows")
        b = replace(self, **changes)
        object.__setattr__(b, "_memo", self._memo)
        return b

    def take(self, idx: np.ndarray, partners: bool = True) -> Batch:
        """The sub-batch of rows ``idx`` (a rule that applies to some series only);
        without its partners when ``partners`` is false (the caller sets its own).

        ``np.take`` along the first axis copies whole rows: twice as fast as fancy
        indexing on the (n, W) windows, which made most of a round's copying."""
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        kw: dict[str, Any] = {
            f.name: np.take(getattr(self, f.name), idx, axis=0)
            for f in fields(self)
            if f.init and f.name != "partners" and getattr(self, f.name) is not None
        }
        kw["partners"] = (
            {
                k: Partner(np.take(p.x, idx, axis=0), np.take(p.window, idx, axis=0))
                for k, p in self.partners.items()
            }
            if partners
            else {}
        )
        sub = Batch(**kw)
        vw = self._memo.get("valid")
        if vw is not None:  # a gather is cheaper than working it out again
            vw = np.take(vw, idx, axis=0)
            vw.flags.writeable = False
            sub._memo["valid"] = vw
        return sub


@dataclass(frozen=True, slots=True)
class Hits:
    hit: np.ndarray  # bool[n]
    score: np.ndarray  # float[n]: larger = worse, NaN where nothing was judged
    value: np.ndarray | None = None  # what a finding reports, when not the reading (an average)
    # bool[n]: hits the detector knows to be the series' routine (a burst as large as its
    # daily ones): the rule's gating counts their onsets, and raises none of them
    routine: np.ndarray | None = None


class State:
    """Per-series arrays a stateful detector keeps between rounds, grown with the engine."""

    def __init__(self, capacity: int, **spec: tuple[Any, Any] | tuple[Any, Any, int]) -> None:
        # spec: name → (dtype, fill) or (dtype, fill, width) for a 2-D array
        self._spec = spec
        self.arrays: dict[str, np.ndarray] = {}
        for name, s in spec.items():
            self.arrays[name] = self._new(capacity, *s)

    @staticmethod
    def _new(capacity: int, dtype: Any, fill: Any, width: int = 0) -> np.ndarray:
        shape = (capacity, width) if width else (capacity,)
        return np.full(shape, fill, dtype=dtype)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def capacity(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0]) if self.arrays else 0

    def grow(self, capacity: int) -> None:
        for name, s in self._spec.items():
            self.arrays[name] = grow_rows(self.arrays.pop(name), capacity, s[1])


class Detector(Protocol):
    """What the engine calls. ``kind`` is the name rules files use."""

    kind: ClassVar[str]
    scope: ClassVar[str]  # "series": a finding per series; "device": one per device
    partners: ClassVar[tuple[str, ...]]  # roles of other channels it needs ("o2", "flow")
    order_free: ClassVar[bool]  # may judge a reading older than its series' newest
    judges_invalid: ClassVar[bool]  # may fire on a reading whose flag is not N
    history: int  # how many previous values of the shared window it reads

    def new_state(self, capacity: int) -> State | None: ...

    def __call__(self, b: Batch, state: State | None) -> Hits: ...

    def describe(self, value: float, score: float, limit: float) -> str: ...


def none_hit(n: int) -> Hits:
    return Hits(np.zeros(n, dtype=bool), np.full(n, np.nan))


def params_of(det: object) -> dict[str, Any]:
    """A detector's parameters, for the evidence an alert carries."""
    out = {f.name: getattr(det, f.name) for f in fields(det)}  # type: ignore[arg-type]
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

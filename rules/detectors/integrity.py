"""Detectors for data that is there but not honest or not complete: copied segments,
flag abuse, missing data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from offsite.rules.detectors.base import DAY_S, Batch, Hits, State, flag_table

# Fixed odd multipliers for the segment fingerprint (a seeded draw, so fingerprints are
# the same in every process and after a restart).
_MULT = np.random.default_rng(212).integers(1, 2**62, size=64, dtype=np.int64).astype(
    np.uint64
) * np.uint64(2) + np.uint64(1)


@dataclass(frozen=True, slots=True)
class CopyPaste:
    """A segment that repeats an earlier one of the same series (fabricated data), up to
    ``days`` back: most often yesterday's or last week's data at the same time of day.

    Each reading leaves a fingerprint of the last ``k`` steps (first differences,
    quantised to ``decimals``). Memory is a table indexed by device time, not a ring of
    recent readings: time is cut into buckets of ``stride`` readings (of the series'
    interval, at least ``base_interval``), and the reading that opens a bucket keeps its
    fingerprint (with the bucket's number mixed in) and the low 16 bits of its own
    quantised value in the bucket's slot.
    So what is kept depends on device time alone: any batching of the same stream, or a
    restart that rebuilds the table from stored history (``remember``), keeps the same.

    Every reading is looked up in the buckets of the last ``recent_h`` hours (6) and in the
    buckets at the same time of day (± ``band`` buckets) on each of the last ``days``
    days. A copied segment matches at every position, so within ``stride`` readings one
    of its fingerprints meets a kept one. A fingerprint match is only a candidate: it
    raises when the kept value bits equal the reading's own quantised value's too (the
    fingerprint is of steps, so this is a check on values it does not cover), and the
    lag is longer than ``k`` readings. A slot left from an earlier turn of the table
    carries another bucket's number in its fingerprint and so does not match. Segments
    that carry little information (fewer than
    ``min_moves`` non-zero steps, or fewer than ``min_bits`` bits counted in the series'
    own resolution) are not fingerprinted: a quiet quantised series repeats its steps by
    chance, and a flatline is another detector's business.

    Memory per series: 6 bytes per slot (fingerprint with the bucket mixed in 4, value
    bits 2), and ``slots`` = ``days`` × 86,400 s / (``base_interval`` × ``stride``):
    1,008 slots, 6,048 bytes with the defaults (181 MB for 10,000 devices × 3 limited
    channels), whatever the number of readings seen. A copy is found once ``k`` + 1 of
    its readings end on a bucket's opening: ``k`` to ``k`` + ``stride`` − 1 readings in
    (5–14 minutes at 1-minute data).
    """

    kind: ClassVar[str] = "copy_paste"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = False
    k: int = 5
    decimals: int = 3
    min_moves: int = 4
    min_bits: float = 10.0
    stride: int = 10
    days: int = 7
    recent_h: float = 6.0
    band: int = 1
    base_interval: float = 60.0

    def __post_init__(self) -> None:
        if self.k < 2 or self.stride < 1 or self.days < 1 or self.base_interval <= 0:
            raise ValueError("copy_paste needs k ≥ 2, stride ≥ 1, days ≥ 1, base_interval > 0")
        if self.band < 0 or self.recent_h < 0:
            raise ValueError("copy_paste band and recent_h cannot be negative")

    @property
    def history(self) -> int:
        # the window before the segment: the series' resolution is read from it
        return max(self.k, 30)

    @property
    def slots(self) -> int:
        return int(np.ceil(self.days * DAY_S / (self.base_interval * self.stride)))

    @property
    def bytes_per_series(self) -> int:
        return 6 * self.slots

    def new_state(self, capacity: int) -> State | None:
        return State(
            capacity,
            fp=(np.uint32, 0, self.slots),
            q=(np.uint16, 0, self.slots),
        )

    @staticmethod
    def _mix(bucket: np.ndarray) -> np.ndarray:
        """The 32 bits of a bucket's number that ``_sealed`` mixes into a fingerprint."""
        b = (np.asarray(bucket).astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        return ((b >> np.uint64(32)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)

    @staticmethod
    def _sealed(fp: np.ndarray, bucket: np.ndarray) -> np.ndarray:
        """The fingerprint as kept in (or looked up for) ``bucket``: its number mixed in,
        so a slot from an earlier turn of the table does not match; 0 stays unusable."""
        mix = CopyPaste._mix(bucket)
        return np.where(fp != 0, (fp ^ mix) | np.uint32(1), np.uint32(0)).astype(np.uint32)

    def _offsets(self, g: np.ndarray) -> np.ndarray:
        """Bucket offsets each row looks back at: the recent ones, then each day's band."""
        span = self.base_interval * self.stride
        recent = np.arange(1, int(np.ceil(self.recent_h * 3600.0 / span)) + 1, dtype=np.int64)
        per_day = DAY_S / (g * self.stride)  # buckets per day, per row
        d = np.arange(1, self.days + 1, dtype=np.float64)
        centre = np.rint(per_day[:, None] * d[None, :]).astype(np.int64)
        band = np.arange(-self.band, self.band + 1, dtype=np.int64)
        days = (centre[:, :, None] + band[None, None, :]).reshape(g.shape[0], -1)
        days = np.where(days > recent.shape[0], days, 0)  # already in the recent scan
        return np.concatenate([np.broadcast_to(recent, (g.shape[0], recent.shape[0])), days], 1)

    def fingerprints(
        self, seq: np.ndarray, res_window: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fingerprint (0 = not usable) of each row's last k steps, and its quantised value.

        ``seq`` holds k + 1 values, oldest first; ``res_window`` the values whose smallest
        non-zero step is taken as the series' resolution."""
        scale = 10.0**self.decimals
        with np.errstate(invalid="ignore"):
            q = np.round(np.diff(seq, axis=1) * scale)
            rq = np.abs(np.round(np.diff(res_window, axis=1) * scale))
        usable = np.isfinite(q).all(axis=1)
        qi = np.where(np.isfinite(q), q, 0).astype(np.int64)
        usable &= (qi != 0).sum(axis=1) >= self.min_moves
        rq = np.where(np.isfinite(rq) & (rq > 0), rq, np.inf)
        res = np.minimum(rq.min(axis=1), np.where(qi != 0, np.abs(qi), np.inf).min(axis=1))
        res = np.where(np.isfinite(res), res, 1.0)
        bits = np.log2(1.0 + np.abs(qi) / res[:, None]).sum(axis=1)
        usable &= bits >= self.min_bits
        qu = qi.astype(np.uint64)
        h = (qu * _MULT[: self.k]).sum(axis=1)
        h32 = ((h ^ (h >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        fp = np.where(usable, h32 | np.uint32(1), np.uint32(0))
        with np.errstate(invalid="ignore"):
            qv = np.round(np.nan_to_num(seq[:, -1]) * scale)
        value = (qv.astype(np.int64) & 0xFFFF).astype(np.uint16)
        return fp, value

    def _bucket(
        self, t: np.ndarray, interval: np.ndarray, key: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each reading's interval number, shifted by its series' phase, and the interval.

        The phase (``key`` mod ``stride``, the series' stable hash) spreads the buckets'
        openings, and so the keeping, over ``stride`` rounds instead of all series at
        once; it depends on the series alone, never on the engine's order of rows."""
        g = np.maximum(np.where(np.isfinite(interval), interval, self.base_interval), 1.0)
        g = np.maximum(g, self.base_interval)
        bn = np.floor(t / g).astype(np.int64)
        if key is not None:
            bn = bn + (np.asarray(key).astype(np.int64) % self.stride)
        return bn, g

    def _keep(
        self, state: State, rows: np.ndarray, bn: np.ndarray, fp: np.ndarray, value: np.ndarray
    ) -> None:
        opens = bn % self.stride == 0
        bucket = bn[opens] // self.stride
        r, slot = rows[opens], bucket % self.slots
        state["fp"][r, slot] = self._sealed(fp[opens], bucket)
        state["q"][r, slot] = value[opens]

    def __call__(self, b: Batch, state: State | None) -> Hits:
        assert state is not None
        vw = b.valid_window()
        seq = np.concatenate([vw[:, vw.shape[1] - self.k :], b.x[:, None]], axis=1)
        fp, value = self.fingerprints(seq, vw[:, vw.shape[1] - self.history :])
        bn, g = self._bucket(b.t, b.interval, b.key)
        hit = np.zeros(b.n, dtype=bool)
        lag = np.full(b.n, np.nan)
        look = np.flatnonzero(fp != 0)
        if look.size:
            rows = b.rows[look]
            bucket = bn[look] // self.stride
            gl = g[look]
            if (gl == gl[0]).all():
                # the usual round: one interval, so one row of offsets for all, and a
                # few distinct buckets (series' phases): their slots and the bits mixed
                # into the fingerprints are worked out once per bucket, not per series
                off1 = self._offsets(gl[:1])[0]
                off = np.broadcast_to(off1, (look.size, off1.shape[0]))
                ub, which = np.unique(bucket, return_inverse=True)
                want = ub[:, None] - off1[None, :]  # row which[c] is look[c]'s
                slot = ((want % self.slots) * (off1 > 0))[which]  # off 0 looks at slot 0 …
                mix = self._mix(want)[which]
            else:
                off = self._offsets(gl)
                want = bucket[:, None] - off
                which = np.arange(look.size)
                slot = want % self.slots
                mix = self._mix(want)
            flat = state["fp"].reshape(-1)  # one gather on the flat table: much cheaper
            sealed = (fp[look, None] ^ mix) | np.uint32(1)  # ``_sealed``: fp is not 0 here
            found = flat[(rows * self.slots)[:, None] + slot] == sealed
            found &= off > 0  # … and is never a match
            for c in np.flatnonzero(found.any(axis=1)).tolist():  # candidates are rare
                i = int(look[c])
                for j in np.flatnonzero(found[c]).tolist():
                    s_, w_ = int(slot[c, j]), int(want[which[c], j])
                    if state["q"][rows[c], s_] != value[i]:
                        continue  # the steps' fingerprint matched, the values do not
                    gap = int(bn[i]) - w_ * self.stride  # in intervals
                    if gap > self.k and (np.isnan(lag[i]) or gap * g[i] < lag[i]):
                        hit[i] = True
                        lag[i] = gap * float(g[i])
        self._keep(state, b.rows, bn, fp, value)
        return Hits(hit, lag)

    def remember(
        self,
        state: State,
        row: int,
        t: np.ndarray,
        x: np.ndarray,
        valid: np.ndarray,
        interval: float,
        key: int | None = None,
    ) -> None:
        """Keep the fingerprints of one series' stored history (sorted by time), as the
        live stream would have kept them: the rule runner's warm-up after a restart.
        ``key`` is the series' stable hash, as the engine's batches carry it."""
        v = np.where(valid, x, np.nan)  # the window masks invalid values; x is as read
        h = self.history
        keys = None if key is None else np.full(t.shape[0], key, dtype=np.uint32)
        all_bn, _ = self._bucket(t, np.full(t.shape[0], interval), keys)
        pos = np.flatnonzero(all_bn % self.stride == 0)
        if pos.size == 0:
            return
        idx = pos[:, None] + np.arange(-h, 0)[None, :]
        before = np.where(idx >= 0, v[np.maximum(idx, 0)], np.nan)
        seq = np.concatenate([before[:, h - self.k :], x[pos, None]], axis=1)
        fp, value = self.fingerprints(seq, before)
        bn = all_bn[pos]
        self._keep(state, np.full(pos.shape[0], row, dtype=np.int64), bn, fp, value)

    def describe(self, value: float, score: float, limit: float) -> str:
        return (
            f"the last {self.k + 1} values repeat, step for step and to the last digit, "
            f"a segment {score / 3600.0:.2f} h earlier"
        )


@dataclass(frozen=True, slots=True)
class FlagAbuse:
    """Maintenance/fault/manual flags (M, D, S by default) that hide valid data: invalid
    data escapes the exceedance rules, so false flags are how exceedances get hidden.
    Routine calibration (C) is left out by default.

    Two ways to fire, on a flagged reading:

    - the flags *hide live values* (with ``hidden`` ≥ 1): at least ``hidden`` of the
      last ``history`` readings are flagged while their value goes on as if measured —
      within ``band`` × the series' usual step of its last valid value, and not the
      reading before it held. An analyser really taken off the gas reads zero gas,
      ambient air, span gas or a held value; one whose flag is false reads the stack.
      The usual step is an EWMA of |Δ| between valid readings (winsorised at 5×), learnt
      over ``learn`` valid readings before anything is judged this way.
    - an unusual *share*: more than ``max_share`` of the last ``history`` readings
      flagged, in at least ``min_runs`` separate runs (a maintenance visit flags one
      unbroken block; false flags are sprinkled where they hide what they need to).
    """

    kind: ClassVar[str] = "flag_abuse"
    scope: ClassVar[str] = "series"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = True
    history: int = 30
    flags: str = "MDS"
    max_share: float = 0.2
    min_runs: int = 2
    hidden: int = 0  # flagged live values in ``history`` that fire (0: judged by share only)
    band: float = 4.0
    learn: int = 30

    def __post_init__(self) -> None:
        if self.hidden > 0 and not 1 <= self.history <= 64:
            raise ValueError("history must be 1–64 readings with hidden (a 64-bit memory)")

    def new_state(self, capacity: int) -> State | None:
        if self.hidden <= 0:
            return None
        return State(
            capacity,
            last=(np.float64, np.nan),  # the last valid value
            step=(np.float64, np.nan),  # the usual |Δ| between valid readings
            n=(np.int64, 0),  # valid steps learnt
            hid=(np.uint64, 0),  # bit i: the reading i rounds ago hid a live value
        )

    def _hidden(self, b: Batch, now: np.ndarray, state: State) -> np.ndarray:
        """How many of the last ``history`` readings (this one included) were flagged
        over a live value; learns the usual step from this reading if it is valid."""
        r = b.rows
        last, step, n, hid = state["last"][r], state["step"][r], state["n"][r], state["hid"][r]
        x = b.x
        d = np.abs(x - last)
        with np.errstate(invalid="ignore"):
            live = (
                now
                & (n >= self.learn)
                & (d <= self.band * step)
                & (x != b.window[:, -1])  # not a held value
            )
        hid = (hid << np.uint64(1)) | live.astype(np.uint64)
        ok = np.isfinite(x) & b.valid
        dw = np.minimum(d, np.where(np.isfinite(step), 5.0 * step, np.inf))
        learnt = ok & np.isfinite(dw)
        alpha = 1.0 / np.minimum(n + 1, 2 * self.learn)
        state["step"][r] = np.where(
            learnt, np.where(np.isnan(step), dw, step + alpha * (dw - step)), step
        )
        state["n"][r] = n + learnt
        state["last"][r] = np.where(ok, x, last)
        state["hid"][r] = hid
        mask = np.uint64((1 << self.history) - 1) if self.history < 64 else ~np.uint64(0)
        return np.bitwise_count(hid & mask).astype(np.int64)

    def __call__(self, b: Batch, state: State | None) -> Hits:
        table = flag_table(self.flags)
        w = b.wflag[:, b.wflag.shape[1] - self.history + 1 :]
        seen = (w != 0).sum(axis=1) + 1
        now = table[b.flag]
        fl = np.concatenate([table[w], now[:, None]], axis=1)
        marked = fl.sum(axis=1)
        runs = fl[:, 0].astype(np.int64) + (fl[:, 1:] & ~fl[:, :-1]).sum(axis=1)
        share = marked / seen
        full = seen >= self.history
        hit = full & (share > self.max_share) & now & (runs >= self.min_runs)
        judged = full
        if state is not None:
            hiding = now & (self._hidden(b, now, state) >= self.hidden)
            hit |= hiding
            judged = judged | hiding
        return Hits(hit, np.where(judged, share, np.nan))

    def describe(self, value: float, score: float, limit: float) -> str:
        how = "over values that go on as if measured, or " if self.hidden > 0 else ""
        return (
            f"{score:.0%} of the last {self.history} readings carry {'/'.join(self.flags)} "
            f"flags ({how}scattered in separate runs: not a maintenance visit)"
        )


@dataclass(frozen=True, slots=True)
class Capture:
    """Data-capture rate below ``min_rate``: readings arrive, but too few of them.

    The rate is the expected interval over an EWMA of the observed gaps between
    device times (``span`` readings), so it works at any reporting interval without a
    window of timestamps, and a long hole drops it at once when data resumes.
    """

    kind: ClassVar[str] = "capture"
    scope: ClassVar[str] = "device"
    partners: ClassVar[tuple[str, ...]] = ()
    order_free: ClassVar[bool] = False
    judges_invalid: ClassVar[bool] = True
    history: ClassVar[int] = 0
    min_rate: float = 0.75
    span: int = 8
    min_history: int = 10

    def new_state(self, capacity: int) -> State | None:
        return State(capacity, gap=(np.float64, np.nan), last=(np.float64, np.nan), n=(np.int64, 0))

    def __call__(self, b: Batch, state: State | None) -> Hits:
        assert state is not None
        r = b.rows
        gap, last, n = state["gap"][r], state["last"][r], state["n"][r]
        d = np.maximum(b.t - last, 0.0)
        d = np.where(np.isfinite(d), d, b.interval)
        alpha = 2.0 / (self.span + 1)
        gap = np.where(np.isnan(gap), b.interval, gap + alpha * (d - gap))
        rate = np.minimum(b.interval / gap, 1.0)
        state["gap"][r], state["last"][r], state["n"][r] = gap, b.t, n + 1
        judged = n >= self.min_history
        return Hits(judged & (rate < self.min_rate), np.where(judged, rate, np.nan))

    def describe(self, value: float, score: float, limit: float) -> str:
        return f"data-capture rate {score:.0%} (expected ≥ {self.min_rate:.0%})"


@dataclass(frozen=True, slots=True)
class Offline:
    """No reading for ``intervals`` expected reporting intervals; judged on a timer
    against receive times (see the engine), not in rounds."""

    kind: ClassVar[str] = "offline"
    intervals: float = 5.0

    def silent(self, last_t: np.ndarray, interval_s: np.ndarray, now: float) -> np.ndarray:
        return (now - last_t) > self.intervals * interval_s

"""The rule engine: readings in, findings out; vectorised over every series at once.

Readings are judged by their device timestamps, so a replay gives the same findings
as the live stream. A batch may hold several readings of one series; they are taken
in *rounds* (one per device timestamp, oldest first: the readings of a device's
channels taken at the same instant share a round) so each value is judged against the
window that preceded it and beside its partner channels of the same instant, still one
numpy call per rule and round.
A reading older than its series' newest is stored and judged only by the detectors
that do not depend on order (exceedance, implausible).

Which detectors run on which series, with which parameters and gating ("N in a row",
"for", hysteresis), comes from the rules file (``rules.rules_file``). Gating state and
detector state live here, per series row, so a restart that replays stored history
through ``warm`` ends in the same state as the uninterrupted stream.

Offline is about communication, not device clocks: it compares when ingest last
*received* something from a device with the wall clock passed in, so a logger that is
backfilling hours of old data after an outage is not called offline while it talks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar, cast

import numpy as np

from offsite.core.readings import DataKind, Reading
from offsite.rules.alerts import AlertBook
from offsite.rules.config import KINDS, Bound, Gating, RuleSet, SeriesInfo
from offsite.rules.detectors import CATALOG, Batch, Offline, Partner
from offsite.rules.detectors.base import FLAG_N, flag_table, last_valid, series_hash
from offsite.rules.findings import Finding, SeenTimes, rule_name
from offsite.rules.gating import RuleInstance, gate
from offsite.rules.growth import grow_attr, grow_rows
from offsite.rules.partners import Partners, SeriesKey
from offsite.rules.plausible import plausible_range
from offsite.rules.windows import Windows

T = TypeVar("T")
MAINTENANCE = flag_table("MC")
EVIDENCE_POINTS = 30
# ``Finding.judged_before`` of a series with no valid reading known (a restart inside a
# stop replays only flagged ones): nothing has shown a condition gone
NO_VALID = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DeviceMeta:
    """What the engine needs to know of a device from the registry."""

    device_type: str = "unknown"
    enterprise: str = ""
    point: str = ""
    interval_s: float = 60.0
    o2_ref: float | None = None
    limits: Mapping[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class Evaluation:
    findings: list[Finding] = field(default_factory=list)
    # newest device time evaluated per (mn, pollutant), and newest receive time per
    # (mn, '') — what the alert lifecycle needs to decide that a condition is gone
    seen: Mapping[tuple[str, str], datetime] = field(default_factory=dict)
    # the same over valid (N-flagged) readings only: a rule that judges nothing else has
    # not seen its condition gone while a channel reports calibrations or a stop
    judged: Mapping[tuple[str, str], datetime] = field(default_factory=dict)


def _epoch(ts: datetime) -> float:
    return ts.timestamp()


class ReadingRefs(Protocol):
    def __getitem__(self, i: int, /) -> Reading: ...


class _Refs:
    """The readings behind a round's rows, built only when a finding needs one."""

    def __init__(
        self,
        keys: list[SeriesKey],
        sidx: np.ndarray,
        t: np.ndarray,
        x: np.ndarray,
        flag: np.ndarray,
        readings: Sequence[Reading] | None,
        sel: np.ndarray | None = None,
    ) -> None:
        self.keys, self.sidx, self.t, self.x, self.flag = keys, sidx, t, x, flag
        self.readings = readings
        self.sel = sel

    def subset(self, sel: np.ndarray) -> _Refs:
        return _Refs(
            self.keys,
            self.sidx,
            self.t,
            self.x,
            self.flag,
            self.readings,
            sel if self.sel is None else self.sel[sel],
        )

    def __len__(self) -> int:
        return int(self.t.shape[0] if self.sel is None else self.sel.shape[0])

    def __getitem__(self, i: int) -> Reading:
        j = int(i if self.sel is None else self.sel[i])
        if self.readings is not None:
            return self.readings[j]
        mn, pollutant, kind = self.keys[int(self.sidx[j])]
        return Reading(
            datetime.fromtimestamp(float(self.t[j]), UTC),
            mn,
            pollutant,
            float(self.x[j]),
            chr(int(self.flag[j])),
            DataKind(kind),
        )


STEP_EVERY = 16  # readings between looks at a series' seen reporting interval


class _Intervals(Mapping[str, float]):
    """Devices' reporting intervals as the engine knows them now (``interval_of``)."""

    def __init__(self, engine: RuleEngine) -> None:
        self._engine = engine

    def __getitem__(self, mn: str) -> float:
        if mn not in self._engine.devices and mn not in self._engine._device_index:
            raise KeyError(mn)
        return self._engine.interval_of(mn)

    def __iter__(self) -> Iterator[str]:
        return iter(set(self._engine.devices) | set(self._engine._device_index))

    def __len__(self) -> int:
        return len(set(self._engine.devices) | set(self._engine._device_index))


ROUND_PIECE = 4096  # readings judged at once; see RuleEngine._judge_round


class RuleEngine:
    maintenance_grace_s = 600.0

    def __init__(
        self, rules: RuleSet, devices: Mapping[str, DeviceMeta], started_at: datetime
    ) -> None:
        self.rules = rules
        self.devices = dict(devices)
        self.started_at = started_at
        self.offline_rule = Offline(intervals=rules.offline_intervals)
        self.last_received: dict[str, datetime] = {}  # device → newest receive time
        self.windows = Windows(self._width())
        self._instances: list[RuleInstance] = []
        self._inst_index: dict[tuple[Any, ...], int] = {}
        # a resolved tuple (by identity, kept alive here) → its instances
        self._inst_of: dict[int, tuple[tuple[Bound, ...], list[int]]] = {}
        self._applies = np.zeros((self.windows.capacity, 0), dtype=bool)
        self._info: list[SeriesInfo] = []
        cap = self.windows.capacity
        self._limit = np.full(cap, np.nan)
        self._lo = np.full(cap, -np.inf)
        self._hi = np.full(cap, np.inf)
        self._o2ref = np.full(cap, np.nan)
        self._interval = np.full(cap, 60.0)
        # each series' reporting interval as seen (median step of its last readings),
        # refreshed every STEP_EVERY readings; NaN until it has that many
        self._seen_step = np.full(cap, np.nan)
        self._pushes = np.zeros(cap, dtype=np.int64)
        self._valid_t = np.full(cap, -np.inf)  # each series' newest valid reading, epoch s
        self._device_step = np.zeros(0)  # device number → its newest seen step (0: none)
        self._key_hash = np.zeros(cap, dtype=np.uint32)  # series_hash(device, pollutant)
        self.partners = Partners(self.windows)
        self._by_device: dict[str, list[int]] = defaultdict(list)
        self._device_no = np.full(cap, -1, dtype=np.int64)  # row → its device's number
        self._device_index: dict[str, int] = {}  # device → that number
        self._maint: dict[str, float] = {}  # device → newest time it flagged M or C
        self._quiet = False
        self._older: set[SeriesKey] = set()  # see ``warm``
        self.late = 0  # readings judged after a newer one of their series (order-free only)

    def _width(self) -> int:
        """The shared window: the longest history any bound detector reads, + 1."""
        return max([2, *(int(b.detector.history) + 1 for b in self._all_bound())])

    def _all_bound(self) -> list[Bound]:
        """Every detector the rules could bind, with and without each override (to size
        the shared window for the longest history any of them reads)."""
        out: list[Bound] = []
        for r in self.rules.rules:
            variants = [dict(r.params)] + [
                {**r.params, **ov.params} for ov in self.rules.overrides if ov.rule == r.name
            ]
            out.extend(Bound(r.name, CATALOG[r.detector](**p), r.gating, "") for p in variants)
        return out

    # -- registry -------------------------------------------------------------------
    def update_registry(self, devices: Mapping[str, DeviceMeta]) -> None:
        """New limits, intervals or bindings: the series of every device whose entry
        changed (or came, or went) are re-resolved. The rule runner calls this with the
        whole registry every 30 s; re-binding 80,000 series each time stalled judging
        for seconds at 10,000 devices when nothing had changed."""
        new = dict(devices)
        old = self.devices
        changed = {mn for mn in old.keys() | new.keys() if old.get(mn) != new.get(mn)}
        self.devices = new
        mine = changed & self._by_device.keys()
        for mn in mine:
            for row in self._by_device[mn]:
                self._describe_row(row)
        self._settle()
        self._link_partners(mine)

    def update_rules(self, rules: RuleSet) -> None:
        self.rules = rules
        self.offline_rule = Offline(intervals=rules.offline_intervals)
        # a detector reading further back than the windows hold would see a short
        # window (numpy slices from a negative start) and never fill: widen them
        self.windows.widen(self._width())
        self._applies[:] = False
        for row in range(len(self.windows)):
            self._describe_row(row)
        self._settle()

    def note_received(self, last: Mapping[str, datetime]) -> None:
        """Record when ingest last heard from devices (seeded from the store at start)."""
        for mn, ts in last.items():
            if mn not in self.last_received or ts > self.last_received[mn]:
                self.last_received[mn] = ts

    def _grow(self) -> None:
        cap = self.windows.capacity
        if self._limit.shape[0] >= cap:
            return

        for name, fill in (
            ("_limit", np.nan),
            ("_lo", -np.inf),
            ("_hi", np.inf),
            ("_o2ref", np.nan),
            ("_interval", 60.0),
            ("_seen_step", np.nan),
            ("_pushes", 0),
            ("_valid_t", -np.inf),
            ("_key_hash", 0),
            ("_device_no", -1),
            ("_applies", False),
        ):
            grow_attr(self, name, cap, fill)
        self.partners.grow(cap)
        for inst in self._instances:
            inst.grow(cap)

    def _settle(self) -> None:
        for inst in self._instances:
            inst.settle()

    def _instance(self, bound: Bound) -> int:
        j = self._inst_index.get(bound.key)
        if j is None:
            j = len(self._instances)
            self._instances.append(RuleInstance(bound, self.windows.capacity))
            self._inst_index[bound.key] = j
            if self.partners.add_context(tuple(getattr(bound.detector, "context", ()))):
                self._link_partners(set(self._by_device))
            self._applies = np.concatenate(
                [self._applies, np.zeros((self._applies.shape[0], 1), dtype=bool)], axis=1
            )
        return j

    def _key(self, row: int) -> SeriesKey:
        return cast(SeriesKey, self.windows.keys[row])

    def _describe_row(self, row: int) -> None:
        mn, pollutant, kind = self._key(row)
        meta = self.devices.get(mn, DeviceMeta())
        limit = meta.limits.get(pollutant)
        info = SeriesInfo(
            mn, pollutant, kind, meta.device_type, meta.enterprise, meta.point, limit is not None
        )
        if row < len(self._info):
            self._info[row] = info
        else:
            self._info.append(info)
        self._limit[row] = np.nan if limit is None else limit
        self._lo[row], self._hi[row] = plausible_range(pollutant)
        self._o2ref[row] = np.nan if meta.o2_ref is None else meta.o2_ref
        self._interval[row] = meta.interval_s
        self._key_hash[row] = series_hash(mn, pollutant)
        self._applies[row, :] = False
        for j in self._instances_of(self.rules.resolve(info)):
            self._applies[row, j] = True
            self._instances[j].bind(row)

    def _instances_of(self, bound: tuple[Bound, ...]) -> list[int]:
        """The instances of a resolved tuple of rules (the rule set interns them: one per
        kind of series), worked out once, not hashed again for every series."""
        got = self._inst_of.get(id(bound))
        if got is None or got[0] is not bound:
            got = self._inst_of[id(bound)] = (bound, [self._instance(b) for b in bound])
        return got[1]

    def _link_partners(self, mns: set[str]) -> None:
        """Point each series of these devices at its partner channels (same kind)."""
        self.partners.link((self._by_device.get(mn, []) for mn in mns), self._key, self._limit)

    def _rows(self, keys: list[SeriesKey]) -> np.ndarray:
        rows, new = self.windows.rows(keys)  # type: ignore[arg-type]
        if new:
            self._grow()
            for row in new:
                self._describe_row(row)
                mn = self._key(row)[0]
                self._by_device[mn].append(row)
                self._device_no[row] = self._device_index.setdefault(mn, len(self._device_index))
            self._settle()
            self._link_partners({self._key(r)[0] for r in new})
        return rows

    # -- readings -------------------------------------------------------------------
    def warm(self, readings: Sequence[Reading], older: Collection[SeriesKey] = ()) -> int:
        """Replay stored history (at start) through every detector, raising nothing.

        Windows, CUSUMs, averages and "N in a row" counters end where the stream left
        them, so a restart neither forgets a stuck sensor nor re-raises what is open.
        ``older`` names the series whose stored history reaches back past what is
        replayed: their warm-up (``warm_up_for``) was served before the restart; every
        other series' warm-up is dated from its first replayed reading, as live.
        """
        self._older = set(older)
        self._quiet = True
        try:
            self.evaluate(readings)
        finally:
            self._quiet = False
            self._older = set()
        return sum(1 for r in readings if not r.stat)

    def remember(self, readings: Sequence[Reading]) -> int:
        """Rebuild long memories (copy-paste's days of fingerprints) from stored history
        older than what ``warm`` replays: nothing else sees these readings, so windows,
        gating and every other detector stay as they are. Call it before ``warm``.
        Returns how many values reached a detector."""
        by_series: dict[SeriesKey, list[Reading]] = defaultdict(list)
        for r in readings:
            if not r.stat:
                by_series[(r.mn, r.pollutant, r.kind.value)].append(r)
        if not by_series:
            return 0
        keys = list(by_series)
        rows = self._rows(keys)
        fed = 0
        for key, row in zip(keys, rows.tolist(), strict=True):
            series = sorted(by_series[key], key=lambda r: r.ts)
            t = np.array([r.ts.timestamp() for r in series])
            x = np.array([r.value for r in series])
            valid = np.array([r.flag == "N" for r in series])
            for j in np.flatnonzero(self._applies[row]).tolist():
                inst = self._instances[j]
                remember = getattr(inst.det, "remember", None)
                if remember is None or inst.state is None:
                    continue
                remember(
                    inst.state,
                    int(inst.slots[row]),
                    t,
                    x,
                    valid,
                    float(self._interval[row]),
                    key=int(self._key_hash[row]),
                )
                fed += len(series)
        return fed

    def long_memory_pollutants(self) -> set[str]:
        """Pollutants, by registry limits, that a detector with a long memory may be bound
        to: what the rule runner fetches for ``remember`` (an over-estimate is harmless)."""
        if not any(hasattr(CATALOG[r.detector], "remember") for r in self.rules.rules):
            return set()
        return {p for meta in self.devices.values() for p in meta.limits}

    def evaluate(
        self, readings: Sequence[Reading], received: Mapping[str, datetime] | None = None
    ) -> Evaluation:
        """Judge new readings; ``received`` maps each device to when its data arrived."""
        primary = [r for r in readings if not r.stat]  # min/max/cou… beside an average:
        index: dict[SeriesKey, int] = {}  # the rules judge primary values
        sidx = np.fromiter(
            (index.setdefault((r.mn, r.pollutant, r.kind), len(index)) for r in primary),
            np.int64,
            len(primary),
        )
        t = np.fromiter((r.ts.timestamp() for r in primary), float, len(primary))
        x = np.fromiter((r.value for r in primary), float, len(primary))
        flag = np.frombuffer("".join(r.flag for r in primary).encode("ascii"), np.uint8)
        return self.evaluate_arrays(list(index), sidx, t, x, flag, received, primary)

    def evaluate_arrays(
        self,
        keys: list[SeriesKey],
        sidx: np.ndarray,
        t: np.ndarray,
        x: np.ndarray,
        flag: np.ndarray,
        received: Mapping[str, datetime] | None = None,
        readings: Sequence[Reading] | None = None,
    ) -> Evaluation:
        """``evaluate`` on arrays: reading i is of series ``keys[sidx[i]]`` (mn, pollutant,
        kind), at device time ``t[i]`` (epoch s), value ``x[i]``, flag code ``flag[i]``.
        What the rule runner calls with its queue, without a Python object per reading;
        ``readings`` (same order), when given, word the findings.

        Readings are taken in rounds that follow device time, per device — the k-th
        distinct instant of each device in round k — so each channel meets its partners
        (O2, flow) of the same instant, as in the live stream, however many readings of
        each a batch holds.
        """
        ev = Evaluation()
        if received:
            self.note_received(received)
            ev.seen = {(mn, ""): ts for mn, ts in received.items()}
        n = int(t.shape[0])
        if n == 0:
            return ev
        newest = np.full(len(keys), -np.inf)  # -inf: a series with no reading here
        np.maximum.at(newest, sidx, t)
        valid = flag == FLAG_N
        newest_valid = np.full(len(keys), -np.inf)
        np.maximum.at(newest_valid, sidx[valid], t[valid])
        index = {k: i for i, k in enumerate(keys)}
        ev.judged = SeenTimes(keys, newest_valid, ev.seen, index)
        ev.seen = SeenTimes(keys, newest, ev.seen, index)
        series_rows = self._rows(keys)
        rows = series_rows[sidx]
        refs = _Refs(keys, sidx, t, x, flag, readings)
        # the devices numbered by their first series in ``keys`` (rounds are cut in that
        # order), from the engine's own numbers: no Python loop over the keys
        known, first, inv = np.unique(
            self._device_no[series_rows], return_index=True, return_inverse=True
        )
        number = np.empty(known.shape[0], dtype=np.int64)
        number[np.argsort(first)] = np.arange(known.shape[0])
        dev = number[inv.reshape(-1)][sidx]
        if np.unique(sidx).shape[0] == n:  # one reading per series: one round
            self._judge_round(np.arange(n), dev, rows, x, t, flag, refs, ev)
            return ev
        order = np.lexsort((t, dev))
        d_s, t_s = dev[order], t[order]
        new_pair = np.ones(n, dtype=bool)
        new_pair[1:] = (d_s[1:] != d_s[:-1]) | (t_s[1:] != t_s[:-1])
        pair = np.cumsum(new_pair) - 1
        first = np.ones(n, dtype=bool)
        first[1:] = d_s[1:] != d_s[:-1]
        dev_start = np.maximum.accumulate(np.where(first, pair, 0))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = pair - dev_start
        # a series with two readings at one instant: the later one takes the next round
        while True:
            key = rows * (int(rank.max()) + 2) + rank
            _, first_at = np.unique(key, return_index=True)
            if first_at.shape[0] == n:
                break
            dup = np.ones(n, dtype=bool)
            dup[first_at] = False
            rank[dup] += 1
        for rnd in np.unique(rank).tolist():
            self._judge_round(np.flatnonzero(rank == rnd), dev, rows, x, t, flag, refs, ev)
        return ev

    def _judge_round(
        self,
        sel: np.ndarray,
        dev: np.ndarray,
        rows: np.ndarray,
        x: np.ndarray,
        t: np.ndarray,
        flag: np.ndarray,
        refs: _Refs,
        ev: Evaluation,
    ) -> None:
        """Judge one round (readings ``sel``) in pieces of whole devices.

        A round's temporaries are a few kB per series (window gathers, masks, sorted
        copies): over the 80,000 series of 10,000 stacks, 170 MB at once. Series are
        judged independently (the detector contract) except for partner channels, which
        are the same device's, so a piece holding whole devices gives the same findings.
        """
        if sel.shape[0] > ROUND_PIECE:
            sel = sel[np.argsort(dev[sel], kind="stable")]
            d = dev[sel]
            starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])  # each device's first
            # cut at the first device starting at or after every ROUND_PIECE readings
            at = np.searchsorted(starts, np.arange(ROUND_PIECE, sel.shape[0], ROUND_PIECE))
            pieces = np.split(sel, np.unique(starts[at[at < starts.shape[0]]]))
        else:
            pieces = [sel]
        for p in pieces:
            if p.shape[0]:
                self.evaluate_round(rows[p], x[p], t[p], flag[p], refs.subset(p), ev)

    def series_rows(self, keys: list[SeriesKey]) -> np.ndarray:
        """Row numbers of series (creating them): the index ``evaluate_round`` takes."""
        return self._rows(keys)

    def _batch(self, rows: np.ndarray, x: np.ndarray, t: np.ndarray, flag: np.ndarray) -> Batch:
        window, wflag, wt = self.windows.window(rows)
        return Batch(
            rows,
            x,
            t,
            flag,
            self._limit[rows],
            self._lo[rows],
            self._hi[rows],
            self._o2ref[rows],
            self._interval[rows],
            window,
            wflag,
            wt,
            key=self._key_hash[rows],
            seen_interval=self._seen_step[rows],
        )

    def evaluate_round(
        self,
        rows: np.ndarray,
        x: np.ndarray,
        t: np.ndarray,
        flag: np.ndarray,
        batch: ReadingRefs,
        ev: Evaluation,
    ) -> None:
        """One round as arrays: distinct series ``rows``, their new values, device times
        (epoch s) and flag codes. ``batch[i]`` is the reading behind row i, read only
        to word a finding. The core of ``evaluate``, and what the micro-benchmark times.
        """
        full = self._batch(rows, x, t, flag)
        in_order = full.t > self.windows.last_t(rows)
        if not self._quiet:
            self.late += int((~in_order).sum())
        where = np.full(self.windows.capacity, -1, dtype=np.int64)
        where[rows] = np.arange(rows.shape[0])
        maint = MAINTENANCE[full.flag]
        for i in np.flatnonzero(maint).tolist():
            mn = batch[i].mn
            self._maint[mn] = max(self._maint.get(mn, -np.inf), full.t[i])
        applies = self._applies[rows]
        masks: list[np.ndarray | None] = []
        # partner channels and loads are worked out once per round, for the union of the
        # rows whose rules need them, and sliced for each rule
        need: dict[tuple[str, Any], np.ndarray] = {}
        for j, inst in enumerate(self._instances):
            det = inst.det
            mask = applies[:, j] if det.order_free else applies[:, j] & in_order
            masks.append(mask if mask.any() else None)
            if masks[-1] is None:
                continue
            ctx = tuple(getattr(det, "context", ()))
            for nk in [*(("role", r) for r in det.partners), *([("load", ctx)] if ctx else [])]:
                need[nk] = need[nk] | mask if nk in need else mask.copy()
        made: dict[tuple[str, Any], tuple[np.ndarray, Partner, int]] = {}
        whole: dict[tuple[str, Any], Partner] = {}  # a partner for all its rows, shared

        def partner(k: tuple[str, Any], idx: np.ndarray) -> Partner:
            got = made.get(k)
            if got is None:
                u = np.flatnonzero(need[k])
                inv = np.full(rows.shape[0], -1, dtype=np.int64)
                if k[0] == "role":
                    p = whole[k] = self.partners.roles(rows[u], (k[1],), where, full)[k[1]]
                    inv[u] = np.arange(u.shape[0])
                else:
                    # the load per distinct set of partners: each rule's rows are
                    # gathered from it in one copy
                    p, at_u = self.partners.load_shared(rows[u], k[1], where, full)
                    inv[u] = np.arange(u.shape[0]) if at_u is None else at_u
                    if at_u is None:
                        whole[k] = p
                got = made[k] = (inv, p, u.shape[0])
            inv, p, n_u = got
            if idx.shape[0] == n_u:
                w = whole.get(k)
                if w is None:
                    w = whole[k] = Partner(p.x[inv[idx]], np.take(p.window, inv[idx], axis=0))
                return w
            at = inv[idx]
            return Partner(p.x[at], np.take(p.window, at, axis=0))

        # rules bound to the same series share one sub-batch (most bind to "@limited")
        taken: dict[bytes, Batch] = {}
        unmoved: np.ndarray | None = None  # readings that leave their series' value as it was
        subs: dict[tuple[bytes, tuple[str, ...], tuple[str, ...]], Batch] = {}
        for j, inst in enumerate(self._instances):
            det = inst.det
            mask = masks[j]
            if mask is None:
                continue
            ctx = tuple(getattr(det, "context", ()))
            mkey = mask.tobytes()
            key = (mkey, det.partners, ctx)
            b = subs.get(key)  # type: ignore[assignment]
            idx = np.flatnonzero(mask)
            if b is None:
                b = taken.get(mkey)  # type: ignore[assignment]
                if b is None:
                    b = full if idx.shape[0] == rows.shape[0] else full.take(idx, partners=False)
                    taken[mkey] = b
                if det.partners or ctx:
                    partners = {r: partner(("role", r), idx) for r in det.partners}
                    if ctx:
                        partners["load"] = partner(("load", ctx), idx)
                    b = b.same_windows(partners=partners)
                subs[key] = b
            # the detector and the gating index their state by this rule's slots
            series = b.rows
            peers = None
            if ctx and getattr(det, "peers", False):
                # a partner the rule no longer applies to keeps its slot: -2 as well
                p = self.partners.ctx[ctx][series]
                pr = np.maximum(p, 0)
                at = inst.slots[pr]
                peers = np.where(p < 0, -1, np.where((at >= 0) & self._applies[pr, j], at, -2))
            b = b.same_windows(rows=inst.slots[series], peers=peers)
            hits = det(b, inst.state)
            hit = hits.hit if det.judges_invalid else hits.hit & b.valid
            older = still = None
            if inst.bound.gating.warm_up_for_s:
                if self._older:
                    older = self._older_of(series)
                if unmoved is None:  # once a round, for the rules that ask
                    last = last_valid(full.valid_window())
                    x_ok = full.valid & np.isfinite(full.x)
                    unmoved = ~(x_ok & np.isfinite(last) & (full.x != last))
                still = unmoved[idx]
            fire = gate(inst, b.rows, b.t, hit, hits.score, older, hits.routine, still)
            if not det.judges_invalid:  # a firing rule held by ``clear_score`` through a
                fire &= b.valid  # calibration says nothing of the flagged readings
            if self._quiet or not fire.any():
                continue
            for k in np.flatnonzero(fire).tolist():
                i = int(idx[k])
                value = float(hits.value[k]) if hits.value is not None else float(full.x[i])
                self._finding(
                    inst, batch[i], int(rows[i]), value, float(hits.score[k]), full, i, ev
                )
        # every valid reading, late ones too (``Evaluation.judged`` counts them for clears)
        ok = np.flatnonzero(full.flag == FLAG_N)
        if ok.size:
            self._valid_t[rows[ok]] = np.maximum(self._valid_t[rows[ok]], full.t[ok])
        keep = np.flatnonzero(in_order)
        if keep.size:
            self.windows.push(rows[keep], full.x[keep], full.flag[keep], full.t[keep])
            self._see_steps(rows[keep])

    def _see_steps(self, rows: np.ndarray) -> None:
        """Every STEP_EVERY readings of a series, the median step between its last ones:
        the interval the device really reports at, whatever its registration says."""
        n = self._pushes[rows] + 1
        self._pushes[rows] = n
        due = rows[n % STEP_EVERY == 0]
        if not due.size:
            return
        t = self.windows.times(due)
        with np.errstate(invalid="ignore"):
            steps = np.diff(t[:, -(STEP_EVERY + 1) :], axis=1)
            step = np.median(steps, axis=1)  # NaN while the window is shorter
        self._seen_step[due] = np.where(step > 0, step, np.nan)
        if self._device_step.shape[0] < len(self._device_index):
            self._device_step = grow_rows(self._device_step, len(self._device_index) * 2, 0.0)
        # a device reports at the step of its most frequent series: its real-time values,
        # not the hourly or daily averages it sends beside them
        _, first = np.unique(self._device_no[due], return_index=True)
        for row in due[first].tolist():
            mine = self._by_device[self._key(row)[0]]
            fastest = np.fmin.reduce(self._seen_step[mine])
            self._device_step[self._device_no[row]] = fastest if fastest > 0 else 0.0

    def _older_of(self, series: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Which of the readings ``i`` are of series whose stored history reaches back past
        a restart's replay (``warm``'s ``older``): their warm-up ran before it."""
        return lambda i: np.fromiter(
            (self._key(k) in self._older for k in series[i].tolist()), bool
        )

    def _finding(
        self,
        inst: RuleInstance,
        r: Reading,
        row: int,
        value: float,
        score: float,
        full: Batch,
        i: int,
        ev: Evaluation,
    ) -> None:
        b, g = inst.bound, inst.bound.gating
        info = self._info[row]
        limit = float(full.limit[i])
        severity = g.severity
        if g.critical_score is not None and score >= g.critical_score:
            severity = "critical"
        name = rule_name(b.name, r.kind.value)
        suppressed = self.rules.silenced(b.name, info, r.ts)
        if suppressed is None and g.mute_on_maintenance:
            since = full.t[i] - self._maint.get(r.mn, -np.inf)
            if since <= self.maintenance_grace_s:
                suppressed = "device reports maintenance or calibration (flag M/C)"
        # evidence: the values the rule saw, so the alert can be judged on its own
        n = EVIDENCE_POINTS
        ts = [*full.wt[i, -n:].tolist(), full.t[i]]
        vs = [*full.window[i, -n:].tolist(), full.x[i]]
        fl = bytes([*full.wflag[i, -n:].tolist(), int(full.flag[i])])
        keep = [k for k, t in enumerate(ts) if t == t]  # drop empty (NaN) slots
        detail: dict[str, Any] = {
            "score": round(score, 4) if score == score else None,
            "rule": {
                "name": b.name,
                "detector": inst.det.kind,
                "params": inst.params,
                "version": b.version,
                "digest": self.rules.digest[:12],
                "count": g.count,
                "for_s": g.for_s,
                "warm_up": g.warm_up,
                "warm_up_for_s": g.warm_up_for_s,
                "routine": g.routine,
                "clear_score": g.clear_score,
            },
            "evidence": {
                "t": [round(ts[k], 3) for k in keep],
                "v": [vs[k] for k in keep],
                "flag": "".join(chr(fl[k]) for k in keep),
            },
        }
        pollutant = "" if inst.det.scope == "device" else r.pollutant
        # a rule of valid readings: when its series last gave one before this reading
        # (the alert book ends an episode only on valid evidence that it is gone)
        # — for a reading newer than every one before it: a late one's is not known
        before = float(self._valid_t[row])
        judged_before = None
        if pollutant and not inst.det.judges_invalid and before < full.t[i]:
            judged_before = datetime.fromtimestamp(before, UTC) if before > -np.inf else NO_VALID
        ev.findings.append(
            Finding(
                name,
                r.mn,
                pollutant,
                r.ts,
                value,
                severity,
                inst.det.describe(value, score, limit)
                + (f" [{r.pollutant}]" if not pollutant else ""),
                None if np.isnan(limit) else limit,
                detail,
                suppressed,
                judged_before,
            )
        )

    # -- the clock --------------------------------------------------------------------
    def check_offline(self, now: datetime, devices: Sequence[str] | None = None) -> Evaluation:
        """Devices not heard from for ``offline.intervals`` intervals, as of ``now``.

        Silence is measured from the engine's start at the earliest, so starting ingest
        (after an outage too) does not declare the whole fleet offline at once. With
        several workers, ``note_received`` is fed from the shared device status, so every
        worker judges a device by what any of them heard.
        """
        ev = Evaluation()
        if not self.rules.offline_enabled:
            return ev
        mns = list(devices if devices is not None else self.devices)
        if not mns:
            return ev
        start = _epoch(self.started_at)
        last = np.array(
            [max(_epoch(self.last_received.get(mn, self.started_at)), start) for mn in mns]
        )
        interval = np.array([self.interval_of(mn) for mn in mns])
        silent = self.offline_rule.silent(last, interval, _epoch(now))
        for i in np.flatnonzero(silent):
            mn = mns[i]
            minutes = (_epoch(now) - last[i]) / 60.0
            since = datetime.fromtimestamp(last[i], UTC)
            meta = self.devices.get(mn, DeviceMeta())
            info = SeriesInfo(mn, "", "rtd", meta.device_type, meta.enterprise, meta.point, False)
            ev.findings.append(
                Finding(
                    "offline",
                    mn,
                    "",
                    now,
                    round(float(minutes), 2),
                    self.rules.offline_severity,
                    f"no data since {since.isoformat(timespec='seconds')} "
                    f"({minutes:.1f} min; expected every {interval[i]:g} s)",
                    None,
                    {
                        "last_seen": since.isoformat(),
                        "rule": {
                            "name": "offline",
                            "intervals": self.rules.offline_intervals,
                            "version": self.rules.version,
                        },
                    },
                    self.rules.silenced("offline", info, now),
                )
            )
        return ev

    # -- lifecycle settings the alert book needs --------------------------------------
    def _per_rule(self, value: Callable[[Gating], T]) -> dict[str, T]:
        """A gating value per rule name, with every kind suffix: the alert book's keys."""
        return {
            rule_name(r.name, kind): value(r.gating) for r in self.rules.rules for kind in KINDS
        }

    def clear_after(self) -> dict[str, timedelta]:
        """Per rule name: how long a condition must be gone."""
        out = {"offline": timedelta(seconds=self.rules.offline_clear_after_s)}
        return out | self._per_rule(lambda g: timedelta(seconds=g.clear_after_s))

    def clear_readings(self) -> dict[str, int]:
        """Per rule name: how many of the device's reporting intervals a condition must be
        gone, at least, before its alert clears (0: the alert book's own floor)."""
        return self._per_rule(lambda g: g.clear_readings)

    def alert_book(
        self, default_clear_after: timedelta, clear_after: Mapping[str, timedelta] | None = None
    ) -> AlertBook:
        """The alert book for this engine's rules: their clear times, floors, cooldowns and
        what each judges, with the devices' intervals as the engine sees them (live).
        ``clear_after`` adds rules of the caller's own (rewritten history)."""
        return AlertBook(
            self.clear_after() | dict(clear_after or {}),
            default_clear_after=default_clear_after,
            cooldown=self.cooldowns(),
            intervals=self.intervals(),
            clear_readings=self.clear_readings(),
            valid_only=self.valid_only(),
        )

    def valid_only(self) -> frozenset[str]:
        """Rule names whose detectors judge valid readings only: their conditions are
        gone on valid evidence (``Evaluation.judged``), not on calibrations or a stop."""
        det: dict[str, Any] = {r.name: CATALOG[r.detector] for r in self.rules.rules}
        return frozenset(
            rule_name(name, kind)
            for name, d in det.items()
            if not d.judges_invalid and d.scope != "device"
            for kind in KINDS
        )

    def intervals(self) -> Mapping[str, float]:
        """Each device's reporting interval, s: the alert book scales clear_after and
        cooldowns with it (a 5-minute series must not make every reading an episode).
        A live view: the registered interval, or the one the device is seen to report
        at when that is longer (a device registered at 60 s that sends every 5 min)."""
        return _Intervals(self)

    def interval_of(self, mn: str) -> float:
        """The registered interval, or the one the device is seen at when longer: a
        device that sends less often than registered is judged by its capture rate,
        not declared offline or split into an episode per reading as well."""
        registered = self.devices.get(mn, DeviceMeta()).interval_s
        i = self._device_index.get(mn, -1)
        seen = float(self._device_step[i]) if 0 <= i < self._device_step.shape[0] else 0.0
        return max(registered, seen)

    def cooldowns(self) -> dict[str, timedelta]:
        return self._per_rule(lambda g: timedelta(seconds=g.cooldown_s))

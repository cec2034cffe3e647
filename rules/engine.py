"""The rule engine: readings in, findings out; vectorised over every series at once.

Readings are judged by their device timestamps, so a replay gives the same findings
as the live stream. A batch may hold several readings of one series; they are taken
in *rounds* (the 1st new reading of every series, then the 2nd, …) so each value is
judged against the window that preceded it, still one numpy call per round. A reading
older than its series' newest is stored and judged for exceedance only (the windowed
detectors assume arrival order; see the note in the README).

Offline is about communication, not device clocks: it compares when ingest last
*received* something from a device with the wall clock passed in, so a logger that is
backfilling hours of old data after an outage is not called offline while it talks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from ingest.models import Reading
from rules.detectors import Exceedance, Flatline, Offline, Spike
from rules.findings import Finding, rule_name, seen_key
from rules.windows import Windows

SeriesKey = tuple[str, str, str]  # (mn, pollutant, kind)


@dataclass(frozen=True, slots=True)
class RuleParams:
    window: int = 30
    flatline_count: int = 10
    spike_z: float = 8.0
    offline_intervals: float = 5.0


@dataclass(slots=True)
class Evaluation:
    findings: list[Finding] = field(default_factory=list)
    # newest device time evaluated per (mn, pollutant), and newest receive time per
    # (mn, '') — what the alert lifecycle needs to decide that a condition is gone
    seen: dict[tuple[str, str], datetime] = field(default_factory=dict)


def _epoch(ts: datetime) -> float:
    return ts.timestamp()


class RuleEngine:
    def __init__(self, params: RuleParams, limits: Mapping[tuple[str, str], float],
                 intervals: Mapping[str, float], started_at: datetime) -> None:
        self.params = params
        self.exceedance = Exceedance()
        self.flatline = Flatline(count=params.flatline_count)
        self.spike = Spike(z=params.spike_z)
        self.offline_rule = Offline(intervals=params.offline_intervals)
        self.windows = Windows(max(params.window, params.flatline_count))
        self.limits = dict(limits)
        self.intervals = dict(intervals)
        self.started_at = started_at
        self.last_received: dict[str, datetime] = {}  # device → newest receive time

    def update_registry(self, limits: Mapping[tuple[str, str], float],
                        intervals: Mapping[str, float]) -> None:
        self.limits = dict(limits)
        self.intervals = dict(intervals)

    def note_received(self, last: Mapping[str, datetime]) -> None:
        """Record when ingest last heard from devices (seeded from the store at start)."""
        for mn, ts in last.items():
            if mn not in self.last_received or ts > self.last_received[mn]:
                self.last_received[mn] = ts

    # -- readings ---------------------------------------------------------------------
    def warm(self, readings: Sequence[Reading]) -> int:
        """Refill the windows from stored history (at start), judging nothing.

        Without it a restart would forget the last values of every series: a stuck
        sensor would need ``flatline_count`` new readings to be seen again, and its open
        alert could clear meanwhile. Returns how many values went in.
        """
        by_series: dict[SeriesKey, list[Reading]] = defaultdict(list)
        for r in readings:
            if not r.stat:
                by_series[(r.mn, r.pollutant, r.kind.value)].append(r)
        if not by_series:
            return 0
        keys = list(by_series)
        rows = self.windows.rows(keys)  # type: ignore[arg-type]
        series = [sorted(by_series[k], key=lambda r: r.ts)[-self.windows.width:] for k in keys]
        for rnd in range(max(len(s) for s in series)):
            sel = [i for i, s in enumerate(series) if len(s) > rnd]
            batch = [series[i][rnd] for i in sel]
            self.windows.push(rows[sel], np.fromiter((r.value for r in batch), float, len(sel)),
                              np.fromiter((_epoch(r.ts) for r in batch), float, len(sel)))
        return sum(len(s) for s in series)

    def evaluate(self, readings: Sequence[Reading],
                 received: Mapping[str, datetime] | None = None) -> Evaluation:
        """Judge new readings; ``received`` maps each device to when its data arrived."""
        ev = Evaluation()
        if received:
            self.note_received(received)
            for mn, ts in received.items():
                ev.seen[(mn, "")] = ts
        by_series: dict[SeriesKey, list[Reading]] = defaultdict(list)
        for r in readings:
            if r.stat:  # min/max/cou… beside an average: the rules judge primary values
                continue
            by_series[(r.mn, r.pollutant, r.kind.value)].append(r)
            sk = seen_key(rule_name("any", r.kind.value), r.mn, r.pollutant)
            if sk not in ev.seen or r.ts > ev.seen[sk]:
                ev.seen[sk] = r.ts
        if not by_series:
            return ev
        keys = list(by_series)
        rows = self.windows.rows(keys)  # type: ignore[arg-type]
        for series in by_series.values():
            series.sort(key=lambda r: r.ts)
        depth = max(len(s) for s in by_series.values())
        for rnd in range(depth):
            sel = [i for i, k in enumerate(keys) if len(by_series[k]) > rnd]
            batch = [by_series[keys[i]][rnd] for i in sel]
            self._round(rows[sel], batch, ev)
        return ev

    def _round(self, rows: np.ndarray, batch: list[Reading], ev: Evaluation) -> None:
        x = np.fromiter((r.value for r in batch), float, len(batch))
        t = np.fromiter((_epoch(r.ts) for r in batch), float, len(batch))
        limit = np.fromiter((self.limits.get((r.mn, r.pollutant), np.nan) for r in batch),
                            float, len(batch))
        valid = np.fromiter((r.flag == "N" for r in batch), bool, len(batch))
        in_order = t > self.windows.last_t(rows)
        window = self.windows.window(rows)

        hit, score = self.exceedance(x, window, limit, valid)
        for i in np.flatnonzero(hit):
            r = batch[i]
            sev = "critical" if score[i] >= self.exceedance.critical_ratio else "major"
            ev.findings.append(Finding(rule_name("exceedance", r.kind.value), r.mn,
                                       r.pollutant, r.ts, r.value, sev,
                                       self.exceedance.describe(r.value, score[i], limit[i]),
                                       float(limit[i]), {"ratio": round(float(score[i]), 4)}))
        # Data flagged invalid (maintenance, calibration, stopped…) is not judged by the
        # statistical rules and does not enter their windows: a calibration gas is not a
        # spike, and it must not skew the median the next values are judged against.
        for det in (self.spike, self.flatline):
            hit, score = det(x, window, limit, valid)
            for i in np.flatnonzero(hit & in_order & valid):
                r = batch[i]
                ev.findings.append(Finding(rule_name(det.name, r.kind.value), r.mn,
                                           r.pollutant, r.ts, r.value,
                                           det.severity, det.describe(r.value, score[i], 0.0),
                                           None if np.isnan(limit[i]) else float(limit[i]),
                                           {"score": round(float(score[i]), 3)}))
        keep = np.flatnonzero(in_order & valid)
        if keep.size:
            self.windows.push(rows[keep], x[keep], t[keep])

    # -- the clock --------------------------------------------------------------------
    def check_offline(self, now: datetime, devices: Sequence[str] | None = None) -> Evaluation:
        """Devices not heard from for ``offline_intervals`` intervals, as of ``now``.

        Silence is measured from the engine's start at the earliest, so starting ingest
        (after an outage too) does not declare the whole fleet offline at once. With
        several workers, ``note_received`` is fed from the shared device status, so every
        worker judges a device by what any of them heard.
        """
        ev = Evaluation()
        mns = list(devices if devices is not None else self.intervals)
        if not mns:
            return ev
        # measured from our start at the earliest: after a restart the backlog held by the
        # broker has not been read yet, so "silent" before it is not known
        start = _epoch(self.started_at)
        last = np.array([max(_epoch(self.last_received.get(mn, self.started_at)), start)
                         for mn in mns])
        interval = np.array([self.intervals.get(mn, 60.0) for mn in mns])
        silent = self.offline_rule.silent(last, interval, _epoch(now))
        for i in np.flatnonzero(silent):
            mn = mns[i]
            minutes = (_epoch(now) - last[i]) / 60.0
            since = datetime.fromtimestamp(last[i], UTC)
            ev.findings.append(Finding(
                "offline", mn, "", now, round(float(minutes), 2), self.offline_rule.severity,
                f"no data since {since.isoformat(timespec='seconds')} "
                f"({minutes:.1f} min; expected every {interval[i]:g} s)",
                None, {"last_seen": since.isoformat()}))
        return ev

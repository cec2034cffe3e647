"""``offsite eval --generic``: the rules on series they were not built for.

Each series is replayed through ``run_engine`` exactly as the plant eval does it: one
device per series, one channel that has no permit limit (so the packaged
``implausible``, ``spike``, ``flatline`` and ``stat`` apply), the device's interval =
the series' interval, device time = receive time. What comes out is alert *episodes*
(a reopened alert is a new one), scored against NAB-style labelled windows:

- the share of episodes that start inside a labelled window, beside the share of
  time inside the windows (equal shares: the alerts are placed no better than chance);
- how many labelled anomalies have at least one episode starting in their window;
- episodes per series-day on the series that have no anomaly (every one is false).

``offline`` is left out of the figures (it judges communication, not values: a real
series with gaps is offline in them); it is counted apart.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from offsite.core.errors import OffsiteError
from offsite.core.registry import Device, Enterprise, Point, Registry
from offsite.evaluation.runner import Batch, EngineConfig, run_engine
from offsite.evaluation.scoring import Raised
from offsite.simulators.faults import Message
from offsite.simulators.generic import GenericSeries, generic_series, nab_series

Out = Callable[[str], None]
CODE = "a99001"  # a channel code the engine knows nothing about: no limit, no range
POINT_KIND = "wastewater"
NOT_VALUES = frozenset({"offline"})  # rules that judge communication, left out
GENERIC_SPLITS = {"tune": 0, "held-out": 100}  # first seed of each split


@dataclass(frozen=True, slots=True)
class SeriesResult:
    """One series and the episodes the rules raised on it."""

    name: str
    family: str
    interval_s: float
    days: float
    windows: tuple[tuple[datetime, datetime], ...]
    episodes: tuple[Raised, ...]
    offline: int = 0

    @property
    def anomalous(self) -> bool:
        return bool(self.windows)

    def inside(self, at: datetime) -> bool:
        return any(lo <= at < hi for lo, hi in self.windows)

    @property
    def window_days(self) -> float:
        return sum((hi - lo).total_seconds() for lo, hi in self.windows) / 86400.0


def _registry(series: Sequence[GenericSeries]) -> tuple[Registry, dict[str, GenericSeries]]:
    ent = Enterprise("GEN", "generic series")
    point = Point("GEN-P", "GEN", "generic", POINT_KIND)
    by_mn = {f"G{i:05d}": s for i, s in enumerate(series)}
    devices = tuple(Device(mn, point.id, s.interval_s) for mn, s in by_mn.items())
    return Registry((ent,), (point,), devices), by_mn


def _batches(by_mn: dict[str, GenericSeries]) -> list[Batch]:
    """Every reading of every series, grouped by device time, oldest first."""
    at: dict[datetime, list[Message]] = {}
    for mn, s in by_mn.items():
        for i, v in enumerate(s.values.tolist()):
            if v == v:  # NaN: the device sent nothing then
                at.setdefault(s.time(i), []).append(Message(mn, {CODE: float(v)}))
    return sorted(at.items(), key=lambda kv: kv[0])


def replay(
    series: Sequence[GenericSeries], config: EngineConfig | None = None
) -> list[SeriesResult]:
    """The episodes the engine raises on each series. Series that share a start and an
    interval run in one engine, one device each: series never see each other (one
    channel per device, no partners), so this equals one engine per series."""
    groups: dict[tuple[datetime, float], list[GenericSeries]] = {}
    for s in series:
        groups.setdefault((s.start, s.interval_s), []).append(s)
    out: dict[str, SeriesResult] = {}
    for group in groups.values():
        registry, by_mn = _registry(group)
        raised = run_engine(registry, _batches(by_mn), 1, config)
        for mn, s in by_mn.items():
            mine = [a for a in raised if a.mn == mn]
            out[s.name] = SeriesResult(
                s.name,
                s.family,
                s.interval_s,
                s.days,
                s.windows,
                tuple(a for a in mine if _rule(a) not in NOT_VALUES),
                sum(1 for a in mine if _rule(a) in NOT_VALUES),
            )
    return [out[s.name] for s in series]


@dataclass(slots=True)
class GenericScores:
    """The figures of one set of series (see the module)."""

    series: int = 0
    anomalous: int = 0
    days: float = 0.0
    clean_days: float = 0.0
    episodes: int = 0
    in_windows: int = 0
    time_share: float = 0.0  # of all series' time, inside labelled windows
    windows: int = 0
    found: int = 0  # windows with an episode starting inside
    clean_episodes: int = 0
    offline: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    in_windows_by_rule: dict[str, int] = field(default_factory=dict)
    clean_by_rule: dict[str, int] = field(default_factory=dict)
    by_family: dict[str, int] = field(default_factory=dict)

    @property
    def episode_share(self) -> float | None:
        return self.in_windows / self.episodes if self.episodes else None

    @property
    def clean_rate(self) -> float | None:
        return self.clean_episodes / self.clean_days if self.clean_days else None

    def as_dict(self) -> dict[str, object]:
        return {
            "series": self.series,
            "anomalous": self.anomalous,
            "days": round(self.days, 2),
            "episodes": self.episodes,
            "in_windows": self.in_windows,
            "episode_share_in_windows": _r(self.episode_share),
            "time_share_in_windows": _r(self.time_share),
            "windows": self.windows,
            "windows_found": self.found,
            "clean_days": round(self.clean_days, 2),
            "clean_episodes": self.clean_episodes,
            "clean_per_series_day": _r(self.clean_rate),
            "offline": self.offline,
            "by_rule": dict(sorted(self.by_rule.items())),
            "in_windows_by_rule": dict(sorted(self.in_windows_by_rule.items())),
            "clean_by_rule": dict(sorted(self.clean_by_rule.items())),
            "by_family": dict(sorted(self.by_family.items())),
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def _rule(a: Raised) -> str:
    return a.rule.split(".")[0]  # "spike.min" counts as spike


def score_generic(results: Iterable[SeriesResult]) -> GenericScores:
    """Pure: episodes and labels in, figures out."""
    sc = GenericScores()
    window_days = 0.0
    for r in results:
        sc.series += 1
        sc.days += r.days
        sc.offline += r.offline
        window_days += r.window_days
        sc.windows += len(r.windows)
        sc.found += sum(1 for lo, hi in r.windows if any(lo <= a.at < hi for a in r.episodes))
        sc.by_family[r.family] = sc.by_family.get(r.family, 0) + len(r.episodes)
        if r.anomalous:
            sc.anomalous += 1
        else:
            sc.clean_days += r.days
        for a in r.episodes:
            rule = _rule(a)
            sc.episodes += 1
            sc.by_rule[rule] = sc.by_rule.get(rule, 0) + 1
            if r.inside(a.at):
                sc.in_windows += 1
                sc.in_windows_by_rule[rule] = sc.in_windows_by_rule.get(rule, 0) + 1
            if not r.anomalous:
                sc.clean_episodes += 1
                sc.clean_by_rule[rule] = sc.clean_by_rule.get(rule, 0) + 1
    sc.time_share = window_days / sc.days if sc.days else 0.0
    return sc


def text_report(name: str, sc: GenericScores) -> list[str]:
    share = sc.episode_share
    lines = [
        f"{name}: {sc.series} series ({sc.anomalous} with a labelled anomaly), "
        f"{sc.days:.0f} series-days",
        f"  episodes {sc.episodes}; inside labelled windows {sc.in_windows} "
        f"({'–' if share is None else f'{share:.1%}'}) vs time inside them "
        f"{sc.time_share:.1%}; anomalies found {sc.found}/{sc.windows}",
        f"  no-anomaly series: {sc.clean_episodes} episodes in {sc.clean_days:.0f} "
        f"series-days = {sc.clean_rate or 0.0:.3f} per series-day",
    ]
    for rule, n in sorted(sc.by_rule.items()):
        lines.append(
            f"    {rule:<12} {n:>6} episodes, {sc.in_windows_by_rule.get(rule, 0):>5} in windows, "
            f"{sc.clean_by_rule.get(rule, 0):>5} on no-anomaly series"
        )
    fam = ", ".join(f"{k} {v}" for k, v in sorted(sc.by_family.items()) if v)
    lines.append(f"  by family: {fam or 'none'}")
    if sc.offline:
        lines.append(f"  (offline, left out: {sc.offline} episodes on gaps in the data)")
    return lines


def _judge_seed(job: tuple[int, EngineConfig | None]) -> list[SeriesResult]:
    seed, config = job
    return replay(generic_series(seed), config)


def load_nab(root: Path) -> list[GenericSeries]:
    """NAB files under ``root``: ``data/<group>/<file>.csv`` and, if present,
    ``labels/combined_windows.json`` (keys ``<group>/<file>.csv``)."""
    labels_file = root / "labels" / "combined_windows.json"
    labels = json.loads(labels_file.read_text()) if labels_file.exists() else {}
    data = root / "data" if (root / "data").is_dir() else root
    files = sorted(data.rglob("*.csv"))
    if not files:
        raise OffsiteError(f"no NAB series (*.csv) under {root}")
    return [
        nab_series(str(p.relative_to(data)), p.read_text(), labels.get(str(p.relative_to(data))))
        for p in files
    ]


def run_generic(
    *,
    seeds: int,
    split: str = "both",
    nab: Path | None = None,
    synthetic: bool = True,
    workers: int = 1,
    as_json: bool = False,
    config: EngineConfig | None = None,
    out: Out = print,
    err: Out = print,
) -> int:
    """Replay the synthetic families (per split: seeds 0… tune, 100… held out) and any
    NAB files; print the figures. A measurement: exits 0 whatever they are."""
    if seeds < 1 or workers < 1:
        raise OffsiteError("offsite eval --generic needs --seeds >= 1 and --workers >= 1")
    splits = (list(GENERIC_SPLITS) if split == "both" else [split]) if synthetic else []
    if any(s not in GENERIC_SPLITS for s in splits):
        raise OffsiteError(f"unknown split {split!r}: tune, held-out or both")
    t0 = time.monotonic()
    reports: dict[str, GenericScores] = {}
    seeds_of: dict[str, list[int]] = {}
    for s in splits:
        seeds_of[s] = [GENERIC_SPLITS[s] + i for i in range(seeds)]
        jobs = [(seed, config) for seed in seeds_of[s]]
        if workers > 1 and len(jobs) > 1:
            with multiprocessing.get_context().Pool(min(workers, len(jobs))) as pool:
                parts = pool.map(_judge_seed, jobs)
        else:
            parts = [_judge_seed(j) for j in jobs]
        reports[s] = score_generic(r for part in parts for r in part)
        err(f"[{s}] seeds {seeds_of[s]}: {reports[s].episodes} episodes")
    nab_results: list[SeriesResult] = []
    if nab is not None:
        nab_results = replay(load_nab(nab), config)
        reports["nab"] = score_generic(nab_results)
    elapsed = time.monotonic() - t0
    if as_json:
        doc: dict[str, object] = {
            "suite": "generic",
            "elapsed_s": round(elapsed, 1),
            "seeds": seeds_of,
            "splits": {k: v.as_dict() for k, v in reports.items()},
        }
        if nab_results:
            doc["nab_series"] = {
                r.name: {
                    "episodes": len(r.episodes),
                    "in_windows": sum(r.inside(a.at) for a in r.episodes),
                }
                for r in nab_results
            }
        out(json.dumps(doc, indent=2))
        return 0
    out(
        f"offsite eval --generic: one device per series, one channel without a limit; "
        f"{elapsed:.1f} s"
    )
    for k, sc in reports.items():
        name = f"{k} (seeds {', '.join(map(str, seeds_of[k]))})" if k in seeds_of else "NAB files"
        for line in text_report(name, sc):
            out(line)
    for r in nab_results:
        inside = sum(r.inside(a.at) for a in r.episodes)
        out(
            f"    {r.name}: {len(r.episodes)} episodes, {inside} in windows, "
            f"{len(r.windows)} windows"
        )
    return 0

"""``offsite eval``: build the plant runs per split and seed, run them through the engine,
score, print the splits side by side.

A measurement, not a test: it exits 0 whatever the figures unless ``strict`` asks
for 1 when a target of the held-out split (the one the tuning never saw) is missed.
Progress goes to stderr so that ``--json`` output on stdout stays machine-readable.
Runs are independent and pure, so they spread over worker processes.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from offsite.core.errors import OffsiteError
from offsite.evaluation.report import splits_json_report, splits_text_report
from offsite.evaluation.runner import EngineConfig, run_engine
from offsite.evaluation.scoring import Raised, Scores, Targets, Truth, score
from offsite.simulators.faults import FaultKind
from offsite.simulators.plantsuite import (
    CLEAN_PER_PROFILE,
    DAYS,
    DEVICES_PER_KIND,
    RATE_S,
    SPLITS,
    PlantRun,
    build_plant_run,
)

Out = Callable[[str], None]
HELD_OUT = "held-out"


@dataclass(frozen=True, slots=True)
class Job:
    """One run to build and judge: everything a worker process needs (picklable)."""

    splits: tuple[str, ...]
    seed_index: int
    kinds: tuple[str, ...]
    profiles: tuple[str, ...] | None
    devices_per_kind: int
    clean_per_profile: int
    days: float
    config: EngineConfig | None
    rate_s: float = RATE_S


@dataclass(frozen=True, slots=True)
class SplitResult:
    truths: list[Truth]
    alerts: list[Raised]  # on devices with a fault
    clean_alerts: list[Raised]  # on clean devices: every one is false
    clean_device_days: float
    profile_of: dict[str, str]  # device → plant profile
    clean_days_by_profile: dict[str, float]


@dataclass(frozen=True, slots=True)
class Judged:
    job: Job
    name: str
    devices: int
    by_split: dict[str, SplitResult]
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class SplitInfo:
    """What a split ran on: its seeds, its profiles and how many faults it held."""

    seeds: list[int]
    profiles: list[str]
    faults: int


def judge(job: Job) -> Judged:
    """Build one run and feed it through the engine (runs in a worker process)."""
    t0 = time.monotonic()
    run = build_plant_run(
        job.splits,
        job.seed_index,
        job.kinds,
        profiles=job.profiles,
        devices_per_kind=job.devices_per_kind,
        clean_per_profile=job.clean_per_profile,
        days=job.days,
        rate_s=job.rate_s,
    )
    fleet = run.fleet
    batches = ((ts, fleet.messages(ts)) for ts in fleet.timestamps(run.duration_s))
    raised = run_engine(fleet.registry, batches, 1, job.config)
    by_split = {}
    for s in job.splits:
        mine = [a for a in raised if run.split_of.get(a.mn) == s]
        by_split[s] = SplitResult(
            [
                Truth(f.kind.value, f.mn, f.pollutant, f.start, f.end)
                for f in fleet.faults
                if run.split_of[f.mn] == s
            ],
            [a for a in mine if a.mn not in run.clean_mns],
            [a for a in mine if a.mn in run.clean_mns],
            run.clean_device_days_of(s),
            {d.mn: d.profile.name for d in fleet.devices if run.split_of[d.mn] == s},
            _clean_days_by_profile(run, s),
        )
    return Judged(job, run.name, len(fleet.devices), by_split, time.monotonic() - t0)


def _clean_days_by_profile(run: PlantRun, split: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for d in run.fleet.devices:
        if d.mn in run.clean_mns and run.split_of[d.mn] == split:
            out[d.profile.name] = out.get(d.profile.name, 0.0) + run.duration_s / 86400.0
    return out


def run_eval(
    *,
    seeds: int,
    kinds: Sequence[str],
    split: str = "both",
    profiles: Sequence[str] | None = None,
    devices_per_kind: int = DEVICES_PER_KIND,
    clean_per_profile: int = CLEAN_PER_PROFILE,
    days: float = DAYS,
    rate_s: float = RATE_S,
    workers: int = 1,
    as_json: bool = False,
    strict: bool = False,
    config: EngineConfig | None = None,
    targets: Targets | None = None,
    out: Out = print,
    err: Out = print,
) -> int:
    if seeds < 1 or devices_per_kind < 1 or clean_per_profile < 0 or workers < 1:
        raise OffsiteError(
            "offsite eval needs --seeds >= 1, --devices-per-kind >= 1, "
            "--clean-per-profile >= 0 and --workers >= 1"
        )
    splits = list(SPLITS) if split == "both" else [split]
    if any(s not in SPLITS for s in splits):
        raise OffsiteError(f"unknown split {split!r}: tune, held-out or both")
    t = targets or Targets()
    wanted = (
        tuple(FaultKind(k).value for k in kinds) if kinds else tuple(k.value for k in FaultKind)
    )
    if (days < 2 and {"copy_paste", "drift"} & set(wanted)) or days <= 1:
        raise OffsiteError(
            "offsite eval needs --days > 1, and >= 2 with copy_paste or drift "
            "(a day-old copy needs a day of history)"
        )
    # One run per seed holds every split: the engine's cost is mostly per round. With
    # fewer seeds than workers, each split runs apart so that the workers share the load.
    groups = [tuple(splits)] if seeds >= workers else [(s,) for s in splits]
    jobs = [
        Job(
            group,
            i,
            wanted,
            tuple(profiles) if profiles else None,
            devices_per_kind,
            clean_per_profile,
            days,
            config,
            rate_s,
        )
        for i in range(seeds)
        for group in groups
    ]
    t0 = time.monotonic()
    results = _run_jobs(jobs, workers, err)
    by_split: dict[str, Scores] = {}
    for s in splits:
        mine = [r.by_split[s] for r in results if s in r.by_split]
        by_split[s] = score(
            [f for r in mine for f in r.truths],
            [a for r in mine for a in r.alerts],
            [a for r in mine for a in r.clean_alerts],
            sum(r.clean_device_days for r in mine),
            list(wanted),
            group_of={mn: p for r in mine for mn, p in r.profile_of.items()},
            clean_days_by_group=_sum_days([r.clean_days_by_profile for r in mine]),
        )
    elapsed = time.monotonic() - t0
    verdict = HELD_OUT if HELD_OUT in by_split else splits[0]
    described: dict[str, SplitInfo] = {
        s: SplitInfo(
            [SPLITS[s].seed_base + i for i in range(seeds)],
            list(profiles) if profiles else list(SPLITS[s].profiles),
            sum(len(r.by_split[s].truths) for r in results if s in r.by_split),
        )
        for s in splits
    }
    meta = {
        "suite": "plant",
        "days": days,
        "rate_s": rate_s,
        "devices_per_kind": devices_per_kind,
        "clean_per_profile": clean_per_profile,
        "kinds": list(wanted),
        "split_definition": {
            s: {"seeds": d.seeds, "profiles": d.profiles, "faults": d.faults}
            for s, d in described.items()
        },
        "elapsed_s": round(elapsed, 1),
    }
    if as_json:
        out(json.dumps(splits_json_report(by_split, t, meta, verdict), indent=2))
    else:
        header = [
            f"offsite eval: plant suite, {days:g}-day runs of {rate_s:g}-s data, faults on the "
            f"last day (drift from day 2); {devices_per_kind} device(s) per kind and profile, "
            f"{clean_per_profile} clean per profile; {elapsed:.1f} s"
        ]
        for s, d in described.items():
            seeds_txt = ", ".join(map(str, d.seeds))
            header.append(
                f"  {s:<9} seeds {seeds_txt} on {', '.join(d.profiles)}: {d.faults} faults, "
                f"{by_split[s].clean_device_days:g} clean device-days"
            )
        for line in splits_text_report(by_split, t, header, verdict):
            out(line)
    return 1 if strict and by_split[verdict].missed(t) else 0


def _sum_days(parts: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in parts:
        for k, v in part.items():
            out[k] = out.get(k, 0.0) + v
    return out


def _quiet_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_jobs(jobs: list[Job], workers: int, err: Out) -> list[Judged]:
    def report(r: Judged, done: int) -> None:
        err(
            f"[{done}/{len(jobs)}] {r.name}: {r.devices} devices × {r.job.days:g} days, "
            f"{sum(len(x.alerts) + len(x.clean_alerts) for x in r.by_split.values())} alerts "
            f"({r.elapsed_s:.1f} s)"
        )

    if workers == 1 or len(jobs) == 1:
        results = []
        for job in jobs:
            results.append(judge(job))
            report(results[-1], len(results))
        return results
    results = []
    # Workers ignore Ctrl-C: the parent alone decides, and on Ctrl-C it terminates them
    # at once rather than waiting for runs of minutes to finish.
    pool = multiprocessing.get_context().Pool(min(workers, len(jobs)), initializer=_quiet_worker)
    try:
        for r in pool.imap_unordered(judge, jobs):
            results.append(r)
            report(r, len(results))
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return sorted(results, key=lambda r: (r.job.seed_index, r.job.splits))

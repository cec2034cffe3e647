"""Micro-benchmark of rule evaluation alone: readings judged per second, whole catalog on.

A fleet of CEMS stacks (8 channels each, 3 of them limited, O2 and velocity as partners)
sends clean 1-minute data; every round is one reading of every series, the shape of a
busy ingest batch. Two figures, side by side in one run:

* **core** — ``RuleEngine.evaluate_round`` on arrays (detectors, gating, windows): the
  cost of the rules themselves;
* **runner** — ``RuleEngine.evaluate_arrays``, as the rule runner calls it with a slice of
  its queue (adds grouping readings into series and rounds);
* **full** — ``RuleEngine.evaluate`` on ``Reading`` objects (adds building the arrays from
  Python objects: what ``offsite eval`` and a warm-up pay);
* **set-up** — µs per series to create it (bind its rules, link its partners), and a
  registry update re-binding every series: what a runner taking over a range, or an
  edit in the admin page, costs before any reading is judged.

Run: ``python -m offsite.bench.rules_bench [--devices 2000] [--rounds 60] [--repeat 3] [--json]
[--rules-file FILE]``.
Single-threaded (numpy's own kernels are too); pin it with ``taskset -c 0`` for one core.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from offsite.core.readings import DataKind, Reading
from offsite.rules.config import RuleSet
from offsite.rules.engine import DeviceMeta, Evaluation, RuleEngine
from offsite.rules.rules_file import load_rules

CODES = ("a21026", "a21002", "a34013", "a19001", "a01012", "a01011", "a01013", "a01014")
BASE = np.array([15.0, 30.0, 4.0, 8.0, 120.0, 12.0, -0.3, 8.0])
LIMITS = {"a21026": 35.0, "a21002": 50.0, "a34013": 10.0}
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _engine(devices: int, rules: RuleSet) -> tuple[RuleEngine, list[str]]:
    mns = [f"B{i:011d}" for i in range(devices)]
    meta = {
        mn: DeviceMeta("flue_gas", f"E{i // 3}", f"P{i}", 60.0, 6.0, LIMITS)
        for i, mn in enumerate(mns)
    }
    return RuleEngine(rules, meta, T0), mns


def _values(rng: np.random.Generator, n_series: int, rounds: int) -> np.ndarray:
    """Per series: level × (1 + slow AR(1) wander) + white noise, like the simulators."""
    base = np.tile(BASE, n_series // len(BASE))
    wander = np.zeros((rounds, n_series))
    for r in range(1, rounds):
        wander[r] = 0.98 * wander[r - 1] + rng.normal(0, 0.004, n_series)
    noise = rng.normal(0, 0.02, (rounds, n_series))
    return np.round(base * (1 + wander + noise), 3)


def run(
    devices: int, rounds: int, warm_rounds: int = 40, rules_file: Path | None = None
) -> dict[str, float]:
    rng = np.random.default_rng(7)
    rules = load_rules(rules_file)  # read and checked once, for the three modes
    out: dict[str, float] = {}
    for mode in ("core", "runner", "full"):
        engine, mns = _engine(devices, rules)
        keys = [(mn, c, "rtd") for mn in mns for c in CODES]
        vals = _values(rng, len(keys), warm_rounds + rounds)
        start = time.perf_counter()
        rows = engine.series_rows(keys)
        out[f"{mode}_setup_us_per_series"] = 1e6 * (time.perf_counter() - start) / len(keys)
        if mode == "core":
            # the rule runner's 30-s refresh with nothing changed, then every device edited
            same = dict(engine.devices)
            start = time.perf_counter()
            engine.update_registry(same)
            out["registry_refresh_s"] = time.perf_counter() - start
            edited = {mn: replace(m, limits={**m.limits, "a21026": 36.0}) for mn, m in same.items()}
            start = time.perf_counter()
            engine.update_registry(edited)
            out["registry_rebind_s"] = time.perf_counter() - start
            engine.update_registry(same)
        flags = np.full(len(keys), ord("N"), dtype=np.uint8)
        stub = [Reading(T0, k[0], k[1], 0.0, "N", DataKind.RTD) for k in keys]
        sidx = np.arange(len(keys))
        findings = 0
        elapsed = 0.0
        for r in range(warm_rounds + rounds):
            ts = T0 + timedelta(minutes=r)
            t = np.full(len(keys), ts.timestamp())
            if mode == "core":
                ev = Evaluation()
                start = time.perf_counter()
                engine.evaluate_round(rows, vals[r], t, flags, stub, ev)
                took = time.perf_counter() - start
            elif mode == "runner":
                start = time.perf_counter()
                ev = engine.evaluate_arrays(keys, sidx, t, vals[r], flags)
                took = time.perf_counter() - start
            else:
                readings = [
                    Reading(ts, k[0], k[1], float(v), "N", DataKind.RTD)
                    for k, v in zip(keys, vals[r].tolist(), strict=True)
                ]
                start = time.perf_counter()
                ev = engine.evaluate(readings)
                took = time.perf_counter() - start
            if r >= warm_rounds:
                elapsed += took
                findings += len(ev.findings)
        out[f"{mode}_readings_per_s"] = len(keys) * rounds / elapsed
        out[f"{mode}_findings"] = findings
    out["setup_us_per_series"] = statistics.median(
        out.pop(f"{m}_setup_us_per_series") for m in ("core", "runner", "full")
    )
    out["series"] = devices * len(CODES)
    out["rules"] = len(rules.rules)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rules-file", type=Path, default=None, help="default: the packaged rules")
    args = ap.parse_args(argv)
    runs = []
    for i in range(args.repeat):
        res = run(args.devices, args.rounds, rules_file=args.rules_file)
        runs.append(res)
        print(
            f"run {i + 1}/{args.repeat}: core {res['core_readings_per_s']:,.0f}, runner "
            f"{res['runner_readings_per_s']:,.0f}, full {res['full_readings_per_s']:,.0f} "
            f"readings/s; set-up {res['setup_us_per_series']:.0f} µs/series",
            file=sys.stderr,
        )
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    if args.json:
        print(json.dumps({"median": med, "runs": runs}))
    else:
        print(
            f"rule evaluation, {med['rules']:.0f} rules, {med['series']:.0f} series, "
            f"{args.rounds} rounds, median of {args.repeat}:"
        )
        print(f"  core (arrays in)        {med['core_readings_per_s']:>12,.0f} readings/s")
        print(f"  runner (queue arrays)   {med['runner_readings_per_s']:>12,.0f} readings/s")
        print(f"  full (Reading objects)  {med['full_readings_per_s']:>12,.0f} readings/s")
        print(f"  set-up (new series)     {med['setup_us_per_series']:>12,.1f} µs/series")
        print(f"  registry refresh        {med['registry_refresh_s']:>12,.3f} s, nothing changed")
        print(f"  registry re-bind        {med['registry_rebind_s']:>12,.3f} s, all edited")
        print(
            f"  findings on this synthetic data: {med['core_findings']:.0f} (core), "
            f"{med['runner_findings']:.0f} (runner), {med['full_findings']:.0f} (full); "
            "detection quality is `offsite eval`'s job"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

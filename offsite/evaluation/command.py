"""``offsite eval``: build the suite per seed, run it through the engine, score, print.

A measurement, not a test: it exits 0 whatever the figures unless ``strict`` asks
for 1 when a target is missed. Progress goes to stderr so that ``--json`` output
on stdout stays machine-readable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

from offsite.core.errors import OffsiteError
from offsite.evaluation.report import json_report, text_report
from offsite.evaluation.runner import EngineConfig, run_one
from offsite.evaluation.scoring import Raised, Targets, Truth, score
from offsite.simulators.evalsuite import DEVICES_PER_KIND, RATE_S, RUN_S, build_suite
from offsite.simulators.faults import FaultKind

Out = Callable[[str], None]


def run_eval(
    *,
    seeds: int,
    kinds: Sequence[str],
    devices_per_kind: int = DEVICES_PER_KIND,
    as_json: bool = False,
    strict: bool = False,
    config: EngineConfig | None = None,
    targets: Targets | None = None,
    out: Out = print,
    err: Out = print,
) -> int:
    if seeds < 1 or devices_per_kind < 1:
        raise OffsiteError("offsite eval needs --seeds >= 1 and --devices-per-kind >= 1")
    t = targets or Targets()
    wanted = [FaultKind(k) for k in kinds] if kinds else list(FaultKind)
    t0 = time.monotonic()
    truths: list[Truth] = []
    alerts: list[Raised] = []
    clean_alerts: list[Raised] = []
    clean_days = 0.0
    for seed in range(seeds):
        for run in build_suite(seed, wanted, devices_per_kind=devices_per_kind):
            t_run = time.monotonic()
            got = run_one(run, config)
            if run.clean:
                clean_alerts += got
                clean_days += run.device_days
            else:
                alerts += got
                truths += [
                    Truth(f.kind.value, f.mn, f.pollutant, f.start, f.end) for f in run.fleet.faults
                ]
            err(
                f"{run.name}: {len(run.fleet.devices)} devices × "
                f"{run.duration_s / 3600:g} h, {len(got)} alerts "
                f"({time.monotonic() - t_run:.1f} s)"
            )
    scores = score(truths, alerts, clean_alerts, clean_days, [k.value for k in wanted])
    elapsed = time.monotonic() - t0
    meta = {
        "seeds": seeds,
        "devices_per_kind": devices_per_kind,
        "kinds": [k.value for k in wanted],
        "elapsed_s": round(elapsed, 1),
    }
    if as_json:
        out(json.dumps(json_report(scores, t, meta), indent=2))
    else:
        header = (
            f"offsite eval: {seeds} seed(s), {len(wanted)} fault kind(s) × "
            f"{devices_per_kind} devices ({RUN_S / 3600:g} h runs, data every "
            f"{RATE_S:g} s), clean data {clean_days:.0f} device-days; {elapsed:.1f} s"
        )
        for line in text_report(scores, t, header):
            out(line)
    return 1 if strict and scores.missed(t) else 0

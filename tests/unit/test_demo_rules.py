"""The demo's rules catch the demo's faults: its faults last a minute of 1-s readings, so
the packaged rules' waits (warm-ups, drift's 20 minutes) are shortened for it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from offsite.demo import demo_rules
from offsite.evaluation.runner import EngineConfig, run_engine
from offsite.simulators.faults import FaultKind
from offsite.simulators.scenarios import build_fleet


def test_the_demos_drifts_are_raised_and_clean_devices_raise_no_drift(tmp_path: Path) -> None:
    rules = EngineConfig(rules_file=demo_rules(tmp_path))
    start = datetime(2026, 12, 7, tzinfo=UTC)
    found, drifts, false = 0, 0, []
    for seed in range(4):  # as `offsite demo` draws its fleet: 1-s readings, faults at 15 s
        fleet = build_fleet(20, seed=seed, start=start, rate_s=1.0, fault_after_s=15.0)
        raised = run_engine(
            fleet.registry,
            ((ts, fleet.messages(ts)) for ts in fleet.timestamps(120)),
            config=rules,
        )
        drifting = {(f.mn, f.pollutant) for f in fleet.faults if f.kind is FaultKind.DRIFT}
        alerted = {(r.mn, r.pollutant) for r in raised if r.rule == "drift"}
        drifts += len(drifting)
        found += len(drifting & alerted)
        false += sorted(alerted - drifting)
    assert drifts == 8
    assert found >= 7, f"{found} of {drifts} drifts raised"  # 0 with drift's 20 minutes
    assert false == []

"""The demo's rules catch the demo's faults: its faults last a minute of 1-s readings, so
the packaged rules' waits (warm-ups, drift's 20 minutes) are shortened for it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from offsite.demo import demo_rules
from offsite.evaluation.runner import EngineConfig, run_engine
from offsite.simulators.faults import FaultKind
from offsite.simulators.scenarios import build_fleet


@pytest.mark.parametrize("model", ["plant", "simple"])
def test_the_demos_drifts_are_raised_and_clean_devices_raise_no_drift(
    tmp_path: Path, model: str
) -> None:
    """As `offsite demo` draws its fleet (the plant model by default; 1-s readings, faults
    at 15 s) and within its 90 s, at several times of day: the plant model's load and
    events follow the clock, and the demo starts whenever it is run."""
    rules = EngineConfig(rules_file=demo_rules(tmp_path))
    found, drifts, false = 0, 0, []
    for seed, hour in [(0, 0), (0, 12), (1, 6), (1, 18), (2, 9), (3, 21)]:
        start = datetime(2026, 12, 7, hour, 47, tzinfo=UTC)
        fleet = build_fleet(20, seed=seed, start=start, rate_s=1.0, fault_after_s=15.0, model=model)
        raised = run_engine(
            fleet.registry,
            ((ts, fleet.messages(ts)) for ts in fleet.timestamps(90)),
            config=rules,
        )
        drifting = {(f.mn, f.pollutant) for f in fleet.faults if f.kind is FaultKind.DRIFT}
        alerted = {(r.mn, r.pollutant) for r in raised if r.rule == "drift"}
        drifts += len(drifting)
        found += len(drifting & alerted)
        false += sorted(alerted - drifting)
    assert drifts == 12
    # 0 with drift's 20 minutes; with its 15-reading fit, 10 of 12 (plant), 9 of 12 (simple)
    assert found == drifts, f"{found} of {drifts} drifts raised"
    assert false == []

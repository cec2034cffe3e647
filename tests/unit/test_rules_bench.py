"""`offsite bench rules` runs end to end on a tiny fleet and prints every figure."""

from __future__ import annotations

import pytest

from offsite.bench import rules_bench


def test_the_rules_bench_prints_speed_and_set_up(capsys: pytest.CaptureFixture[str]) -> None:
    assert rules_bench.main(["--devices", "4", "--rounds", "3", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for figure in ("core (arrays in)", "set-up (new series)", "registry refresh", "re-bind"):
        assert figure in out
    res = rules_bench.run(4, 3, warm_rounds=2)
    assert res["series"] == 32 and res["core_readings_per_s"] > 0
    assert res["setup_us_per_series"] > 0 and res["registry_rebind_s"] > 0

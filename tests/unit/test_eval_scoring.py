"""Scoring on hand-made cases: a hit, a miss, a late alert, an alert explained by another
fault, device-wide faults, clean false alerts, the confusion table and the targets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from offsite.evaluation.report import json_report, text_report
from offsite.evaluation.scoring import (
    DEFAULT_GRACE,
    UNEXPLAINED,
    Raised,
    Targets,
    Truth,
    matches,
    score,
)

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


FLAT_A = Truth("flatline", "A", "a21026", at(0), at(30))
FLAT_B = Truth("flatline", "B", "w01018", at(100), at(130))
SPIKE_C = Truth("spike", "C", "a21026", at(50), at(51))
OFF_D = Truth("offline", "D", None, at(10), at(40))


def test_matches_needs_device_pollutant_and_window_plus_grace() -> None:
    assert matches(FLAT_A, Raised("flatline", "A", "a21026", at(9)))
    assert matches(FLAT_A, Raised("flatline", "A", "", at(9)))  # device-level alert
    assert not matches(FLAT_A, Raised("flatline", "A", "a21002", at(9)))  # other pollutant
    assert not matches(FLAT_A, Raised("flatline", "X", "a21026", at(9)))  # other device
    assert not matches(FLAT_A, Raised("flatline", "A", "a21026", at(-1)))  # before it began
    assert matches(FLAT_A, Raised("flatline", "A", "a21026", FLAT_A.end + DEFAULT_GRACE))
    assert not matches(
        FLAT_A, Raised("flatline", "A", "a21026", FLAT_A.end + DEFAULT_GRACE + timedelta(seconds=1))
    )
    assert matches(OFF_D, Raised("spike", "D", "a19001", at(12)))  # device-wide fault
    dil = Truth("dilution", "E", "a21026", at(0), at(60))
    assert matches(dil, Raised("spike", "E", "a19001", at(1)))  # O2 moves with dilution
    assert not matches(dil, Raised("spike", "E", "a01012", at(1)))


def test_recall_precision_delay_and_confusion() -> None:
    faults = [FLAT_A, FLAT_B, SPIKE_C, OFF_D]
    alerts = [
        Raised("flatline", "A", "a21026", at(9)),  # hit, 9 min
        Raised("flatline", "A", "a21026", at(20)),  # a second hit: not a second detection
        Raised("flatline", "B", "w01018", at(145)),  # too late: B is missed, alert is false
        Raised("flatline", "C", "a21026", at(50)),  # flatline rule, explained by the spike
        Raised("spike", "C", "a21026", at(50)),
        Raised("offline", "D", "", at(15)),
        Raised("spike", "Z", "a21026", at(5)),  # a device with no fault
    ]
    clean = [Raised("spike", "K", "a21026", at(3))]
    s = score(
        faults,
        alerts,
        clean,
        clean_device_days=4.0,
        kinds=["flatline", "spike", "offline", "clamp"],
    )
    k = {x.kind: x for x in s.kinds}
    flat = k["flatline"]
    assert (flat.faults, flat.detected, flat.recall) == (2, 1, 0.5)
    # 4 flatline alerts: A ×2 and C are explained by a fault on their device, B's is not
    assert (flat.alerts, flat.true_alerts, flat.precision) == (4, 3, 0.75)
    assert flat.delays_min == (9.0,) and flat.median_delay_min == 9.0
    assert flat.clean_alerts == 0 and flat.clean_rate == 0.0
    spike = k["spike"]
    # spike alerts: C (true), Z (false), K on a clean run (false)
    assert (spike.detected, spike.alerts, spike.true_alerts) == (1, 3, 1)
    assert spike.median_delay_min == 0.0 and spike.clean_alerts == 1
    assert spike.clean_rate == pytest.approx(0.25)
    assert k["offline"].recall == 1.0 and k["offline"].median_delay_min == 5.0
    clamp = k["clamp"]  # no faults, no alerts: nothing to measure, nothing missed by itself
    assert clamp.recall is None and clamp.precision is None and clamp.missed(Targets()) == []
    assert s.confusion["flatline"] == {"flatline": 2, "spike": 1, UNEXPLAINED: 1}
    assert s.confusion["spike"] == {"spike": 1, UNEXPLAINED: 2}
    assert s.confusion["offline"] == {"offline": 1}
    assert s.clean_alerts == 1 and s.clean_rate == pytest.approx(0.25) and s.alerts == 8


def test_targets_name_what_is_missed() -> None:
    t = Targets()
    faults = [FLAT_A]
    late = score(faults, [Raised("flatline", "A", "a21026", at(9))], [], 10.0, ["flatline"])
    assert late.missed(t) == {"flatline": ["median delay 9.0 min > 5"]}
    noisy = score(
        faults,
        [Raised("flatline", "A", "a21026", at(1))],
        [Raised("spike", "K", "x", at(1))] * 3,
        10.0,
        ["flatline"],
    )
    assert noisy.missed(t) == {"clean (all rules)": ["false alerts 0.30/device-day > 0.1"]}
    good = score(faults, [Raised("flatline", "A", "a21026", at(1))], [], 10.0, ["flatline"])
    assert good.missed(t) == {}
    lines = text_report(noisy, t, "header")
    assert lines[0] == "header" and any(line.startswith("flatline") for line in lines)
    assert any(
        line.startswith("summary: 1 of 1 fault kinds meet every target; clean data")
        for line in lines
    )
    doc = json.loads(json.dumps(json_report(late, t, {"seeds": 1})))
    assert doc["kinds"][0]["recall"] == 1.0 and doc["missed"] == {
        "flatline": ["median delay 9.0 min > 5"]
    }


def test_variants_of_a_rule_count_for_its_kind_and_delay_targets_are_per_kind() -> None:
    from offsite.evaluation.scoring import KIND_RULES, rule_detects

    assert rule_detects("drift", "drift_long", KIND_RULES)
    assert rule_detects("spike", "spike.xchan", KIND_RULES)
    assert not rule_detects("drift", "driftwood", KIND_RULES)
    assert rule_detects("drift", "slow_drift", KIND_RULES)  # the slow drift faults are its
    assert not rule_detects("spike", "drift", KIND_RULES)
    t = Targets()
    assert t.delay_for("drift") == 360.0 and t.delay_for("copy_paste") == 10.0
    assert t.delay_for("flatline") == 5.0
    slow = Truth("drift", "A", "a34013", at(0), at(48 * 60))
    s = score([slow], [Raised("drift_long", "A", "a34013", at(300))], [], 1.0, ["drift"])
    assert s.kinds[0].recall == 1.0 and s.kinds[0].missed(t) == []  # 5 h ≤ 6 h


def test_splits_side_by_side_judge_the_held_out_one() -> None:
    from offsite.evaluation.report import splits_json_report, splits_text_report

    tune = score([FLAT_A], [Raised("flatline", "A", "a21026", at(1))], [], 2.0, ["flatline"])
    held = score(
        [FLAT_B],
        [],
        [Raised("spike", "Z", "a21026", at(1)), Raised("spike", "Z", "a21026", at(9))],
        4.0,
        ["flatline"],
    )
    t = Targets()
    lines = splits_text_report({"tune": tune, "held-out": held}, t, ["head"], "held-out")
    text = "\n".join(lines)
    row = next(line for line in lines if line.startswith("flatline"))
    assert "1/1" in row and "0/1" in row and row.endswith("MISS")
    assert "0.500 (2 in 4 dd)" in text and "spike" in text  # clean false alerts, by rule
    assert "summary (held-out): 0 of 1 fault kinds meet every target" in text
    doc = json.loads(
        json.dumps(splits_json_report({"tune": tune, "held-out": held}, t, {}, "held-out"))
    )
    assert doc["splits"]["tune"]["kinds"][0]["recall"] == 1.0
    assert doc["splits"]["held-out"]["clean"]["by_rule"] == {"spike": 2}
    assert set(doc["missed"]) == {"flatline", "clean (all rules)"}


def test_clean_false_alerts_by_plant_profile() -> None:
    from offsite.evaluation.report import splits_json_report, splits_text_report

    clean = [
        Raised("spike", "Z", "a21026", at(1)),
        Raised("spike", "Z", "a21026", at(9)),
        Raised("flatline", "W", "w01018", at(3)),
    ]
    s = score(
        [],
        [],
        clean,
        6.0,
        ["spike"],
        group_of={"Z": "coal_boiler", "W": "municipal_wastewater"},
        clean_days_by_group={"coal_boiler": 3.0, "municipal_wastewater": 3.0, "gas_turbine": 0},
    )
    assert s.clean_by_group == {
        "coal_boiler": {"spike": 2},
        "municipal_wastewater": {"flatline": 1},
        "gas_turbine": {},
    }
    doc = splits_json_report({"held-out": s}, Targets(), {}, "held-out")
    coal = doc["splits"]["held-out"]["clean"]["by_profile"]["coal_boiler"]
    assert coal == {
        "device_days": 3.0,
        "alerts": 2,
        "per_device_day": 2 / 3,
        "by_rule": {"spike": 2},
    }
    text = "\n".join(splits_text_report({"held-out": s}, Targets(), [], "held-out"))
    assert "on coal_boiler" in text and "(spike 2)" in text

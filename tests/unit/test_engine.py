"""rules.engine: readings in, findings out, judged by device time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from ingest.models import DataKind, Reading
from rules.engine import RuleEngine, RuleParams
from rules.findings import Finding

T0 = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
MN, MN2 = "MN1", "MN2"
SO2, NOX = "a21026", "a21002"
LIMITS = {(MN, SO2): 35.0, (MN2, SO2): 35.0}
INTERVALS = {MN: 60.0, MN2: 60.0}


def engine(**params) -> RuleEngine:
    return RuleEngine(RuleParams(**params), LIMITS, INTERVALS, started_at=T0)


def r(minute: float, value: float, mn: str = MN, pollutant: str = SO2, flag: str = "N",
      kind: DataKind = DataKind.RTD) -> Reading:
    return Reading(T0 + timedelta(minutes=minute), mn, pollutant, value, flag, kind)


def noisy_series(n: int, start: int = 0, level: float = 20.0, seed: int = 5, **kw) -> list:
    rng = random.Random(seed)
    return [r(start + i, round(level + rng.gauss(0, 0.5), 3), **kw) for i in range(n)]


def rules_of(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


# -- exceedance -----------------------------------------------------------------------

def test_clean_readings_give_no_findings():
    ev = engine().evaluate(noisy_series(40))
    assert ev.findings == []


def test_empty_batch():
    ev = engine().evaluate([])
    assert ev.findings == [] and ev.seen == {}


@pytest.mark.parametrize(("value", "severity"), [(35.1, "major"), (69.9, "major"),
                                                 (70.0, "critical"), (200.0, "critical")])
def test_exceedance_severity(value, severity):
    ev = engine().evaluate([r(0, value)])
    assert len(ev.findings) == 1
    f = ev.findings[0]
    assert (f.rule, f.mn, f.pollutant, f.ts, f.value) == ("exceedance", MN, SO2, T0, value)
    assert f.severity == severity
    assert f.limit == 35.0
    assert f.detail["ratio"] == pytest.approx(value / 35.0, abs=1e-4)
    assert "35" in f.message


def test_at_the_limit_is_not_an_exceedance():
    assert engine().evaluate([r(0, 35.0)]).findings == []


def test_exceedance_only_for_valid_flag_and_limited_series():
    ev = engine().evaluate([r(0, 100.0, flag="D"), r(0, 100.0, pollutant=NOX),
                            r(0, 100.0, mn="MN3")])
    assert ev.findings == []


def test_update_registry_changes_limits():
    e = engine()
    e.update_registry({(MN, SO2): 200.0}, INTERVALS)
    assert e.evaluate([r(0, 100.0)]).findings == []
    e.update_registry({(MN, SO2): 50.0}, INTERVALS)
    assert rules_of(e.evaluate([r(1, 100.0)]).findings) == ["exceedance"]


# -- flatline -------------------------------------------------------------------------

def test_flatline_after_n_identical_readings_across_batches():
    e = engine(flatline_count=5)
    for i in range(4):
        assert e.evaluate([r(i, 12.5)]).findings == [], f"reading {i + 1} of 4"
    ev = e.evaluate([r(4, 12.5)])
    assert rules_of(ev.findings) == ["flatline"]
    f = ev.findings[0]
    assert (f.mn, f.pollutant, f.value, f.severity, f.ts) == (MN, SO2, 12.5, "warning",
                                                              r(4, 0).ts)
    assert f.limit == 35.0


def test_flatline_within_one_batch_is_judged_in_rounds():
    e = engine(flatline_count=5)
    ev = e.evaluate([r(i, 12.5) for i in range(6)])
    flat = [f for f in ev.findings if f.rule == "flatline"]
    assert [f.ts for f in flat] == [r(4, 0).ts, r(5, 0).ts]


def test_flatline_not_before_n():
    e = engine(flatline_count=5)
    ev = e.evaluate([r(i, 12.5) for i in range(4)] + [r(4, 12.6)])
    assert ev.findings == []


# -- spike ----------------------------------------------------------------------------

def test_spike_on_a_jump():
    e = engine()
    assert e.evaluate(noisy_series(20)).findings == []
    ev = e.evaluate([r(20, 30.0)])  # below the limit, far from the median
    assert rules_of(ev.findings) == ["spike"]
    assert ev.findings[0].severity == "warning"
    assert ev.findings[0].detail["score"] > 8


def test_spike_and_exceedance_together():
    e = engine()
    e.evaluate(noisy_series(20))
    ev = e.evaluate([r(20, 300.0)])
    assert sorted(rules_of(ev.findings)) == ["exceedance", "spike"]


def test_readings_in_one_batch_are_sorted_and_judged_in_order():
    series = [*noisy_series(20), r(20, 30.0)]
    shuffled = series[:]
    random.Random(1).shuffle(shuffled)
    a = engine().evaluate(series)
    b = engine().evaluate(shuffled)
    assert [f.ts for f in a.findings] == [f.ts for f in b.findings] == [r(20, 0).ts]
    assert rules_of(b.findings) == ["spike"]


def test_several_series_in_one_batch_with_different_depths():
    e = engine(flatline_count=3)
    batch = [r(i, 7.0) for i in range(3)] + [r(0, 7.0, mn=MN2)]
    ev = e.evaluate(batch)
    assert [(f.rule, f.mn) for f in ev.findings] == [("flatline", MN)]


def test_kinds_are_separate_series():
    e = engine(flatline_count=3)
    batch = [r(0, 7.0), r(1, 7.0, kind=DataKind.HOUR), r(2, 7.0)]
    assert e.evaluate(batch).findings == []


# -- out-of-order ---------------------------------------------------------------------

def test_older_reading_is_judged_for_exceedance_only():
    e = engine()
    e.evaluate(noisy_series(20))
    late = r(5, 300.0)  # older than the newest (minute 19), a spike and an exceedance
    ev = e.evaluate([late])
    assert rules_of(ev.findings) == ["exceedance"]
    assert ev.findings[0].ts == late.ts


def test_older_reading_does_not_enter_the_window():
    e = engine(flatline_count=3)
    e.evaluate([r(10, 1.0), r(11, 2.0)])
    e.evaluate([r(0, 2.0)])  # late: must not count towards a flatline
    ev = e.evaluate([r(12, 2.0)])
    assert ev.findings == []
    ev = e.evaluate([r(13, 2.0)])
    assert rules_of(ev.findings) == ["flatline"]


def test_same_timestamp_again_is_not_in_order():
    e = engine(flatline_count=3)
    e.evaluate([r(0, 2.0), r(1, 2.0)])
    assert e.evaluate([r(1, 2.0)]).findings == []


# -- seen ---------------------------------------------------------------------------

def test_seen_has_newest_device_time_per_pollutant():
    e = engine()
    ev = e.evaluate([r(3, 1.0), r(1, 1.0), r(2, 1.0, pollutant=NOX), r(7, 1.0, mn=MN2),
                     r(9, 1.0, flag="D")])
    assert ev.seen == {(MN, SO2): r(9, 0).ts, (MN, NOX): r(2, 0).ts, (MN2, SO2): r(7, 0).ts}


def test_seen_per_device_is_the_receive_time():
    e = engine()
    got = {MN: T0 + timedelta(hours=2), MN2: T0 + timedelta(hours=3)}
    ev = e.evaluate([r(3, 1.0), r(1, 1.0, mn=MN2)], received=got)
    assert ev.seen[(MN, "")] == got[MN] and ev.seen[(MN2, "")] == got[MN2]
    assert ev.seen[(MN, SO2)] == r(3, 0).ts
    assert e.last_received == got


def test_seen_per_pollutant_is_this_rounds_newest():
    e = engine()
    e.evaluate([r(10, 1.0)])
    assert e.evaluate([r(2, 1.0)]).seen == {(MN, SO2): r(2, 0).ts}


def test_received_without_readings_still_counts():
    e = engine()
    now = T0 + timedelta(minutes=30)
    ev = e.evaluate([], received={MN: now})
    assert ev.findings == [] and ev.seen == {(MN, ""): now}
    assert e.last_received == {MN: now}


def test_note_received_only_moves_forward():
    e = engine()
    e.note_received({MN: T0 + timedelta(minutes=10)})
    e.note_received({MN: T0 + timedelta(minutes=5), MN2: T0 + timedelta(minutes=3)})
    assert e.last_received == {MN: T0 + timedelta(minutes=10), MN2: T0 + timedelta(minutes=3)}


# -- offline --------------------------------------------------------------------------

def test_never_heard_is_measured_from_started_at():
    e = engine(offline_intervals=5.0)
    assert e.check_offline(T0 + timedelta(minutes=5)).findings == []
    ev = e.check_offline(T0 + timedelta(minutes=5, seconds=1))
    assert sorted(f.mn for f in ev.findings) == [MN, MN2]
    for f in ev.findings:
        assert (f.rule, f.pollutant, f.severity) == ("offline", "", "major")
        assert f.ts == T0 + timedelta(minutes=5, seconds=1)
        assert f.value == pytest.approx(5.02, abs=0.01)
        assert f.detail["last_seen"] == T0.isoformat()


def test_recently_heard_device_is_not_offline():
    e = engine(offline_intervals=5.0)
    e.evaluate([r(60, 1.0)], received={MN: T0 + timedelta(minutes=60)})
    ev = e.check_offline(T0 + timedelta(minutes=63))
    assert [f.mn for f in ev.findings] == [MN2]
    assert ev.findings[0].value == pytest.approx(63.0)


def test_offline_is_measured_from_receive_time_not_device_time():
    # A logger backfilling old data is talking, so it is not offline.
    e = engine(offline_intervals=5.0)
    now = T0 + timedelta(hours=5)
    e.evaluate([r(0, 1.0), r(1, 1.0)], received={MN: now - timedelta(minutes=1)})
    assert [f.mn for f in e.check_offline(now, devices=[MN]).findings] == []


def test_offline_measured_from_last_receive():
    e = engine(offline_intervals=5.0)
    heard = T0 + timedelta(minutes=60)
    e.note_received({MN: heard})
    ev = e.check_offline(T0 + timedelta(minutes=66), devices=[MN])
    assert [f.mn for f in ev.findings] == [MN]
    f = ev.findings[0]
    assert f.value == pytest.approx(6.0)
    assert f.detail["last_seen"] == heard.isoformat()
    assert "no data since" in f.message


def test_offline_uses_each_device_interval_and_a_default():
    e = RuleEngine(RuleParams(offline_intervals=5.0), {}, {MN: 10.0}, started_at=T0)
    ev = e.check_offline(T0 + timedelta(seconds=51), devices=[MN, "MN9"])
    assert [f.mn for f in ev.findings] == [MN]  # MN9 has the 60 s default: 300 s allowed


def test_offline_with_no_devices():
    e = RuleEngine(RuleParams(), {}, {}, started_at=T0)
    assert e.check_offline(T0 + timedelta(days=1)).findings == []
    assert e.check_offline(T0 + timedelta(days=1), devices=[]).findings == []


def test_warm_refills_windows_without_judging():
    e = engine()
    history = [r(i, 17.4) for i in range(9)] + [r(i, 999.0, pollutant="a21002")
                                                 for i in range(3)]
    assert e.warm(history) == 12
    # nothing was judged while warming (999 is far above any limit, 9 × 17.4 is stuck)…
    # …but the next identical value completes a flatline of 10 at once
    assert rules_of(e.evaluate([r(9, 17.4)]).findings) == ["flatline"]


def test_warm_keeps_only_the_newest_window_and_ignores_stats():
    e = engine(window=10, flatline_count=10)
    old = [r(i, float(i), pollutant=NOX) for i in range(50)]  # a steady ramp
    stats = [Reading(T0, MN, SO2, 5.0, "N", DataKind.HOUR, "max")]
    assert e.warm(old + stats) == 10
    # judged against the newest ten (40…49), 50 is the ramp going on, not a spike;
    # against the oldest ten (0…9) it would be one
    assert e.evaluate([r(50, 50.0, pollutant=NOX)]).findings == []


def test_an_hourly_exceedance_is_its_own_alert_and_not_cleared_by_realtime_values():
    from datetime import timedelta as td

    from rules.alerts import AlertBook

    e = engine()
    book = AlertBook({}, default_clear_after=td(minutes=5))
    hour = r(0, 150.0, kind=DataKind.HOUR)  # the 00:00 average, arriving about 01:00
    live = r(61, 10.0)  # a real-time value at 01:01 in the same batch
    ev = e.evaluate([hour, live])
    assert rules_of(ev.findings) == ["exceedance.hour"]
    plan = book.plan(ev.findings, ev.seen)
    assert [u.key for u in plan.upserts] == [("exceedance.hour", MN, SO2)]
    assert plan.clears == []  # the next hour's average has not come yet


def test_flagged_values_are_not_judged_by_spike_and_stay_out_of_the_window():
    e = engine()
    e.evaluate(noisy_series(20))
    calibration = r(20, 400.0, pollutant=NOX, flag="C")
    assert e.evaluate([r(20, 400.0, flag="C")]).findings == []  # no spike, no exceedance
    assert e.evaluate([calibration]).findings == []
    # the calibration value did not enter the window: the next normal value is normal
    assert e.evaluate([r(21, 20.1)]).findings == []

"""offsite.rules.engine: readings in, findings out, judged by device time under a rules file."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from offsite.core.readings import DataKind, Reading
from offsite.rules.alerts import AlertBook
from offsite.rules.detectors import Spike, params_of
from offsite.rules.engine import DeviceMeta, RuleEngine
from offsite.rules.findings import Finding
from offsite.rules.rules_file import load_rules, parse_rules

T0 = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
MN, MN2, MN3 = "MN1", "MN2", "MN3"
SO2, NOX, O2, FLOW = "a21026", "a21002", "a19001", "a00000"
DEVICES = {
    MN: DeviceMeta("flue_gas", "E1", "P1", 60.0, 6.0, {SO2: 35.0}),
    MN2: DeviceMeta("flue_gas", "E1", "P2", 60.0, 6.0, {SO2: 35.0}),
    MN3: DeviceMeta("flue_gas", "E2", "P3", 60.0, 6.0, {SO2: 35.0}),
}

EXCEEDANCE = """
[[rule]]
name = "exceedance"
severity = "major"
critical_score = 2.0
pollutants = "@limited"
kinds = ["rtd", "min", "hour", "day"]
"""
SPIKE = """
[[rule]]
name = "spike"
pollutants = "*"
"""
IMPLAUSIBLE = """
[[rule]]
name = "implausible"
severity = "major"
pollutants = "*"
mute_on_maintenance = false
"""


def flatline(count: int) -> str:
    return f"""
[[rule]]
name = "flatline"
pollutants = "*"
params = {{ count = {count} }}
"""


def engine(
    *parts: str, devices: dict[str, DeviceMeta] | None = None, offline: str = ""
) -> RuleEngine:
    text = 'version = "t1"\n' + (offline or "[offline]\nintervals = 5\n") + "".join(parts)
    return RuleEngine(
        parse_rules(text, "test.toml"), DEVICES if devices is None else devices, started_at=T0
    )


def r(
    minute: float,
    value: float,
    mn: str = MN,
    pollutant: str = SO2,
    flag: str = "N",
    kind: DataKind = DataKind.RTD,
) -> Reading:
    return Reading(T0 + timedelta(minutes=minute), mn, pollutant, value, flag, kind)


def noisy_series(
    n: int, start: int = 0, level: float = 20.0, seed: int = 5, sd: float = 0.5, **kw
) -> list[Reading]:
    rng = random.Random(seed)
    return [r(start + i, round(level + rng.gauss(0, sd), 3), **kw) for i in range(n)]


def rules_of(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


# -- the default rules on clean data ----------------------------------------------------


def test_clean_plant_under_the_default_rules_gives_no_findings():
    e = RuleEngine(load_rules(None), DEVICES, started_at=T0)
    readings = []
    for k, mn in enumerate((MN, MN2, MN3)):
        readings += noisy_series(300, level=20.0, seed=k, mn=mn)
        readings += noisy_series(300, level=80.0, sd=2.0, seed=10 + k, mn=mn, pollutant=NOX)
        readings += noisy_series(300, level=8.0, sd=0.1, seed=20 + k, mn=mn, pollutant=O2)
        readings += noisy_series(300, level=1000.0, sd=10.0, seed=30 + k, mn=mn, pollutant=FLOW)
    for start in range(0, 300, 60):  # an hour at a time, as ingest would deliver a backlog
        batch = [x for x in readings if start <= (x.ts - T0).total_seconds() / 60 < start + 60]
        assert e.evaluate(batch).findings == []


def test_empty_batch():
    ev = engine(EXCEEDANCE).evaluate([])
    assert ev.findings == [] and ev.seen == {}


# -- exceedance -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "severity"),
    [(35.1, "major"), (69.9, "major"), (70.0, "critical"), (200.0, "critical")],
)
def test_exceedance_severity(value, severity):
    ev = engine(EXCEEDANCE).evaluate([r(0, value)])
    (f,) = ev.findings
    assert (f.rule, f.mn, f.pollutant, f.ts, f.value) == ("exceedance", MN, SO2, T0, value)
    assert f.severity == severity
    assert f.limit == 35.0
    assert f.detail["score"] == pytest.approx(value / 35.0, abs=1e-4)
    assert "35" in f.message
    assert f.suppressed is None


def test_at_the_limit_is_not_an_exceedance():
    assert engine(EXCEEDANCE).evaluate([r(0, 35.0)]).findings == []


def test_exceedance_only_for_valid_flag_and_limited_series():
    ev = engine(EXCEEDANCE).evaluate(
        [r(0, 100.0, flag="D"), r(0, 100.0, pollutant=NOX), r(0, 100.0, mn="MN9")]
    )
    assert ev.findings == []


def test_update_registry_changes_limits():
    e = engine(EXCEEDANCE)
    e.update_registry({MN: DeviceMeta("flue_gas", "E1", "P1", limits={SO2: 200.0})})
    assert e.evaluate([r(0, 100.0)]).findings == []
    e.update_registry({MN: DeviceMeta("flue_gas", "E1", "P1", limits={SO2: 50.0})})
    assert rules_of(e.evaluate([r(1, 100.0)]).findings) == ["exceedance"]


def test_a_registry_refresh_rebinds_only_the_devices_that_changed(monkeypatch):
    # the rule runner hands over the whole registry every 30 s: 80,000 series re-bound
    # each time stalled judging for seconds at 10,000 devices
    e = engine(EXCEEDANCE)
    e.evaluate([r(0, 10.0), r(0, 10.0, mn="MN2")])
    devices = dict(e.devices)
    described: list[int] = []
    real = e._describe_row
    monkeypatch.setattr(e, "_describe_row", lambda row: described.append(row) or real(row))
    e.update_registry(devices)
    assert described == []
    devices["MN2"] = DeviceMeta("flue_gas", "E1", "P1", limits={SO2: 5.0})
    e.update_registry(devices)
    assert [e._key(row)[0] for row in described] == ["MN2"]
    assert rules_of(e.evaluate([r(1, 10.0), r(1, 10.0, mn="MN2")]).findings) == ["exceedance"]


def test_update_rules_rebinds_series():
    e = engine(EXCEEDANCE)
    e.evaluate([r(0, 10.0)])
    e.update_rules(parse_rules('version = "t2"\n' + SPIKE, "t2.toml"))
    ev = e.evaluate([r(1, 100.0)])
    assert ev.findings == []  # no exceedance rule any more, and too little history to spike


def test_update_rules_widens_the_windows_for_a_longer_history():
    e = engine(flatline(3))
    assert e.windows.width == 3
    e.evaluate([r(i, 20.0 + i % 2) for i in range(10)])
    text = '\n[[rule]]\nname = "flag_abuse"\npollutants = "*"\nparams = { history = 40 }\n'
    e.update_rules(parse_rules('version = "t2"\n' + text, "t2.toml"))
    assert e.windows.width == 41
    # the 3 readings held + 37 new ones fill the 40, a quarter of them flagged D
    fired = [
        i
        for i in range(37)
        if e.evaluate([r(10 + i, 20.0, flag="D" if i % 4 == 0 else "N")]).findings
    ]
    assert fired == [36]


# -- flatline and rounds ----------------------------------------------------------------


def test_flatline_after_n_identical_readings_across_batches():
    e = engine(flatline(5))
    for i in range(4):
        assert e.evaluate([r(i, 12.5)]).findings == [], f"reading {i + 1} of 4"
    (f,) = e.evaluate([r(4, 12.5)]).findings
    assert (f.rule, f.mn, f.pollutant, f.value, f.severity, f.ts) == (
        "flatline",
        MN,
        SO2,
        12.5,
        "warning",
        r(4, 0).ts,
    )
    assert f.limit == 35.0


def test_flatline_within_one_batch_is_judged_in_rounds():
    ev = engine(flatline(5)).evaluate([r(i, 12.5) for i in range(6)])
    assert [(f.rule, f.ts) for f in ev.findings] == [
        ("flatline", r(4, 0).ts),
        ("flatline", r(5, 0).ts),
    ]


def test_flatline_not_before_n():
    ev = engine(flatline(5)).evaluate([r(i, 12.5) for i in range(4)] + [r(4, 12.6)])
    assert ev.findings == []


def test_several_series_in_one_batch_with_different_depths():
    batch = [r(i, 7.0) for i in range(3)] + [r(0, 7.0, mn=MN2)]
    ev = engine(flatline(3)).evaluate(batch)
    assert [(f.rule, f.mn) for f in ev.findings] == [("flatline", MN)]


def test_kinds_are_separate_series():
    batch = [r(0, 7.0), r(1, 7.0, kind=DataKind.HOUR), r(2, 7.0)]
    assert engine(flatline(3)).evaluate(batch).findings == []


# -- spike ------------------------------------------------------------------------------


def test_spike_on_a_jump():
    e = engine(EXCEEDANCE, SPIKE)
    assert e.evaluate(noisy_series(20)).findings == []
    (f,) = e.evaluate([r(20, 30.0)]).findings  # below the limit, far from the median
    assert (f.rule, f.severity) == ("spike", "warning")
    assert f.detail["score"] > 8


def test_spike_and_exceedance_together():
    e = engine(EXCEEDANCE, SPIKE)
    e.evaluate(noisy_series(20))
    assert sorted(rules_of(e.evaluate([r(20, 300.0)]).findings)) == ["exceedance", "spike"]


def test_readings_in_one_batch_are_sorted_and_judged_in_order():
    series = [*noisy_series(20), r(20, 30.0)]
    shuffled = series[:]
    random.Random(1).shuffle(shuffled)
    a = engine(SPIKE).evaluate(series)
    b = engine(SPIKE).evaluate(shuffled)
    assert [f.ts for f in a.findings] == [f.ts for f in b.findings] == [r(20, 0).ts]
    assert rules_of(b.findings) == ["spike"]


def test_flagged_values_are_not_judged_by_spike_and_stay_out_of_its_statistics():
    e = engine(EXCEEDANCE, SPIKE)
    e.evaluate(noisy_series(20))
    assert e.evaluate([r(20, 400.0, flag="D")]).findings == []  # no spike, no exceedance
    assert e.evaluate([r(21, 20.1)]).findings == []  # the D value did not move the median
    # …while the same value flagged N is both
    assert sorted(rules_of(e.evaluate([r(22, 400.0)]).findings)) == ["exceedance", "spike"]


# -- out of order -----------------------------------------------------------------------


def test_older_reading_is_judged_only_by_order_free_detectors():
    e = engine(EXCEEDANCE, SPIKE, IMPLAUSIBLE, flatline(3))
    e.evaluate(noisy_series(20))
    late = r(5, 300.0)  # older than the newest (minute 19): a spike and an exceedance
    (f,) = e.evaluate([late]).findings
    assert (f.rule, f.ts) == ("exceedance", late.ts)
    assert rules_of(e.evaluate([r(6, -20.0)]).findings) == ["implausible"]


def test_older_reading_does_not_enter_the_window():
    e = engine(flatline(3))
    e.evaluate([r(10, 1.0), r(11, 2.0)])
    e.evaluate([r(0, 2.0)])  # late: must not count towards a flatline
    assert e.evaluate([r(12, 2.0)]).findings == []
    assert rules_of(e.evaluate([r(13, 2.0)]).findings) == ["flatline"]


def test_same_timestamp_again_is_not_in_order():
    e = engine(flatline(3))
    e.evaluate([r(0, 2.0), r(1, 2.0)])
    assert e.evaluate([r(1, 2.0)]).findings == []


# -- seen -------------------------------------------------------------------------------


def test_seen_has_newest_device_time_per_series():
    ev = engine(EXCEEDANCE).evaluate(
        [
            r(3, 1.0),
            r(1, 1.0),
            r(2, 1.0, pollutant=NOX),
            r(7, 1.0, mn=MN2),
            r(9, 1.0, flag="D"),
            r(60, 1.0, kind=DataKind.HOUR),
        ]
    )
    assert ev.seen == {
        (MN, SO2): r(9, 0).ts,
        (MN, NOX): r(2, 0).ts,
        (MN2, SO2): r(7, 0).ts,
        (MN, f"{SO2}@hour"): r(60, 0).ts,
    }


def test_seen_per_device_is_the_receive_time():
    e = engine(EXCEEDANCE)
    got = {MN: T0 + timedelta(hours=2), MN2: T0 + timedelta(hours=3)}
    ev = e.evaluate([r(3, 1.0), r(1, 1.0, mn=MN2)], received=got)
    assert ev.seen[(MN, "")] == got[MN] and ev.seen[(MN2, "")] == got[MN2]
    assert ev.seen[(MN, SO2)] == r(3, 0).ts
    assert e.last_received == got


def test_seen_per_series_is_this_rounds_newest():
    e = engine(EXCEEDANCE)
    e.evaluate([r(10, 1.0)])
    assert e.evaluate([r(2, 1.0)]).seen == {(MN, SO2): r(2, 0).ts}


def test_received_without_readings_still_counts():
    e = engine(EXCEEDANCE)
    now = T0 + timedelta(minutes=30)
    ev = e.evaluate([], received={MN: now})
    assert ev.findings == [] and ev.seen == {(MN, ""): now}
    assert e.last_received == {MN: now}


def test_note_received_only_moves_forward():
    e = engine(EXCEEDANCE)
    e.note_received({MN: T0 + timedelta(minutes=10)})
    e.note_received({MN: T0 + timedelta(minutes=5), MN2: T0 + timedelta(minutes=3)})
    assert e.last_received == {MN: T0 + timedelta(minutes=10), MN2: T0 + timedelta(minutes=3)}


# -- offline ----------------------------------------------------------------------------


def test_never_heard_is_measured_from_started_at():
    e = engine(EXCEEDANCE)
    assert e.check_offline(T0 + timedelta(minutes=5)).findings == []
    ev = e.check_offline(T0 + timedelta(minutes=5, seconds=1))
    assert sorted(f.mn for f in ev.findings) == [MN, MN2, MN3]
    for f in ev.findings:
        assert (f.rule, f.pollutant, f.severity) == ("offline", "", "major")
        assert f.ts == T0 + timedelta(minutes=5, seconds=1)
        assert f.value == pytest.approx(5.02, abs=0.01)
        assert f.detail["last_seen"] == T0.isoformat()
        assert f.detail["rule"]["version"] == "t1"


def test_recently_heard_device_is_not_offline():
    e = engine(EXCEEDANCE)
    e.evaluate([r(60, 1.0)], received={MN: T0 + timedelta(minutes=60)})
    ev = e.check_offline(T0 + timedelta(minutes=63), devices=[MN, MN2])
    assert [f.mn for f in ev.findings] == [MN2]
    assert ev.findings[0].value == pytest.approx(63.0)


def test_offline_is_measured_from_receive_time_not_device_time():
    # a logger backfilling old data is talking, so it is not offline
    e = engine(EXCEEDANCE)
    now = T0 + timedelta(hours=5)
    e.evaluate([r(0, 1.0), r(1, 1.0)], received={MN: now - timedelta(minutes=1)})
    assert e.check_offline(now, devices=[MN]).findings == []


def test_offline_measured_from_last_receive():
    e = engine(EXCEEDANCE)
    heard = T0 + timedelta(minutes=60)
    e.note_received({MN: heard})
    (f,) = e.check_offline(T0 + timedelta(minutes=66), devices=[MN]).findings
    assert f.value == pytest.approx(6.0)
    assert f.detail["last_seen"] == heard.isoformat()
    assert "no data since" in f.message


def test_offline_uses_each_device_interval_and_a_default():
    e = engine(EXCEEDANCE, devices={MN: DeviceMeta(interval_s=10.0)})
    ev = e.check_offline(T0 + timedelta(seconds=51), devices=[MN, "MN9"])
    assert [f.mn for f in ev.findings] == [MN]  # MN9 has the 60 s default: 300 s allowed


def test_offline_settings_come_from_the_rules_file():
    e = engine(EXCEEDANCE, offline='[offline]\nintervals = 2\nseverity = "critical"\n')
    (f,) = e.check_offline(T0 + timedelta(minutes=2, seconds=1), devices=[MN]).findings
    assert f.severity == "critical"
    off = engine(EXCEEDANCE, offline="[offline]\nenabled = false\n")
    assert off.check_offline(T0 + timedelta(days=1)).findings == []


def test_offline_with_no_devices():
    e = engine(EXCEEDANCE, devices={})
    assert e.check_offline(T0 + timedelta(days=1)).findings == []
    assert e.check_offline(T0 + timedelta(days=1), devices=[]).findings == []


# -- warm -------------------------------------------------------------------------------


def test_warm_refills_windows_and_gates_without_findings():
    e = engine(EXCEEDANCE, flatline(10))
    history = [r(i, 17.4) for i in range(9)] + [r(i, 999.0, pollutant=NOX) for i in range(3)]
    history += [r(i, 99.0, mn=MN2) for i in range(3)]
    assert e.warm(history) == 15
    # nothing was judged while warming (99 is far above the limit, 9 × 17.4 is stuck)…
    # …but the next identical value completes a flatline of 10 at once
    assert rules_of(e.evaluate([r(9, 17.4)]).findings) == ["flatline"]


def test_warm_keeps_only_the_newest_window_and_ignores_stats():
    e = engine(SPIKE.replace('pollutants = "*"', 'pollutants = "*"\nparams = { history = 10 }'))
    assert e.windows.width == 11
    old = [r(i, float(i), pollutant=NOX) for i in range(50)]  # a steady ramp
    stats = [Reading(T0, MN, SO2, 5.0, "N", DataKind.HOUR, "max")]
    assert e.warm(old + stats) == 50
    # judged against the newest ten (40…49), 50 is the ramp going on, not a spike;
    # against the oldest ten (0…9) it would be one
    assert e.evaluate([r(50, 50.0, pollutant=NOX)]).findings == []


def test_warm_then_evaluate_equals_one_uninterrupted_stream():
    stream = noisy_series(60) + [r(60 + i, 28.0 + (i % 3)) for i in range(10)]
    rules = (EXCEEDANCE, SPIKE, flatline(4), '\n[[rule]]\nname = "stat"\npollutants = "*"\n')
    live = engine(*rules)
    live.evaluate(stream[:60])
    restarted = engine(*rules)
    restarted.warm(stream[:60])
    a, b = live.evaluate(stream[60:]), restarted.evaluate(stream[60:])
    assert a.findings and a.findings == b.findings


# -- kinds of data ----------------------------------------------------------------------


def test_an_hourly_exceedance_is_its_own_alert_and_not_cleared_by_realtime_values():
    e = engine(EXCEEDANCE)
    book = AlertBook(e.clear_after(), default_clear_after=timedelta(minutes=5))
    hour = r(0, 150.0, kind=DataKind.HOUR)  # the 00:00 average, arriving about 01:00
    live = r(61, 10.0)  # a real-time value at 01:01 in the same batch
    ev = e.evaluate([hour, live])
    assert rules_of(ev.findings) == ["exceedance.hour"]
    plan = book.plan(ev.findings, ev.seen)
    assert [u.key for u in plan.upserts] == [("exceedance.hour", MN, SO2)]
    assert plan.clears == []  # the next hour's average has not come yet


def test_clear_after_and_cooldowns_cover_every_kind():
    e = engine(
        EXCEEDANCE.replace(
            'severity = "major"', 'severity = "major"\nclear_after = "2h"\ncooldown = "10m"'
        ),
        offline='[offline]\nclear_after = "1m"\n',
    )
    assert e.clear_after() == {
        "offline": timedelta(minutes=1),
        **{
            n: timedelta(hours=2)
            for n in ("exceedance", "exceedance.min", "exceedance.hour", "exceedance.day")
        },
    }
    assert set(e.cooldowns().values()) == {timedelta(minutes=10)}


# -- gating -----------------------------------------------------------------------------


def test_count_needs_n_hits_in_a_row():
    e = engine(EXCEEDANCE.replace('severity = "major"', 'severity = "major"\ncount = 3'))
    values = [50, 50, 10, 50, 50, 50, 50, 10, 50]
    fired = [bool(e.evaluate([r(i, v)]).findings) for i, v in enumerate(values)]
    assert fired == [False, False, False, False, False, True, True, False, False]


def test_for_needs_the_hits_to_span_that_long():
    e = engine(EXCEEDANCE.replace('severity = "major"', 'severity = "major"\nfor = "5m"'))
    fired = [bool(e.evaluate([r(i, 50.0)]).findings) for i in range(8)]
    assert fired == [False] * 5 + [True] * 3
    assert e.evaluate([r(8, 10.0)]).findings == []
    assert e.evaluate([r(9, 50.0)]).findings == []  # a new span starts


def test_clear_score_keeps_firing_until_below_it():
    e = engine(EXCEEDANCE.replace('severity = "major"', 'severity = "major"\nclear_score = 0.95'))
    assert e.evaluate([r(0, 34.0)]).findings == []  # 0.97: not on before it fired
    values = [40.0, 34.0, 33.5, 33.0, 34.0, 36.0]  # 1.14, 0.97, 0.957, 0.94, 0.97, 1.03
    fired = [bool(e.evaluate([r(1 + i, v)]).findings) for i, v in enumerate(values)]
    assert fired == [True, True, True, False, False, True]


def test_gating_in_one_batch_matches_gating_across_batches():
    text = EXCEEDANCE.replace('severity = "major"', 'severity = "major"\ncount = 2')
    values = [50, 10, 50, 50, 50, 10, 50, 50]
    one = engine(text).evaluate([r(i, v) for i, v in enumerate(values)]).findings
    e = engine(text)
    many = [f for i, v in enumerate(values) for f in e.evaluate([r(i, v)]).findings]
    assert one == many and [f.ts for f in one] == [r(i, 0).ts for i in (3, 4, 7)]


# -- overrides --------------------------------------------------------------------------

CASCADE = """
[[override]]
rule = "exceedance"
device = "MN1"
severity = "critical"

[[override]]
rule = "exceedance"
point = "P1"
severity = "major"

[[override]]
rule = "exceedance"
enterprise = "E1"
severity = "warning"

[[override]]
rule = "exceedance"
device_type = "flue_gas"
severity = "info"
"""


def test_overrides_cascade_most_specific_wins_whatever_the_file_order():
    devices = {
        **DEVICES,
        "MN4": DeviceMeta("flue_gas", "E1", "P1", limits={SO2: 35.0}),
        "MN5": DeviceMeta("wastewater", "E3", "P5", limits={SO2: 35.0}),
    }
    e = engine(EXCEEDANCE.replace("critical_score = 2.0\n", ""), CASCADE, devices=devices)
    ev = e.evaluate([r(0, 50.0, mn=mn) for mn in (MN, "MN4", MN2, MN3, "MN5")])
    assert {f.mn: f.severity for f in ev.findings} == {
        MN: "critical",  # device
        "MN4": "major",  # point P1
        MN2: "warning",  # enterprise E1
        MN3: "info",  # device type
        "MN5": "major",  # the rule itself
    }


def test_override_params_reach_the_detector_and_its_evidence():
    text = (
        flatline(10) + '\n[[override]]\nrule = "flatline"\npoint = "P1"\nparams = { count = 3 }\n'
    )
    e = engine(text)
    ev = e.evaluate([r(i, 7.0) for i in range(3)] + [r(i, 7.0, mn=MN2) for i in range(3)])
    (f,) = ev.findings
    assert f.mn == MN
    assert f.detail["rule"]["params"]["count"] == 3


def test_override_for_some_pollutants_only():
    text = (
        EXCEEDANCE + '\n[[override]]\nrule = "exceedance"\ndevice = "MN1"\n'
        f'pollutants = "{NOX}"\nseverity = "info"\n'
    )
    devices = {MN: DeviceMeta("flue_gas", "E1", "P1", limits={SO2: 35.0, NOX: 100.0})}
    ev = engine(text, devices=devices).evaluate([r(0, 50.0), r(0, 150.0, pollutant=NOX)])
    assert {f.pollutant: f.severity for f in ev.findings} == {SO2: "major", NOX: "info"}


def test_disabled_at_device_level_removes_the_rule_for_that_device_only():
    text = EXCEEDANCE + '\n[[override]]\nrule = "exceedance"\ndevice = "MN2"\nenabled = false\n'
    ev = engine(text).evaluate([r(0, 50.0, mn=mn) for mn in (MN, MN2, MN3)])
    assert sorted(f.mn for f in ev.findings) == [MN, MN3]


def test_a_device_can_re_enable_what_its_enterprise_disabled():
    text = (
        EXCEEDANCE + '\n[[override]]\nrule = "exceedance"\nenterprise = "E1"\n'
        'enabled = false\n\n[[override]]\nrule = "exceedance"\n'
        'device = "MN2"\nenabled = true\n'
    )
    ev = engine(text).evaluate([r(0, 50.0, mn=mn) for mn in (MN, MN2, MN3)])
    assert sorted(f.mn for f in ev.findings) == [MN2, MN3]


# -- silences and maintenance -----------------------------------------------------------

SILENCE = """
[[silence]]
start = 2026-11-26T08:00:00+08:00
end = 2026-11-26T09:00:00+08:00
reason = "stack repair, ticket 42"
point = "P1"
"""


def test_silences_mark_findings_suppressed_not_dropped():
    e = engine(EXCEEDANCE, SILENCE)  # 00:00–01:00 UTC, point P1 only
    ev = e.evaluate([r(10, 50.0), r(10, 50.0, mn=MN2), r(70, 50.0)])
    by = {(f.mn, f.ts): f.suppressed for f in ev.findings}
    assert by == {
        (MN, r(10, 0).ts): "stack repair, ticket 42",
        (MN2, r(10, 0).ts): None,
        (MN, r(70, 0).ts): None,
    }


def test_silence_for_some_rules_only():
    text = EXCEEDANCE + SPIKE + SILENCE.replace('point = "P1"', 'rules = ["spike"]')
    e = engine(text)
    e.evaluate(noisy_series(20))
    ev = e.evaluate([r(20, 300.0)])
    assert {f.rule: f.suppressed for f in ev.findings} == {
        "exceedance": None,
        "spike": "stack repair, ticket 42",
    }


def test_offline_findings_can_be_silenced():
    text = EXCEEDANCE + SILENCE.replace('point = "P1"', 'device = "MN1"')
    ev = engine(text).check_offline(T0 + timedelta(minutes=30), devices=[MN, MN2])
    assert {f.mn: f.suppressed for f in ev.findings} == {MN: "stack repair, ticket 42", MN2: None}


def test_maintenance_flags_on_a_device_mute_its_other_findings():
    e = engine(EXCEEDANCE, IMPLAUSIBLE)
    # the device flags NOx M (maintenance); SO2 exceeds and O2 reads impossible beside it
    ev = e.evaluate(
        [
            r(0, 5.0, pollutant=NOX, flag="M"),
            r(0, 50.0),
            r(0, 30.0, pollutant=O2),
            r(0, 50.0, mn=MN2),
        ]
    )
    got = {(f.rule, f.mn): f.suppressed for f in ev.findings}
    assert got[("exceedance", MN)] is not None and "maintenance" in got[("exceedance", MN)]
    assert got[("implausible", MN)] is None  # mute_on_maintenance = false
    assert got[("exceedance", MN2)] is None  # another device
    # calibration (C) mutes too; the mute lasts the grace period after the last flag
    assert e.evaluate([r(5, 50.0)]).findings[0].suppressed is not None
    assert e.evaluate([r(10, 50.0)]).findings[0].suppressed is not None
    assert e.evaluate([r(11, 50.0)]).findings[0].suppressed is None
    e.evaluate([r(12, 5.0, pollutant=NOX, flag="C")])
    assert e.evaluate([r(13, 50.0)]).findings[0].suppressed is not None


# -- what a finding carries -------------------------------------------------------------


def test_finding_detail_has_the_rule_its_params_version_and_evidence():
    e = engine(EXCEEDANCE, SPIKE)
    history = noisy_series(40)
    e.evaluate(history)
    (f,) = [f for f in e.evaluate([r(40, 30.0, flag="N")]).findings if f.rule == "spike"]
    rule = f.detail["rule"]
    assert rule["name"] == "spike" and rule["detector"] == "spike"
    assert rule["version"] == "t1" and len(rule["digest"]) == 12
    assert (
        rule["params"]
        == params_of(Spike())
        == {
            "history": 30,
            "z": 8.0,
            "min_history": 10,
            "rel_floor": 0.02,
            "abs_floor": 1e-3,
            "jump": 0.5,
            "context": [],
            "returns": False,
            "seen_days": 0,
        }
    )
    assert (rule["count"], rule["for_s"], rule["clear_score"]) == (1, 0.0, None)
    ev = f.detail["evidence"]
    assert ev["v"][-1] == 30.0 and ev["t"][-1] == r(40, 0).ts.timestamp()
    assert ev["v"][:-1] == [x.value for x in history[-(len(ev["v"]) - 1) :]]
    assert len(ev["t"]) == len(ev["v"]) == len(ev["flag"]) == 31  # EVIDENCE_POINTS + 1
    assert set(ev["flag"]) == {"N"}
    assert ev["t"] == sorted(ev["t"])


def test_evidence_leaves_out_empty_window_slots():
    (f,) = engine(EXCEEDANCE).evaluate([r(0, 50.0, flag="N")]).findings
    assert f.detail["evidence"] == {"t": [T0.timestamp()], "v": [50.0], "flag": "N"}


def test_device_scope_findings_have_no_pollutant():
    text = """
[[rule]]
name = "false_stop"
severity = "major"
pollutants = "@flow"
"""
    e = engine(text)
    e.evaluate(noisy_series(40, level=1000.0, sd=10.0, pollutant=FLOW))
    (f,) = e.evaluate([r(40, 990.0, pollutant=FLOW, flag="F")]).findings
    assert (f.rule, f.mn, f.pollutant, f.value) == ("false_stop", MN, "", 990.0)
    assert f.message.endswith(f"[{FLOW}]")


# -- partners ---------------------------------------------------------------------------

DILUTION = """
[[rule]]
name = "dilution"
severity = "major"
device_types = ["flue_gas"]
pollutants = "@concentration"
"""


def test_dilution_pairs_a_concentration_with_the_o2_of_the_same_device():
    e = engine(DILUTION)
    for mn in (MN, MN2):
        e.evaluate(
            noisy_series(40, mn=mn) + noisy_series(40, level=8.0, sd=0.1, mn=mn, pollutant=O2)
        )
    # MN: O2 up 4 points and SO2 down 25 % at the same minute; MN2: SO2 down, O2 steady
    ev = e.evaluate(
        [
            r(40, 15.0),
            r(40, 12.0, pollutant=O2),
            r(40, 15.0, mn=MN2),
            r(40, 8.0, mn=MN2, pollutant=O2),
        ]
    )
    (f,) = ev.findings
    assert (f.rule, f.mn, f.pollutant) == ("dilution", MN, SO2)
    assert f.detail["score"] == pytest.approx(4.0, abs=0.3)


AVERAGE_1H = """
[[rule]]
name = "exceedance_1h"
detector = "average_exceedance"
pollutants = "@limited"
params = { period = "hour", min_minutes = 45 }
"""


@pytest.mark.parametrize("o2_missing", [(), (10,), tuple(range(20)), (59, 60)])
def test_partners_are_paired_by_time_whatever_the_batching(o2_missing):
    # SO2 30 all hour; O2 11 % for half an hour (→ 45 at 6 %), then 3 % (→ 25); some O2
    # readings missing. One batch must pair each SO2 minute with the O2 of that minute,
    # as the live stream does, not with the O2 reading at the same position.
    devices = {MN: DeviceMeta("flue_gas", "E1", "P1", 60.0, 6.0, {SO2: 10.0})}
    readings = [r(i, 30.0) for i in range(61)] + [
        r(i, 11.0 if i < 30 else 3.0, pollutant=O2) for i in range(61) if i not in o2_missing
    ]
    one = engine(AVERAGE_1H, devices=devices).evaluate(readings).findings
    e = engine(AVERAGE_1H, devices=devices)
    live = [
        f
        for m in range(61)
        for f in e.evaluate([x for x in readings if x.ts == r(m, 0).ts]).findings
    ]
    assert verdict(one) == verdict(live)
    if not o2_missing:
        assert [f.value for f in one] == [pytest.approx(35.0)]


def test_average_exceedance_through_the_engine_converts_with_the_devices_o2():
    text = """
[[rule]]
name = "exceedance_1h"
detector = "average_exceedance"
severity = "major"
pollutants = "@limited"
params = { period = "hour", min_minutes = 45 }
"""
    e = engine(text)
    hour = [r(i, 30.0) for i in range(60)] + [r(i, 11.0, pollutant=O2) for i in range(60)]
    assert e.evaluate(hour).findings == []  # 30 is under 35, but at 6 % O2 it is 45
    (f,) = e.evaluate([r(60, 30.0), r(60, 11.0, pollutant=O2)]).findings
    assert f.rule == "exceedance_1h" and f.value == pytest.approx(45.0)
    assert f.ts == r(60, 0).ts


# -- batching does not change the verdict -----------------------------------------------


def faulty_plant(minutes: int = 240) -> list[Reading]:
    """Three stacks under the default rules, with a spike, a stuck SO2 analyser, an
    exceedance, a maintenance spell, a false stop and dilution, minute by minute."""
    rng = random.Random(7)
    out = []
    for k, mn in enumerate((MN, MN2, MN3)):
        for i in range(minutes):
            so2 = 20.0 + rng.gauss(0, 0.5)
            o2 = 8.0 + rng.gauss(0, 0.1)
            flow = 1000.0 + rng.gauss(0, 10.0)
            flag, fflag = "N", "N"
            if k == 0 and i == 100:
                so2 = 48.0  # spike (2.4×: the packaged floor is 10 % of the level, z 12)
            if k == 0 and 150 <= i < 170:
                so2 = 17.5  # stuck
            if k == 1 and 120 <= i < 135:
                so2 = 60.0  # exceedance
            if k == 1 and 180 <= i < 190:
                flag = "M"
            if k == 1 and 192 <= i < 195:
                so2 = 50.0  # an exceedance just after maintenance: muted
            if k == 2 and 130 <= i < 140:
                fflag = "F"  # declared stop, still flowing
            if k == 2 and 200 <= i < 203:
                so2, o2 = 14.0, 12.5  # dilution
            out += [
                r(i, round(so2, 3), mn=mn, flag=flag),
                r(i, round(o2, 3), mn=mn, pollutant=O2),
                r(i, round(flow, 1), mn=mn, pollutant=FLOW, flag=fflag),
                r(i, round(80 + rng.gauss(0, 2), 2), mn=mn, pollutant=NOX, flag=flag),
            ]
    return out


def verdict(findings: list[Finding]) -> list[tuple]:
    return sorted(
        (f.rule, f.mn, f.pollutant, f.ts, f.value, f.severity, f.suppressed) for f in findings
    )


def test_one_batch_per_minute_or_per_hour_gives_the_same_findings():
    readings = faulty_plant()
    by_minute: dict[datetime, list[Reading]] = {}
    for x in readings:
        by_minute.setdefault(x.ts, []).append(x)
    live = RuleEngine(load_rules(None), DEVICES, started_at=T0)
    per_minute = [f for ts in sorted(by_minute) for f in live.evaluate(by_minute[ts]).findings]
    hourly = RuleEngine(load_rules(None), DEVICES, started_at=T0)
    per_hour = [
        f
        for h in range(4)
        for f in hourly.evaluate(
            [x for x in readings if h * 60 <= (x.ts - T0).total_seconds() / 60 < h * 60 + 60]
        ).findings
    ]
    got = verdict(per_minute)
    assert got == verdict(per_hour)
    rules = {(f[0], f[1]) for f in got}
    assert {
        ("spike", MN),
        ("flatline", MN),
        ("exceedance", MN2),
        ("false_stop", MN3),
        ("dilution", MN3),
    } <= rules
    muted = {(f.rule, f.mn, (f.ts - T0).total_seconds() // 60) for f in per_minute if f.suppressed}
    assert ("exceedance", MN2, 192) in muted
    assert all(mn == MN2 and 180 <= minute < 200 for _, mn, minute in muted)


def test_warm_then_evaluate_with_the_default_rules_equals_the_live_stream():
    readings = faulty_plant()
    split = T0 + timedelta(minutes=140)
    live = RuleEngine(load_rules(None), DEVICES, started_at=T0)
    live.evaluate([x for x in readings if x.ts < split])
    restarted = RuleEngine(load_rules(None), DEVICES, started_at=T0)
    restarted.warm([x for x in readings if x.ts < split])
    rest = [x for x in readings if x.ts >= split]
    a = live.evaluate(rest).findings
    assert a and verdict(a) == verdict(restarted.evaluate(rest).findings)

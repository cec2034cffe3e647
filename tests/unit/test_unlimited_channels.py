"""Channels without a limit adapt to the series they see: its interval, its resolution,
how often it repeats itself; and nothing is raised before a series has been learnt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from offsite.core.readings import DataKind, Reading
from offsite.rules.alerts import AlertBook
from offsite.rules.detectors import Batch, Flatline, Spike
from offsite.rules.engine import DeviceMeta, RuleEngine
from offsite.rules.errors import RulesFileError
from offsite.rules.findings import Finding
from offsite.rules.gating import daily_routine
from offsite.rules.rules_file import load_rules, parse_rules

T0 = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
N = ord("N")


def feed(det: Flatline, x: np.ndarray, width: int = 31) -> np.ndarray:
    """hit per reading of one series fed reading by reading."""
    state = det.new_state(1)
    hits = []
    for i in range(x.shape[0]):
        w = np.full((1, width), np.nan)
        past = x[max(0, i - width) : i]
        w[0, width - past.shape[0] :] = past
        b = Batch(
            np.array([0]),
            x[i : i + 1].astype(float),
            np.array([i * 300.0]),
            np.array([N], np.uint8),
            np.array([np.nan]),
            np.array([-np.inf]),
            np.array([np.inf]),
            np.array([np.nan]),
            np.array([300.0]),
            w,
            np.where(np.isnan(w), 0, N).astype(np.uint8),
            np.full((1, width), 0.0),
        )
        hits.append(bool(det(b, state).hit[0]))
    return np.array(hits)


def slow_quantised(n: int, seed: int = 1) -> np.ndarray:
    """A temperature at 1 °C resolution that drifts slowly: it repeats itself for many
    readings at a time, all day long."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    return np.round(120 + 3 * np.sin(2 * np.pi * i / 288) + rng.normal(0, 0.3, n))


def test_flatline_learns_how_long_a_quantised_slow_series_repeats_itself():
    x = slow_quantised(2000)
    runs = np.diff(np.flatnonzero(np.r_[True, np.diff(x) != 0, True]))
    assert runs.max() >= 12  # the old "6 identical values" fired all through it
    det = Flatline(count=6, collapse=0.03)
    hits = feed(det, x)
    assert not hits[det.learn :].any()
    stuck = x.copy()
    stuck[1500:] = stuck[1500]  # now really stuck
    h = feed(det, stuck)
    assert not h[det.learn : 1500].any() and h[1500:].any()


def test_flatline_learns_the_runs_that_end_while_it_is_learning():
    # a square wave (NAB's art_daily_perfect_square_wave): plateaus of 108 and 180
    # readings, the first one inside the detector's learning. Runs that end while it
    # learns are the series' own (its warm_up mutes their hits): were they taken for
    # stuck ones, the longest run known stayed 0 and every later plateau was raised.
    day = np.r_[np.full(108, 20.0), np.full(108, 80.0), np.full(180, 20.0)]
    x = np.tile(np.r_[day, np.full(108, 80.0)], 3)
    det = Flatline(count=6, collapse=0.03)
    assert not feed(det, x)[det.learn :].any()


def test_flatline_a_run_raised_after_the_warm_up_is_not_learnt_as_the_series_own():
    # a stack commissioned with 40 readings flagged D: the rules' warm_up counts them,
    # flatline's learning (valid readings) does not. A stuck run raised between the two
    # ends of learning must not be learnt as the series' own: the same run later is
    # raised again (a review found the second one went unraised)
    rng = np.random.default_rng(3)
    x = np.round(50 + rng.normal(0, 1.0, 700), 2)
    flags = ["D"] * 40 + ["N"] * 660
    x[130:142] = x[500:512] = 47.11
    meta = {"M": DeviceMeta("flue_gas", interval_s=60.0, limits={"a21026": 100.0})}
    e = RuleEngine(load_rules(None), meta, T0)
    raised = []
    for i in range(700):
        r = Reading(T0 + timedelta(minutes=i), "M", "a21026", float(x[i]), flags[i], DataKind.RTD)
        raised += [i for f in e.evaluate([r]).findings if f.rule == "flatline"]
    assert any(130 <= i < 142 for i in raised) and any(500 <= i < 512 for i in raised)


def test_flatline_never_judges_a_series_that_has_never_moved():
    assert not feed(Flatline(count=6), np.full(600, 4.2))[200:].any()


def test_flatline_on_a_fast_analyser_still_needs_only_count_values():
    rng = np.random.default_rng(3)
    x = np.round(50 + rng.normal(0, 1, 400), 3)
    x[300:] = x[300]
    h = feed(Flatline(count=6), x)
    assert not h[:300].any() and h[305]


RULES = """
version = "t"
[[rule]]
name = "spike"
pollutants = "*"
warm_up = {warm_up}
"""


def test_a_series_is_learnt_before_it_may_raise_anything():
    rng = np.random.default_rng(4)
    x = np.round(20 + rng.normal(0, 0.5, 60), 2)
    x[[20, 50]] = 90.0
    found = {}
    for wu in (0, 30):
        e = RuleEngine(parse_rules(RULES.format(warm_up=wu), "t.toml"), {"M": DeviceMeta()}, T0)
        readings = [
            Reading(T0 + timedelta(minutes=i), "M", "x01", float(v), "N", DataKind.RTD)
            for i, v in enumerate(x)
        ]
        found[wu] = [(f.ts - T0).total_seconds() / 60 for f in e.evaluate(readings).findings]
    assert found[0] == [20.0, 50.0]
    assert found[30] == [50.0]


def finding(minute: float, mn: str = "SLOW") -> Finding:
    return Finding(
        "stat", mn, "x01", T0 + timedelta(minutes=minute), 1.0, "warning", "m", None, {}, None
    )


def test_clear_after_is_at_least_three_reporting_intervals():
    # a condition on every reading of a 5-minute series, with clear_after 5 min
    book = AlertBook({"stat": timedelta(minutes=5)}, intervals={"SLOW": 300.0, "FAST": 60.0})
    slow = book.plan([finding(m) for m in (0, 5, 10, 15)], {})
    assert not slow.closed and len(slow.upserts) == 1
    fast = book.plan([finding(m, "FAST") for m in (0, 5, 10, 15)], {})
    assert len(fast.closed) == 3  # a minute series silent for 5 minutes did clear
    plain = AlertBook({"stat": timedelta(minutes=5)})
    assert len(plain.plan([finding(m) for m in (0, 5, 10, 15)], {}).closed) == 3


def test_a_rule_may_ask_for_more_reporting_intervals_before_its_alert_clears():
    # a condition found on every 10th reading of a 5-minute series, a 1-minute one too
    rules = parse_rules(
        '[[rule]]\nname = "stat"\npollutants = "*"\nclear_after = "5m"\nclear_readings = 12\n'
    )
    e = RuleEngine(rules, {}, T0)
    assert e.clear_readings() == {"stat": 12, "stat.min": 12, "stat.hour": 12, "stat.day": 12}
    book = AlertBook(
        e.clear_after(),
        intervals={"SLOW": 300.0, "FAST": 60.0},
        clear_readings=e.clear_readings(),
    )
    slow = book.plan([finding(m) for m in (0, 50, 100, 150)], {})
    assert not slow.closed and len(slow.upserts) == 1  # 60 minutes' wait: one episode
    fast = book.plan([finding(m, "FAST") for m in (0, 15, 30, 45)], {})
    assert len(fast.closed) == 3  # 12 minutes' wait: a minute series cleared each time
    plain = AlertBook(e.clear_after(), intervals={"SLOW": 300.0})
    assert len(plain.plan([finding(m) for m in (0, 50, 100, 150)], {}).closed) == 3
    with pytest.raises(RulesFileError, match="clear_readings must be an integer ≥ 0"):
        parse_rules('[[rule]]\nname = "stat"\nclear_readings = 1.5\n')


def test_the_interval_a_device_is_seen_at_scales_its_clear_time():
    """A device registered at 60 s (the default) that sends every 5 minutes: the alert
    book's clear time follows the interval the engine sees, so a condition on every
    reading stays one episode instead of one per reading."""
    e = RuleEngine(load_rules(None), {"SLOW": DeviceMeta(interval_s=60.0)}, T0)
    assert e.interval_of("SLOW") == 60.0
    x = noisy(40)
    e.evaluate(
        [
            Reading(T0 + timedelta(minutes=5 * i), "SLOW", "x01", float(v), "N", DataKind.RTD)
            for i, v in enumerate(x)
        ]
    )
    assert e.interval_of("SLOW") == 300.0
    # nor is it declared offline between its readings (it was, 5 minutes after each)
    last = T0 + timedelta(minutes=5 * 39)
    e.note_received({"SLOW": last})
    assert not e.check_offline(last + timedelta(minutes=6)).findings
    assert e.check_offline(last + timedelta(minutes=26)).findings
    book = AlertBook({"stat": timedelta(minutes=5)}, intervals=e.intervals())
    plan = book.plan([finding(m) for m in (0, 5, 10, 15)], {})
    assert not plan.closed and len(plan.upserts) == 1
    # a device seen faster than registered keeps its registered interval
    fast = RuleEngine(load_rules(None), {"FAST": DeviceMeta(interval_s=300.0)}, T0)
    fast.evaluate(
        [
            Reading(T0 + timedelta(minutes=i), "FAST", "x01", float(v), "N", DataKind.RTD)
            for i, v in enumerate(x)
        ]
    )
    assert fast.interval_of("FAST") == 300.0 and dict(fast.intervals()) == {"FAST": 300.0}


def test_a_device_is_seen_at_its_fastest_series_not_its_hourly_averages():
    e = RuleEngine(load_rules(None), {"D": DeviceMeta(interval_s=60.0)}, T0)
    x = noisy(33 * 60)
    rtd = [
        Reading(T0 + timedelta(minutes=i), "D", "x01", float(v), "N", DataKind.RTD)
        for i, v in enumerate(x)
    ]
    hourly = [
        Reading(T0 + timedelta(hours=h), "D", "x01", 50.0, "N", DataKind.HOUR) for h in range(33)
    ]
    # up to the hourly series' 32nd value, when its own step (an hour) is looked at
    e.evaluate(
        sorted((r for r in rtd + hourly if r.ts <= T0 + timedelta(hours=31)), key=lambda r: r.ts)
    )
    assert e.interval_of("D") == 60.0


ROUTINE = """
version = "t"
[[rule]]
name = "spike"
pollutants = "*"
warm_up = 10
{extra}
"""


def spikes_raised(x: np.ndarray, extra: str, interval_s: float = 300.0) -> list[float]:
    """Hours (device time) at which the engine raised a spike finding on series ``x``."""
    rules = parse_rules(ROUTINE.format(extra=extra), "t.toml")
    e = RuleEngine(rules, {"M": DeviceMeta(interval_s=interval_s)}, T0)
    out = []
    for i, v in enumerate(x):
        ts = T0 + timedelta(seconds=i * interval_s)
        r = Reading(ts, "M", "x01", float(v), "N", DataKind.RTD)
        out += [(f.ts - T0).total_seconds() / 3600 for f in e.evaluate([r]).findings]
    return out


def noisy(n: int, seed: int = 5) -> np.ndarray:
    return np.round(50 + np.random.default_rng(seed).normal(0, 0.5, n), 2)


def test_a_condition_the_series_shows_routinely_is_not_raised():
    x = noisy(12 * 24 * 4)  # four days of 5-minute data
    x[12 * 6 :: 12 * 6] = 90.0  # a spike every 6 hours, from the 6th hour on
    every = spikes_raised(x, "")
    assert len(every) == 15
    routine = spikes_raised(x, "routine = 2")
    # each earlier onset weighs e^(-age / 4 days): before the 3rd, 0.94 + 0.88 < 2;
    # before the 4th, 2.65: from then on it is what the series does
    assert routine == every[:3]


def test_a_routine_fades_and_a_quiet_series_still_raises():
    x = noisy(12 * 24 * 12)
    x[[12 * 6, 12 * 12]] = 90.0  # two spikes on day one …
    x[12 * 24 * 11] = 90.0  # … and one ten days later
    assert spikes_raised(x, 'routine = 2\nroutine_window = "2d"') == [6.0, 12.0, 264.0]


def test_nothing_is_raised_before_a_day_of_the_series_own_time():
    x = noisy(12 * 48)
    x[[12 * 6, 12 * 30]] = 90.0
    assert spikes_raised(x, "") == [6.0, 30.0]
    assert spikes_raised(x, 'warm_up_for = "1d"') == [30.0]


def test_the_packaged_rules_raise_nothing_on_a_constant_series():
    from offsite.rules.rules_file import load_rules

    e = RuleEngine(load_rules(None), {"M": DeviceMeta(interval_s=300.0)}, T0)
    found = []
    for i in range(12 * 24 * 3):
        r = Reading(T0 + timedelta(minutes=5 * i), "M", "a99001", 45.0, "N", DataKind.RTD)
        found += e.evaluate([r]).findings
    assert found == []


def test_only_channels_without_a_limit_learn_a_day_and_a_routine():
    from offsite.rules.config import SeriesInfo
    from offsite.rules.rules_file import load_rules

    rs = load_rules(None)
    for device_type in ("flue_gas", "wastewater"):
        for limited, code in ((True, "a21026"), (False, "a99001")):
            info = SeriesInfo("M", code, "rtd", device_type, "", "", limited)
            got = {
                b.name: (b.gating.warm_up_for_s, b.gating.routine)
                for b in rs.resolve(info)
                if b.name in ("spike", "flatline", "stat")
            }
            # a regulator wants every episode of a limited channel, from its first day
            want = (86400.0, 2) if not limited else (0.0, 0)
            assert set(got.values()) == {want}, (device_type, limited, got)


def test_a_restart_does_not_start_the_day_of_warm_up_again_of_an_old_series_only():
    """Replayed at a restart, a series whose stored history reaches back further served
    its warm-up before; one whose whole (new) history was replayed is the live stream
    again, its warm-up dated from its first reading."""
    x = noisy(12 * 3)
    history = [
        Reading(T0 + timedelta(minutes=5 * i), "M", "x01", float(v), "N", DataKind.RTD)
        for i, v in enumerate(x)
    ]
    spike = Reading(T0 + timedelta(hours=3), "M", "x01", 90.0, "N", DataKind.RTD)
    rules = parse_rules(ROUTINE.format(extra='warm_up_for = "1d"'), "t.toml")

    def engine() -> RuleEngine:
        return RuleEngine(rules, {"M": DeviceMeta(interval_s=300.0)}, T0)

    fresh = engine()
    fresh.evaluate(history)  # a new series: three hours of it
    assert fresh.evaluate([spike]).findings == []
    old = engine()
    old.warm(history, older={("M", "x01", DataKind.RTD)})
    assert [f.rule for f in old.evaluate([spike]).findings] == ["spike"]
    new = engine()
    new.warm(history)
    assert new.evaluate([spike]).findings == []


def test_the_day_of_warm_up_starts_when_the_series_first_moves():
    # a disk's write counter reads 0 for a day and a half, then the machine starts work
    # (NAB's ec2_disk_write_bytes_1ef3de): its day of learning starts then, not at 0
    idle = np.zeros(12 * 36)
    x = np.r_[idle, noisy(12 * 48)]
    x[12 * 39] = 90.0  # three hours into its work: not yet learnt
    x[12 * 70] = 90.0  # a day and more into it
    got = spikes_raised(x, 'warm_up_for = "1d"\nparams = { returns = true }')
    assert got == [(12 * 70 + 1) * 5 / 60]


def test_a_spike_that_must_return_is_raised_when_it_went_and_a_step_never():
    x = noisy(200)
    x[100] = 90.0  # comes and goes
    x[150:] += 40.0  # a step that stays (a square wave's rise, a level shift)
    got = spikes_raised(x, "params = { returns = true }")
    assert got == [101 * 5 / 60]  # the reading after the spike, which left it
    assert len(spikes_raised(x, "")) == 2  # judged at once, the step is a spike too


def test_a_burst_as_large_as_the_series_showed_on_two_of_its_last_days_is_no_spike():
    # error counts (NAB's art_load_balancer_spikes): mostly 0, a burst to about 3 once
    # a day after hours of zeros, each one a spike against the zeros before it
    per_day = 12 * 24
    x = np.zeros(per_day * 6)
    for d, height in enumerate([2.9, 3.0, 2.95, 2.97, 6.0, 2.9]):
        x[d * per_day + 100] = height
    rule = "params = {{ returns = true{} }}"
    assert len(spikes_raised(x, rule.format(""))) == 6  # every day's burst
    seen = spikes_raised(x, rule.format(", seen_days = 3"))
    # the first two days have no two days before; the third day's 2.95 lies within
    # the 2.9 and 3.0 of the two before; the 6.0 went where no day went; and on the
    # last day 2.9 is no further than two of the three days before it went
    assert seen == [(d * per_day + 101) * 5 / 60 for d in (0, 1, 4)]


def test_a_burst_seen_before_still_counts_as_the_days_routine():
    # a burst at 08:20 every day, then on the 7th day a larger one at the same hour:
    # the bursts not raised (seen on the days before) are still onsets of the daily
    # routine, which mutes the larger one (were they dropped as hits, nothing would)
    per_day = 12 * 24
    x = np.zeros(per_day * 7)
    for d in range(7):
        x[d * per_day + 100] = 3.0 if d < 6 else 4.0
    rule = "routine = 2\nparams = {{ returns = true{} }}"
    first_two = [(d * per_day + 101) * 5 / 60 for d in (0, 1)]  # no two days before
    assert spikes_raised(x, rule.format(", seen_days = 3")) == first_two
    assert spikes_raised(x, rule.format("")) == first_two  # the daily routine alone


@pytest.mark.parametrize("days", [1, -1, 2.5, 3.0, True])
def test_spike_seen_days_is_a_whole_number_of_days_to_compare(days):
    with pytest.raises(ValueError, match="seen_days"):
        Spike(seen_days=days)


@pytest.mark.parametrize(
    ("lull_h", "first", "raised_on"),
    [
        # from the day of warm-up on: its onset counts all the same, and a series in
        # its second day has one day before it (NAB's art_daily_flatmiddle)
        (18.0, 0, []),
        (23.5, 1, [1, 2]),  # across midnight (08:00 in Beijing), from the first judged day
    ],
)
def test_a_condition_at_the_same_hour_every_day_is_not_raised_from_its_third_day(
    lull_h, first, raised_on
):
    # a daily lull: for an hour the series barely moves (a variance collapse,
    # flatline's), every day. Its decayed onsets weigh 2 only from the 5th day; at the
    # same hour on each of the two days before (on the one day before, for a series
    # younger than that), it is the day's routine from the 3rd day it shows it
    from offsite.rules.rules_file import load_rules

    per_day = 12 * 24
    t = np.arange(7 * per_day) / per_day
    rng = np.random.default_rng(11)
    x = 50 + 10 * np.sin(2 * np.pi * t) + rng.normal(0, 1.0, t.size)
    for d in range(first, 6):
        at = d * per_day + int(12 * lull_h)
        x[at : at + 12] = 45.0 + rng.normal(0, 0.001, 12)
    e = RuleEngine(load_rules(None), {"M": DeviceMeta("wastewater", interval_s=300.0)}, T0)
    raised = []
    for i, v in enumerate(np.round(x, 4)):
        r = Reading(T0 + timedelta(minutes=5 * i), "M", "a99001", float(v), "N", DataKind.RTD)
        raised += [((f.ts - T0).total_seconds() / 3600, f.rule) for f in e.evaluate([r]).findings]
    assert {rule for _, rule in raised} <= {"flatline"}
    lulls = {d: (24 * d + lull_h, 24 * d + lull_h + 1) for d in range(first, 6)}
    on = sorted({d for h, _ in raised for d, (lo, hi) in lulls.items() if lo <= h <= hi})
    assert on == raised_on
    assert all(any(lo <= h <= hi for lo, hi in lulls.values()) for h, _ in raised)


def daily_onsets(hours: list[float]) -> list[bool]:
    """Whether the engine's daily routine mutes each of a series' onsets (device time in
    hours from a UTC midnight)."""
    from offsite.rules.detectors import State

    st = State(1, hour=(np.int64, -1), hours=(np.uint64, 0))  # the gate's fields it keeps
    t0 = T0.timestamp()
    return [bool(daily_routine(st, np.array([0]), np.array([t0 + h * 3600.0]))[0]) for h in hours]


@pytest.mark.parametrize("began_min", [10 * 60 + 40, 11 * 60 + 10])
def test_a_young_series_needs_one_day_before_by_clock_hours(began_min):
    # onsets at 10:05 on days 1 and 2 of a series that began on day 0 after 10:05: the
    # hours 47-49 back are before it began, whether it began at 10:40 or 11:10
    from offsite.rules.detectors import State

    st = State(1, hour=(np.int64, -1), hours=(np.uint64, 0), since=(np.float64, np.nan))
    t0 = T0.timestamp()
    st["since"][0] = t0 + began_min * 60.0
    r = np.array([0])
    assert not daily_routine(st, r, np.array([t0 + (24 + 10) * 3600.0 + 300]))[0]
    assert daily_routine(st, r, np.array([t0 + (48 + 10) * 3600.0 + 300]))[0]


def test_spike_seen_days_ignores_ring_slots_never_written():
    # device time near the epoch (day 0, 1, 2 ...): an unwritten slot (day -1) is no day
    det = Spike(seen_days=3)
    st = det.new_state(1)
    for day, top in [(0, 10.0), (1, 0.0), (2, 0.0)]:  # 10 on day 0 only; day 2 is today
        st["day"][0, day], st["top"][0, day], st["low"][0, day] = day, top, 0.0
    today = np.array([2 * 86400.0 + 30])
    assert not det._seen_before(st, np.array([0]), np.array([10.0]), today)[0]


def test_the_daily_routine_holds_across_midnight_and_looks_a_day_back_not_an_hour():
    # ten minutes either side of midnight, day after day: the same time of day
    assert daily_onsets([23 + 55 / 60, 48 + 5 / 60, 71 + 55 / 60, 96 + 5 / 60]) == [
        False,
        False,
        True,
        True,
    ]
    # 23:10 two days running, then 00:30: an hour after yesterday's, not a day after it
    assert daily_onsets([23 + 10 / 60, 47 + 10 / 60, 48.5]) == [False, False, False]

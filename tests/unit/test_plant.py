"""The plant model: determinism, physics (one load drives every channel), quantisation,
run-state flags, and faults that do to the data exactly what their ground truth says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from offsite.simulators.errors import ScenarioError
from offsite.simulators.faults import DEVICE_WIDE, DILUTED, O2, FaultKind, Message
from offsite.simulators.plant import (
    BLOCK,
    COAL_BOILER,
    MIN_STABLE,
    PLANT_PROFILES,
    STOPPED,
    PlantDevice,
    day_events,
    simulate,
)
from offsite.simulators.plantsuite import (
    COPY_LAG_S,
    SPLITS,
    PlantRun,
    build_plant_run,
)
from offsite.simulators.scenarios import Fleet

T0 = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # local midnight (CST)
DAY = 1440


def _running(s: np.ndarray) -> np.ndarray:
    return s >= 1.0


def _stopping_seed(profile=COAL_BOILER) -> int:
    """A seed whose device stops on its first full day (day 1)."""
    for seed in range(500):
        e = day_events(profile, seed, 1, T0.timestamp())
        if e.stop is not None and e.stop[1] < 2 * 86400:
            return seed
    raise AssertionError("no seed stops")  # pragma: no cover


def test_same_seed_same_series_and_blocks_do_not_matter() -> None:
    a = simulate(COAL_BOILER, 7, T0, 2 * DAY)
    b = simulate(COAL_BOILER, 7, T0, 2 * DAY)
    c = simulate(COAL_BOILER, 8, T0, 2 * DAY)
    assert np.array_equal(a.values, b.values) and np.array_equal(a.flags, b.flags)
    assert not np.array_equal(a.values, c.values)
    # reading tick by tick (as a fleet does) gives the arrays, across a block boundary
    dev = PlantDevice("X", COAL_BOILER, 7, T0, 60.0)
    for k in (0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * DAY - 1):
        values, flags = dev.reading(T0 + timedelta(minutes=k))
        assert list(values.values()) == a.values[k].tolist()
        assert flags == {c: f for c, f in zip(COAL_BOILER.codes, a.flags[k], strict=True) if f}
    dev.reading(T0 + timedelta(minutes=3 * BLOCK))
    with pytest.raises(ScenarioError):
        dev.reading(T0)  # its block is gone: a device keeps only the last two


@pytest.mark.parametrize("name", [n for n, p in PLANT_PROFILES.items() if p.o2_ref is not None])
def test_flue_gas_channels_follow_the_load_and_o2_goes_against_it(name: str) -> None:
    prof = PLANT_PROFILES[name]
    s = simulate(prof, 3, T0, 3 * DAY, calibration=False)
    run = _running(s.on) & (s.flags == "").all(axis=1)
    col = {c: s.values[run, i] for i, c in enumerate(prof.codes)}
    load = s.load[run]

    def corr(code: str) -> float:
        return float(np.corrcoef(col[code], load)[0, 1])

    assert corr("a01011") > 0.95 and corr("a00000") > 0.95  # velocity, flow ∝ load
    assert corr(O2) < -0.8
    assert corr("a21002") > 0.2 and corr("a34013") > 0.4  # concentrations rise with it


def test_load_wanders_for_tens_of_minutes_around_a_daily_cycle() -> None:
    s = simulate(COAL_BOILER, 11, T0, 3 * DAY, calibration=False)
    run = _running(s.on)
    dev = PlantDevice("X", COAL_BOILER, 11, T0, 60.0)
    daily = dev._state(s.t_s)[0]
    ratio = s.load[run] / daily[run] - 1.0
    assert 0.025 < ratio.std() < 0.08  # swings of about ±8 %
    r1 = np.corrcoef(ratio[:-1], ratio[1:])[0, 1]
    r30 = np.corrcoef(ratio[:-30], ratio[30:])[0, 1]
    r240 = np.corrcoef(ratio[:-240], ratio[240:])[0, 1]
    assert r1 > 0.99 and 0.3 < r30 < 0.95 and r240 < 0.3
    assert 0.1 < daily.max() - daily.min() < 0.5


def test_every_value_is_quantised_to_its_channel_resolution() -> None:
    for prof in PLANT_PROFILES.values():
        s = simulate(prof, 5, T0, DAY, calibration=False)
        for i, ch in enumerate(prof.channels):
            v = s.values[:, i] / ch.resolution
            assert np.allclose(v, np.round(v), atol=1e-6), (prof.name, ch.code)
    s = simulate(COAL_BOILER, 5, T0, DAY, calibration=False)
    so2 = s.values[_running(s.on), 0]
    assert len(np.unique(so2)) < len(so2) / 3  # values repeat at 0.1, as loggers send them


def test_stops_and_starts_carry_f_flags_and_read_like_a_cold_stack() -> None:
    seed = _stopping_seed()
    s = simulate(COAL_BOILER, seed, T0, 3 * DAY, calibration=False)
    stopped = s.on < MIN_STABLE
    assert stopped.any() and not stopped.all()
    assert (s.flags[stopped] == STOPPED).all()
    assert not (s.flags[~stopped] == STOPPED).any()
    deep = s.on == 0.0
    i_o2, i_v = COAL_BOILER.codes.index(O2), COAL_BOILER.codes.index("a01011")
    assert s.values[deep, i_o2].mean() > 19.5 and s.values[deep, i_v].mean() < 1.0
    # the ramps are gradual: no tick moves the run state by more than a ramp step
    assert np.abs(np.diff(s.on)).max() <= 60.0 / COAL_BOILER.events.ramp_down_s + 1e-9


def test_daily_calibration_is_flagged_c_once_a_day() -> None:
    s = simulate(COAL_BOILER, 5, T0, 2 * DAY)
    i = COAL_BOILER.codes.index(COAL_BOILER.fault_pollutant)
    cal = s.flags[:, i] == "C"
    assert 9 <= cal.sum() <= 20 and (s.flags[cal][:, i + 1] != "C").all()


# -- faults on plants: ground truth against the data ---------------------------------------


def _clean_twin(run: PlantRun) -> Fleet:
    f = run.fleet
    devices = [PlantDevice(d.mn, d.profile, d.seed, d.start, d.rate_s) for d in f.devices]
    return Fleet(f.registry, devices, [], f.rate_s, f.start, f.seed)


def _series(fleet: Fleet, duration_s: float) -> dict[datetime, dict[str, Message]]:
    return {ts: {m.mn: m for m in fleet.messages(ts)} for ts in fleet.timestamps(duration_s)}


@pytest.fixture(scope="module")
def twins() -> tuple[PlantRun, dict, dict]:
    run = build_plant_run("held-out", 0, days=2, clean_per_profile=0)
    return run, _series(run.fleet, run.duration_s), _series(_clean_twin(run), run.duration_s)


def test_every_fault_acts_only_in_its_window_and_on_its_channels(twins) -> None:
    run, faulty, clean = twins
    assert {f.kind for f in run.fleet.faults} == set(FaultKind)
    by_mn = {f.mn: f for f in run.fleet.faults}
    for ts in faulty:
        for mn, f in by_mn.items():
            got, ref = faulty[ts].get(mn), clean[ts][mn]
            if not f.start <= ts < f.end:
                assert got == ref, (f.kind, ts)
                continue
            if got is None:
                assert f.kind in (FaultKind.OFFLINE, FaultKind.CAPTURE)
                continue
            changed = {c for c in ref.values if got.values[c] != ref.values[c]}
            changed |= set(got.flags) ^ set(ref.flags)
            if f.kind in DEVICE_WIDE:
                continue
            allowed = {f.pollutant, O2, *DILUTED}
            if f.kind is not FaultKind.DILUTION:
                allowed = {f.pollutant}
            assert changed <= allowed, (f.kind, changed)
    for f in run.fleet.faults:  # every fault changes something in its window
        inside = [ts for ts in faulty if f.start <= ts < f.end]
        assert any(faulty[ts].get(f.mn) != clean[ts][f.mn] for ts in inside), f.kind


def test_copies_repeat_exactly_what_was_sent_a_day_earlier(twins) -> None:
    run, faulty, _ = twins
    for f in [f for f in run.fleet.faults if f.kind is FaultKind.COPY_PASTE]:
        assert f.params["lag_s"] == COPY_LAG_S and f.end - f.start >= timedelta(hours=4)
        for ts in (t for t in faulty if f.start <= t < f.end):
            then = faulty[ts - timedelta(seconds=COPY_LAG_S)].get(f.mn)
            now = faulty[ts].get(f.mn)
            assert then is not None and now is not None
            assert now.values == then.values and now.flags == then.flags


def test_clamp_is_parked_after_o2_correction_while_raw_values_move(twins) -> None:
    run, faulty, _ = twins
    for f in [f for f in run.fleet.faults if f.kind is FaultKind.CLAMP]:
        inside = [faulty[t][f.mn] for t in faulty if f.start <= t < f.end]
        raw = np.array([m.values[f.pollutant] for m in inside])
        ratio = raw / f.params["limit"]
        if "o2_ref" in f.params:
            o2 = np.array([m.values[O2] for m in inside])
            corrected = ratio * (21 - f.params["o2_ref"]) / (21 - o2)
            assert np.allclose(corrected, f.params["level"], rtol=0.01)
            assert ratio.std() / ratio.mean() > 0.005  # the raw values vary with O2
        else:
            assert np.allclose(ratio, f.params["level"], rtol=0.01)
        assert 0.93 <= f.params["level"] <= 0.985


def test_slow_drift_creeps_one_to_two_percent_an_hour(twins) -> None:
    run, faulty, clean = twins
    for f in [f for f in run.fleet.faults if f.kind is FaultKind.DRIFT]:
        assert 0.01 <= f.params["rate_per_h"] <= 0.02 and f.params["relative"] == 1.0
        assert f.end - f.start >= timedelta(hours=18)
        late = [t for t in faulty if f.end - timedelta(hours=2) <= t < f.end]
        code = f.pollutant
        assert code is not None
        ratios = [
            faulty[t][f.mn].values[code] / clean[t][f.mn].values[code]
            for t in late
            if clean[t][f.mn].values[code] > 0 and not clean[t][f.mn].flags
        ]
        hours = (late[-1] - f.start).total_seconds() / 3600
        assert np.median(ratios) == pytest.approx(1 + f.params["rate_per_h"] * hours, rel=0.02)


def test_dilution_is_a_ramp_and_exceedance_starts_with_one(twins) -> None:
    run, faulty, clean = twins
    (dil,) = [f for f in run.fleet.faults if f.kind is FaultKind.DILUTION]
    rise = [
        faulty[t][dil.mn].values[O2] - clean[t][dil.mn].values[O2]
        for t in (dil.start, dil.start + timedelta(minutes=15), dil.start + timedelta(minutes=45))
    ]
    assert dil.params["ramp_s"] == 1800.0 and 5.0 <= dil.params["o2_add"] <= 7.0
    assert rise[0] == pytest.approx(0.0, abs=0.02)
    assert rise[1] == pytest.approx(dil.params["o2_add"] / 2, abs=0.1)
    assert rise[2] == pytest.approx(dil.params["o2_add"], abs=0.1)
    # the air dilutes every concentration read through the sample line by one ratio:
    # the incinerator's CO and HCl too, not only SO2, NOx and particulates
    late = dil.start + timedelta(minutes=45)
    got, ref = faulty[late][dil.mn].values, clean[late][dil.mn].values
    ratio = (21.0 - got[O2]) / (21.0 - ref[O2])
    assert {"a21005", "a21024"} <= set(ref) and 0.3 < ratio < 0.8
    for code in ("a21026", "a21002", "a34013", "a21005", "a21024"):
        if ref[code] > 1.0:
            assert got[code] / ref[code] == pytest.approx(ratio, rel=0.02), code
    for f in [f for f in run.fleet.faults if f.kind is FaultKind.EXCEEDANCE]:
        code = f.pollutant
        assert code is not None
        first = faulty[f.start][f.mn].values[code] / clean[f.start][f.mn].values[code]
        after = f.start + timedelta(seconds=f.params["ramp_s"])
        full = faulty[after][f.mn].values[code] / clean[after][f.mn].values[code]
        assert first == pytest.approx(1.0, abs=0.01)
        assert full == pytest.approx(
            f.params["factor"] * f.params["limit"] / f.params["baseline"], rel=0.01
        )


def test_faults_sit_on_the_last_day_while_the_plant_runs(twins) -> None:
    run, _, _ = twins
    last_day = run.fleet.start + timedelta(days=1)
    end = run.fleet.start + timedelta(seconds=run.duration_s)
    for f in run.fleet.faults:
        assert f.end <= end
        if f.kind is FaultKind.DRIFT:
            assert f.start < last_day
        else:
            assert f.start >= last_day, f.kind
            dev = run.fleet.device(f.mn)
            assert isinstance(dev, PlantDevice) and dev.running_between(f.start, f.end)


def test_splits_share_neither_seeds_nor_profiles() -> None:
    tune, held = SPLITS["tune"], SPLITS["held-out"]
    assert not set(tune.profiles) & set(held.profiles)
    assert set(tune.profiles) | set(held.profiles) == set(PLANT_PROFILES)
    a = build_plant_run("tune", 0, ["flatline"], days=2)
    b = build_plant_run("held-out", 0, ["flatline"], days=2)
    assert not {d.mn for d in a.fleet.devices} & {d.mn for d in b.fleet.devices}
    both = build_plant_run(["tune", "held-out"], 0, ["flatline"], days=2)
    assert both.fleet.faults == a.fleet.faults + b.fleet.faults  # one fleet, same plants
    assert {both.split_of[f.mn] for f in b.fleet.faults} == {"held-out"}
    # asking for fewer kinds never moves the faults of the others
    c = build_plant_run("tune", 0, ["flatline", "spike"], days=2)
    assert [f for f in c.fleet.faults if f.kind is FaultKind.FLATLINE] == a.fleet.faults


def test_fleets_can_run_on_the_plant_model_with_the_same_layout_and_faults() -> None:
    from offsite.simulators.scenarios import build_fleet

    start = datetime(2026, 3, 2, 8, 0, 0, 400000, tzinfo=UTC)  # not on the tick grid
    simple = build_fleet(9, seed=4, start=start, rate_s=1.0)
    plant = build_fleet(9, seed=4, start=start, rate_s=1.0, model="plant")
    assert plant.registry.devices == simple.registry.devices
    where = [(f.kind, f.mn, f.start, f.end) for f in plant.faults]
    assert where == [(f.kind, f.mn, f.start, f.end) for f in simple.faults]
    for f in plant.faults:  # each plant's own headline pollutant
        assert f.pollutant in (None, plant.device(f.mn).profile.fault_pollutant)
    assert [(p.id, p.kind) for p in plant.registry.points] == [
        (p.id, p.kind) for p in simple.registry.points
    ]  # same layout; limits and reference O2 are the plants' own
    assert all(isinstance(d, PlantDevice) for d in plant.devices)
    assert {d.profile.point_kind for d in plant.devices} == {"flue_gas", "wastewater"}
    tick = start.replace(microsecond=0)  # the publisher's first tick: wall time truncated
    first = plant.messages(tick)
    assert len(first) == 9 - sum(
        1 for f in plant.faults if f.kind is FaultKind.OFFLINE and f.active(tick)
    )
    with pytest.raises(ScenarioError):
        build_fleet(3, seed=0, start=start, model="fancy")


def test_long_runs_copy_last_weeks_data_too() -> None:
    run = build_plant_run(
        "tune", 0, ["copy_paste"], days=8, devices_per_kind=2, clean_per_profile=0
    )
    lags = {f.params["lag_s"] for f in run.fleet.faults}
    assert lags == {COPY_LAG_S, 7 * COPY_LAG_S}
    week = [f for f in run.fleet.faults if f.params["lag_s"] == 7 * COPY_LAG_S]
    sent = {}
    for ts in run.fleet.timestamps(run.duration_s):
        for m in run.fleet.messages(ts):
            if m.mn == week[0].mn:
                sent[ts] = m
    f = week[0]
    inside = [t for t in sent if f.start <= t < f.end]
    assert inside and all(sent[t] == sent[t - timedelta(days=7)] for t in inside)


def test_coarser_reporting_intervals_keep_every_fault_on_the_tick_grid() -> None:
    run = build_plant_run("held-out", 0, days=2, clean_per_profile=0, rate_s=300.0)
    assert run.fleet.rate_s == 300.0 and {d.interval_s for d in run.fleet.registry.devices} == {
        300.0
    }
    faulty = _series(run.fleet, run.duration_s)
    clean = _series(_clean_twin(run), run.duration_s)
    for f in run.fleet.faults:
        assert (f.start - run.fleet.start).total_seconds() % 300 == 0
        inside = [ts for ts in faulty if f.start <= ts < f.end]
        assert inside, f.kind  # at least one tick, even for a one-minute spike
        assert any(faulty[ts].get(f.mn) != clean[ts][f.mn] for ts in inside), f.kind
    with pytest.raises(ScenarioError):
        build_plant_run("tune", 0, ["spike"], days=2, rate_s=7.0)  # does not divide a day


def test_a_plant_run_is_the_same_every_time() -> None:
    a = build_plant_run("tune", 1, ["flatline", "clamp"], days=1.1)
    b = build_plant_run("tune", 1, ["flatline", "clamp"], days=1.1)
    assert a.fleet.registry == b.fleet.registry and a.fleet.faults == b.fleet.faults
    for ts in list(a.fleet.timestamps(a.duration_s))[:300]:
        assert a.fleet.messages(ts) == b.fleet.messages(ts)

"""The evaluation fault kinds: each does what its ground truth says, only in its window,
deterministically; flags travel to both payload formats; clean devices calibrate daily."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from offsite.ingest.codecs.hj212 import parse_packet, to_message
from offsite.ingest.codecs.json_codec import decode_json
from offsite.simulators.devices import CEMS, WASTEWATER, SimDevice, daily_calibration
from offsite.simulators.errors import ScenarioError
from offsite.simulators.evalsuite import DURATION_MIN, HISTORY_S, RUN_S, TAIL_S, build_suite
from offsite.simulators.faults import DEVICE_WIDE, Fault, FaultKind, Message, apply_faults_flagged
from offsite.simulators.publisher import payload_encoder
from offsite.simulators.scenarios import Fleet, build_fleet

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NEW_KINDS = [
    FaultKind.CLAMP,
    FaultKind.DILUTION,
    FaultKind.FLOW_ZERO,
    FaultKind.COPY_PASTE,
    FaultKind.FLAG_ABUSE,
    FaultKind.FALSE_STOP,
    FaultKind.IMPLAUSIBLE,
    FaultKind.SHIFT,
    FaultKind.CAPTURE,
]


def _run(fleet: Fleet, duration_s: float) -> list[tuple[datetime, dict[str, Message]]]:
    return [(ts, {m.mn: m for m in fleet.messages(ts)}) for ts in fleet.timestamps(duration_s)]


def _twins(kind: FaultKind) -> tuple[Fleet, list, list]:
    """One seed's faulty run for ``kind`` and the same devices with no fault."""
    (run, _) = build_suite(11, [kind], devices_per_kind=2, clean_devices=1)
    got = _run(run.fleet, run.duration_s)
    # devices keep state: the clean twin gets its own, rebuilt from the same seed
    (run2, _) = build_suite(11, [kind], devices_per_kind=2, clean_devices=1)
    clean = Fleet(run2.fleet.registry, run2.fleet.devices, [], run2.fleet.rate_s, run2.fleet.start)
    return run.fleet, got, _run(clean, run.duration_s)


@pytest.fixture(scope="module", params=NEW_KINDS, ids=str)
def twin(request: pytest.FixtureRequest) -> tuple[FaultKind, Fleet, list, list]:
    return (request.param, *_twins(request.param))


def test_each_new_fault_acts_as_its_ground_truth_says_and_only_in_its_window(twin) -> None:
    kind, fleet, rows, clean_rows = twin
    assert len(fleet.faults) == 2 and {f.kind for f in fleet.faults} == {kind}
    for f in fleet.faults:
        truth = json.loads(json.dumps(f.to_dict()))
        assert truth["kind"] == kind.value and (truth["pollutant"] is None) == (kind in DEVICE_WIDE)
        assert f.start >= fleet.start + timedelta(seconds=HISTORY_S)
        assert f.end <= fleet.start + timedelta(seconds=RUN_S - TAIL_S)
        inside = [
            (ts, r.get(f.mn), c[f.mn])
            for (ts, r), (_, c) in zip(rows, clean_rows, strict=True)
            if f.active(ts)
        ]
        outside = [
            (r.get(f.mn), c[f.mn])
            for (ts, r), (_, c) in zip(rows, clean_rows, strict=True)
            if not f.active(ts)
        ]
        assert len(inside) >= DURATION_MIN[kind][0]
        assert all(r == c for r, c in outside), "a fault leaked out of its window"
        _check_effect(f, inside, fleet.start)


def _check_effect(
    f: Fault, inside: list[tuple[datetime, Message | None, Message]], run_start: datetime
) -> None:
    p, code = f.params, f.pollutant
    sent = [(ts, m, c) for ts, m, c in inside if m is not None]
    match f.kind:
        case FaultKind.CLAMP:
            got = np.array([m.values[code] for _, m, _ in sent])
            target = p["limit"] * p["level"]
            assert 0.92 <= p["level"] <= 0.97
            assert np.all(np.abs(got / target - 1) < 0.0045) and np.all(got < p["limit"])
            assert 0.001 < np.std(got / target) < 0.003  # jitter of rel. sd ~0.002
        case FaultKind.DILUTION:
            for ts, m, c in sent:
                ramp = min(1.0, (ts - f.start).total_seconds() / p["ramp_s"])
                o2 = c.values["a19001"] + p["o2_add"] * ramp
                assert m.values["a19001"] == pytest.approx(o2, abs=2e-3)
                ratio = (21 - o2) / (21 - c.values["a19001"])
                for k in ("a21026", "a21002", "a34013"):
                    assert m.values[k] == pytest.approx(c.values[k] * ratio, abs=2e-3)
                assert m.values["a01012"] == c.values["a01012"]
        case FaultKind.FLOW_ZERO:
            assert code in ("a01011", "w00000")
            for _, m, c in sent:
                assert m.values[code] == 0.0
                assert {k: v for k, v in m.values.items() if k != code} == {
                    k: v for k, v in c.values.items() if k != code
                }
        case FaultKind.COPY_PASTE:
            assert 2 * 3600 <= p["lag_s"] <= 4 * 3600
            lag = timedelta(seconds=p["lag_s"])
            assert f.start - lag >= run_start  # the copied stretch was sent in this run
            assert (f.end - f.start) >= timedelta(minutes=60)
        case FaultKind.FLAG_ABUSE:
            flags = [m.flags.get(code, "N") for _, m, _ in sent]
            share = sum(fl in ("M", "D") for fl in flags) / len(flags)
            assert abs(share - p["share"]) < 0.2 and {"M", "D"} <= set(flags)
            assert all(m.values == c.values for _, m, c in sent)  # values unchanged
            assert all(set(m.flags) <= {code} for _, m, _ in sent)
        case FaultKind.FALSE_STOP:
            for _, m, c in sent:
                assert m.values == c.values and set(m.flags.values()) == {"F"}
                assert set(m.flags) == set(m.values)
        case FaultKind.IMPLAUSIBLE:
            assert all(m.values[code] == p["value"] for _, m, _ in sent)
            impossible = (
                p["value"] < 0
                or (code == "a19001" and p["value"] > 21)
                or (code == "w01001" and p["value"] > 14)
            )
            assert impossible
        case FaultKind.SHIFT:
            assert code in ("a01012", "w01001") and 8 <= abs(p["sd_steps"]) <= 12
            for _, m, c in sent:
                assert m.values[code] == pytest.approx(
                    c.values[code] + p["sd_steps"] * p["sd"], abs=2e-3
                )
        case FaultKind.CAPTURE:
            lost = sum(m is None for _, m, _ in inside) / len(inside)
            assert 0.4 <= p["drop"] <= 0.6 and abs(lost - p["drop"]) < 0.15
            assert all(m.values == c.values for _, m, c in sent)


def test_copy_paste_repeats_exactly_what_was_sent_lag_earlier() -> None:
    kind = FaultKind.COPY_PASTE
    fleet, rows, _ = _twins(kind)
    by_ts = dict(rows)
    for f in fleet.faults:
        lag = timedelta(seconds=f.params["lag_s"])
        inside = [(ts, r[f.mn]) for ts, r in rows if f.active(ts)]
        for ts, m in inside:
            assert m.values == by_ts[ts - lag][f.mn].values
        # and it is a real copy of a different stretch, not a coincidence
        assert inside[0][1].values != by_ts[inside[0][0] - timedelta(minutes=1)][f.mn].values


def test_the_suite_is_deterministic_by_seed_and_kinds_do_not_disturb_each_other() -> None:
    a = build_suite(5, NEW_KINDS, devices_per_kind=2, clean_devices=1)
    b = build_suite(5, NEW_KINDS, devices_per_kind=2, clean_devices=1)
    c = build_suite(6, NEW_KINDS, devices_per_kind=2, clean_devices=1)
    assert [f.to_dict() for f in a[0].fleet.faults] == [f.to_dict() for f in b[0].fleet.faults]
    assert [f.to_dict() for f in a[0].fleet.faults] != [f.to_dict() for f in c[0].fleet.faults]
    ts = a[0].fleet.start + timedelta(hours=5)
    assert _run_at(a[0].fleet, ts) == _run_at(b[0].fleet, ts)
    only = build_suite(5, [FaultKind.SHIFT], devices_per_kind=2, clean_devices=1)
    assert [f.to_dict() for f in only[0].fleet.faults] == [
        f.to_dict() for f in a[0].fleet.faults if f.kind is FaultKind.SHIFT
    ]
    dilution = [f for f in a[0].fleet.faults if f.kind is FaultKind.DILUTION]
    assert all(a[0].fleet.device(f.mn).profile is CEMS for f in dilution)
    mixed = {
        a[0].fleet.device(f.mn).profile.name for f in a[0].fleet.faults if f.kind is FaultKind.SHIFT
    }
    assert mixed == {"cems", "wastewater"}


def _run_at(fleet: Fleet, until: datetime) -> list:
    out = []
    for ts in fleet.timestamps((until - fleet.start).total_seconds()):
        out = fleet.messages(ts)
    return out


def test_apply_faults_flagged_is_pure_and_keeps_flags() -> None:
    t1 = T0 + timedelta(minutes=10)
    values = {"a21026": 10.0, "a19001": 8.0}
    flags = {"a19001": "C"}
    stop = Fault(FaultKind.FALSE_STOP, "M1", None, T0, t1)
    got = apply_faults_flagged([stop], T0, values, flags)
    assert got == (values, {"a21026": "F", "a19001": "F"}) and flags == {"a19001": "C"}
    assert apply_faults_flagged([stop], t1, values, flags) == (values, flags)
    bad = Fault(FaultKind.IMPLAUSIBLE, "M1", "a21026", T0, t1, {"value": -5})
    assert apply_faults_flagged([bad], T0, values) == ({"a21026": -5.0, "a19001": 8.0}, {})
    copy = Fault(FaultKind.COPY_PASTE, "M1", None, T0, t1, {"lag_s": 60})
    assert apply_faults_flagged([copy], T0, values) == (values, {})  # no history: unchanged
    earlier = {T0 - timedelta(seconds=60): {"a21026": 3.0, "a19001": 9.0}}
    assert apply_faults_flagged([copy], T0, values, None, earlier.get)[0] == {
        "a21026": 3.0,
        "a19001": 9.0,
    }
    drop = Fault(FaultKind.CAPTURE, "M1", None, T0, t1, {"drop": 1.0})
    assert apply_faults_flagged([drop], T0, values) is None


@pytest.mark.parametrize(
    ("kind", "pollutant", "params"),
    [
        (FaultKind.CLAMP, "a21026", {"limit": 35.0}),
        (FaultKind.CAPTURE, "a21026", {"drop": 0.5}),
        (FaultKind.FLOW_ZERO, None, {}),
        (FaultKind.SHIFT, "a01012", {"sd_steps": float("nan"), "sd": 1.0}),
    ],
)
def test_bad_new_faults_are_refused(kind: FaultKind, pollutant: str | None, params: dict) -> None:
    with pytest.raises(ScenarioError):
        Fault(kind, "M1", pollutant, T0, T0 + timedelta(minutes=5), params)


@pytest.mark.parametrize("model", ["simple", "plant"])
@pytest.mark.parametrize("kind", list(FaultKind))
def test_build_fleet_places_every_kind_where_it_shows(kind: FaultKind, model: str) -> None:
    """`offsite simulate --fault KIND` offers every kind: each one lands on a device
    that can show it and changes what that device sends, only within its window."""
    rate, after, duration = 1.0, 15.0, 60.0
    faulty = build_fleet(
        4,
        seed=3,
        start=T0,
        rate_s=rate,
        faults=[kind],
        fault_after_s=after,
        fault_duration_s=duration,
        model=model,
    )
    clean = build_fleet(4, seed=3, start=T0, rate_s=rate, faults=[], model=model)
    assert faulty.faults and {f.kind for f in faulty.faults} == {kind}
    by_mn = {f.mn: f for f in faulty.faults}
    if kind is FaultKind.DILUTION:
        flue = {"cems", "coal_boiler", "gas_turbine", "waste_incinerator"}
        assert all(faulty.device(mn).profile.name in flue for mn in by_mn)
    changed = dict.fromkeys(by_mn, 0)
    for ts in faulty.timestamps(after + duration + 10 * rate):
        sent = {m.mn: m for m in faulty.messages(ts)}
        for want in clean.messages(ts):
            got = sent.get(want.mn)
            if got is None or (got.values, got.flags) != (want.values, want.flags):
                assert want.mn in by_mn and by_mn[want.mn].active(ts), (
                    f"{kind.value} changed {want.mn} at {ts} outside its window"
                )
                changed[want.mn] += 1
    assert all(changed.values()), f"{kind.value} never changed what a device sent: {changed}"


# --- daily calibration --------------------------------------------------------------------


def test_clean_devices_calibrate_once_a_day_flagged_c() -> None:
    for profile in (CEMS, WASTEWATER):
        cal = daily_calibration("ABCDEF0123", profile)
        assert cal == daily_calibration("ABCDEF0123", profile)
        dev = SimDevice("ABCDEF0123", profile, 3, cal)
        start = datetime(2026, 3, 2, tzinfo=UTC)
        flagged = []
        for k in range(24 * 60):
            ts = start + timedelta(minutes=k)
            values, flags = dev.reading(ts)
            if flags:
                assert flags == {profile.fault_pollutant: "C"}
                assert values[profile.fault_pollutant] in (0.0, cal.span)
                flagged.append(k)
        assert len(flagged) == 10 and flagged[-1] - flagged[0] == 9  # one 10-minute block
    assert daily_calibration("A1", CEMS).start_s != daily_calibration("B2", CEMS).start_s


def test_calibration_is_off_by_default_and_moves_no_random_number() -> None:
    plain = build_fleet(3, seed=2, start=T0, faults=())
    cal = build_fleet(3, seed=2, start=T0, faults=(), calibration=True)
    assert all(d.calibration is None for d in plain.devices)
    for ts in plain.timestamps(3600 * 6, T0):
        a, b = plain.messages(ts), cal.messages(ts)
        for x, y in zip(a, b, strict=True):
            if y.flags:
                assert set(y.flags.values()) == {"C"}
            assert {k: v for k, v in x.values.items() if k not in y.flags} == {
                k: v for k, v in y.values.items() if k not in y.flags
            }


# --- flags in payloads ---------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["json", "hj212"])
def test_flags_reach_both_payload_formats(protocol: str) -> None:
    fleet = build_fleet(2, seed=1, start=T0, faults=())
    mn = fleet.devices[0].mn
    values = {"a21026": 12.5, "a19001": 8.25, "w01018": 3.0}
    flags = {"a21026": "M", "a19001": "D"}
    raw = payload_encoder(fleet.registry, protocol)(mn, T0, values, flags)
    msg = decode_json(raw) if protocol == "json" else to_message([parse_packet(raw)])
    (record,) = msg.records
    assert {v.pollutant: (v.value, v.flag) for v in record.values} == {
        "a21026": (12.5, "M"),
        "a19001": (8.25, "D"),
        "w01018": (3.0, "N"),
    }

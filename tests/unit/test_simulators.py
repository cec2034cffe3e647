"""Simulators: determinism, a valid registry, realistic clean data, faults that do what
they say inside their window and nothing outside it, and the JSON payload format."""

from __future__ import annotations

import itertools
import json
import socket
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from offsite.core.registry import MN_RE, registry_from_dict
from offsite.simulators.devices import CEMS, WASTEWATER, SimDevice
from offsite.simulators.errors import ScenarioError, SimulatorError
from offsite.simulators.faults import Fault, FaultKind, apply_faults
from offsite.simulators.publisher import parse_mqtt_url, payload_json, publish_fleet, publish_raw
from offsite.simulators.scenarios import ALL_FAULTS, Fleet, build_fleet
from offsite.simulators.signals import CST, daily_cycle

T0 = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
N_TICKS = 120


def run(fleet: Fleet, n: int) -> list[tuple[datetime, dict[str, dict[str, float]]]]:
    return [(ts, dict(fleet.tick(ts))) for ts in fleet.timestamps(n * fleet.rate_s)]


def series(
    rows: list[tuple[datetime, dict[str, dict[str, float]]]], mn: str, code: str
) -> np.ndarray:
    return np.array([msgs[mn][code] for _, msgs in rows if mn in msgs])


def max_run(x: np.ndarray) -> int:
    best = run_len = 1
    for a, b in itertools.pairwise(x):
        run_len = run_len + 1 if a == b else 1
        best = max(best, run_len)
    return best


def spike_scores(x: np.ndarray, window: int = 30) -> np.ndarray:
    """|x_i − median(previous window)| in robust sd (1.4826 × MAD) — a reference detector."""
    win = sliding_window_view(x[:-1], window)
    med = np.median(win, axis=1)
    mad = 1.4826 * np.median(np.abs(win - med[:, None]), axis=1)
    return np.abs(x[window:] - med) / mad


@pytest.fixture(scope="module")
def faulty() -> tuple[Fleet, list]:
    fleet = build_fleet(20, seed=7, start=T0)
    return fleet, run(fleet, N_TICKS)


@pytest.fixture(scope="module")
def clean_twin() -> tuple[Fleet, list]:
    fleet = build_fleet(20, seed=7, start=T0, faults=())
    return fleet, run(fleet, N_TICKS)


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_same_everything(faulty) -> None:
    fleet, rows = faulty
    again = build_fleet(20, seed=7, start=T0)
    assert again.registry == fleet.registry
    assert again.ground_truth() == fleet.ground_truth()
    assert run(again, N_TICKS) == rows


def test_different_seed_differs(faulty) -> None:
    fleet, _ = faulty
    other = build_fleet(20, seed=8, start=T0)
    assert {d.mn for d in other.registry.devices}.isdisjoint(d.mn for d in fleet.registry.devices)
    assert [e.name for e in other.registry.enterprises] != [
        e.name for e in fleet.registry.enterprises
    ]
    a = SimDevice("A", CEMS, 1)
    b = SimDevice("A", CEMS, 2)
    assert a.step(T0) != b.step(T0)


def test_device_is_reproducible_and_independent_of_fault_choice(faulty, clean_twin) -> None:
    ts = [T0 + timedelta(seconds=k) for k in range(50)]
    d1, d2 = SimDevice("X", WASTEWATER, 3), SimDevice("X", WASTEWATER, 3)
    assert [d1.step(t) for t in ts] == [d2.step(t) for t in ts]
    # Layout is drawn before faults: asking for no faults keeps the same plants.
    assert clean_twin[0].registry == faulty[0].registry


# --- registry --------------------------------------------------------------------------------


def test_registry_is_valid_and_consistent(faulty) -> None:
    fleet, _ = faulty
    reg = fleet.registry
    assert registry_from_dict(reg.to_dict()) == reg
    assert [d.mn for d in reg.devices] == [d.mn for d in fleet.devices]
    points = {p.id: p for p in reg.points}
    for dev, sim in zip(reg.devices, fleet.devices, strict=True):
        assert len(dev.mn) == 24 and dev.mn == dev.mn.upper() and MN_RE.match(dev.mn)
        int(dev.mn, 16)
        assert dev.interval_s == fleet.rate_s
        point = points[dev.point_id]
        assert point.kind == sim.profile.point_kind
        assert dict(point.limits) == dict(sim.profile.limits)
        assert sim.profile.fault_pollutant in point.limits
        assert point.o2_ref == (6.0 if point.kind == "flue_gas" else None)
        assert point.id.startswith(point.enterprise_id + "-P")
    assert len(points) == len(reg.devices)  # one point per device
    sizes = [sum(p.enterprise_id == e.id for p in reg.points) for e in reg.enterprises]
    assert all(1 <= s <= 3 for s in sizes)
    assert [e.id for e in reg.enterprises] == [f"E{i:04d}" for i in range(1, len(sizes) + 1)]
    n_stacks = sum(p.kind == "flue_gas" for p in reg.points)
    assert 12 <= n_stacks <= 15  # about 2/3 of 20


# --- clean data ------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate_s", "n"), [(1.0, 400), (60.0, 480)])
def test_clean_series_look_real(rate_s: float, n: int) -> None:
    fleet = build_fleet(8, seed=3, start=T0, faults=(), rate_s=rate_s)
    rows = run(fleet, n)
    assert all(len(msgs) == 8 for _, msgs in rows)
    for dev in fleet.devices:
        limits = fleet.registry.point_of(dev.mn).limits
        o2 = series(rows, dev.mn, "a19001") if dev.profile is CEMS else None
        for code in dev.profile.codes:
            x = series(rows, dev.mn, code)
            assert max_run(x) < 10, (dev.mn, code)
            assert spike_scores(x).max() < 5.0, (dev.mn, code)
            if code != "a01013":
                assert x.min() >= 0.0
            if code in limits:  # clean data never exceeds, even O2-corrected
                corrected = x * (21 - 6.0) / (21 - o2) if o2 is not None else x
                assert corrected.max() < 0.9 * limits[code], (dev.mn, code)
        if o2 is not None:
            assert o2.min() > 0 and o2.max() < 21
            assert series(rows, dev.mn, "a01013").max() < 0
        else:
            ph = series(rows, dev.mn, "w01001")
            assert ph.min() >= 0 and ph.max() <= 14


def test_values_have_logger_precision_and_load_shape() -> None:
    dev = SimDevice("X", CEMS, 5)
    values = dev.step(T0)
    assert all(round(v, 3) == v for v in values.values())
    peak = datetime(2025, 3, 1, 14, tzinfo=CST)
    trough = peak - timedelta(hours=12)
    assert daily_cycle(14.0, 0.2) == pytest.approx(1.2)
    assert daily_cycle(2.0, 0.2) == pytest.approx(0.8)
    hi, lo = dev.expected(peak), dev.expected(trough)
    assert hi["a21026"] > lo["a21026"] and hi["a01011"] > lo["a01011"]
    assert hi["a19001"] < lo["a19001"]  # O2 moves against load


# --- faults ----------------------------------------------------------------------------------


def test_fault_assignment(faulty) -> None:
    fleet, _ = faulty
    kinds = [f.kind for f in fleet.faults]
    assert len(fleet.faults) == 10 and {k: kinds.count(k) for k in kinds} == {
        k: 2 for k in ALL_FAULTS
    }
    assert len({f.mn for f in fleet.faults}) == len(fleet.faults)
    for f in fleet.faults:
        dev = fleet.device(f.mn)
        assert f.pollutant == (None if f.kind is FaultKind.OFFLINE else dev.profile.fault_pollutant)
        assert T0 + timedelta(seconds=15) <= f.start <= T0 + timedelta(seconds=19)
        length = (f.end - f.start).total_seconds()
        assert length in ((1.0, 2.0) if f.kind is FaultKind.SPIKE else (60.0,))
    some = build_fleet(20, seed=7, start=T0, faults=[FaultKind.SPIKE, "offline"])
    assert {f.kind for f in some.faults} == {FaultKind.SPIKE, FaultKind.OFFLINE}
    assert build_fleet(5, seed=1, start=T0).faults.__len__() == 5  # every kind, small fleet


def test_ground_truth_is_json(faulty) -> None:
    truth = json.loads(json.dumps(faulty[0].ground_truth()))
    assert len(truth) == 10
    for row in truth:
        assert datetime.fromisoformat(row["start"]).tzinfo is not None
        assert row["point_id"] and row["enterprise_id"]
        assert (row["limit"] is None) == (row["kind"] == "offline")


def test_each_fault_acts_only_in_its_window(faulty, clean_twin) -> None:
    fleet, rows = faulty
    _, clean_rows = clean_twin
    for f in fleet.faults:
        inside = [
            (ts, m, c)
            for (ts, m), (_, c) in zip(rows, clean_rows, strict=True)
            if f.start <= ts < f.end
        ]
        outside = [
            (m, c)
            for (ts, m), (_, c) in zip(rows, clean_rows, strict=True)
            if not f.start <= ts < f.end
        ]
        assert inside and outside
        assert all(m.get(f.mn) == c[f.mn] for m, c in outside), f.kind
        if f.kind is FaultKind.OFFLINE:
            assert all(f.mn not in m for _, m, _ in inside)
            continue
        code = f.pollutant
        got = np.array([m[f.mn][code] for _, m, _ in inside])
        base = np.array([c[f.mn][code] for _, _, c in inside])
        # other channels of the faulty device are untouched
        assert all(
            {k: v for k, v in m[f.mn].items() if k != code}
            == {k: v for k, v in c[f.mn].items() if k != code}
            for _, m, c in inside
        )
        match f.kind:
            case FaultKind.FLATLINE:
                assert len(got) >= 10 and np.all(got == got[0]) and got[0] == f.params["value"]
            case FaultKind.SPIKE:
                assert len(got) in (1, 2) and np.all(got >= 5.9 * base)
                x = series(rows, f.mn, code)
                k = next(i for i, (ts, _) in enumerate(rows) if ts == f.start)
                assert spike_scores(x[: k + 1], window=10)[-1] > 20
            case FaultKind.DRIFT:
                offset = got - base
                assert np.all(np.diff(offset) > -0.01) and offset[-1] > 0.5 * f.params["baseline"]
            case FaultKind.EXCEEDANCE:
                assert got.min() > f.params["limit"] and got.max() < 3.5 * f.params["limit"]


def test_apply_faults_is_pure_and_handles_edges() -> None:
    t1 = T0 + timedelta(minutes=1)
    values = {"a21026": 10.0, "a19001": 8.0}
    off = Fault(FaultKind.OFFLINE, "M1", None, T0, t1)
    flat = Fault("flatline", "M1", "a21026", T0, t1, {"value": 12.5})
    other = Fault(FaultKind.SPIKE, "M1", "w01018", T0, t1, {"factor": 8.0})
    assert apply_faults([off], T0, values) is None
    assert apply_faults([off], t1, values) == values  # end is exclusive
    out = apply_faults([flat, other], T0 + timedelta(seconds=30), values)
    assert out == {"a21026": 12.5, "a19001": 8.0} and values["a21026"] == 10.0
    drift = Fault(FaultKind.DRIFT, "M1", "a21026", T0, t1, {"rate_per_h": -3600.0, "baseline": 10})
    assert apply_faults([drift], T0 + timedelta(seconds=59), values)["a21026"] == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start": T0.replace(tzinfo=None)},
        {"end": T0},
        {"pollutant": None},
        {"kind": FaultKind.OFFLINE},
        {"params": {}},
        {"kind": "melted"},
    ],
)
def test_bad_faults_are_refused(kwargs: dict) -> None:
    args = {
        "kind": FaultKind.SPIKE,
        "mn": "M1",
        "pollutant": "a21026",
        "start": T0,
        "end": T0 + timedelta(seconds=2),
        "params": {"factor": 7.0},
    } | kwargs
    with pytest.raises(ScenarioError):
        Fault(**args)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_devices": 0},
        {"seed": -1},
        {"start": T0.replace(tzinfo=None)},
        {"rate_s": 0.0},
        {"fault_duration_s": 0.0},
        {"faults": ["melted"]},
    ],
)
def test_bad_fleets_are_refused(kwargs: dict) -> None:
    with pytest.raises(SimulatorError):
        build_fleet(**({"start": T0} | kwargs))


# --- publisher (no broker needed) ------------------------------------------------------------


def test_payload_json_round_trips() -> None:
    ts = datetime(2025, 3, 1, 8, 0, 1, tzinfo=UTC)
    raw = payload_json(ts, {"a21026": 12.3, "a19001": 8.0}, flags={"a19001": "M"})
    doc = json.loads(raw)
    assert set(doc) == {"ts", "values"}
    parsed = datetime.fromisoformat(doc["ts"])
    assert parsed == ts and parsed.tzinfo is not None
    assert doc["values"] == {"a21026": 12.3, "a19001": {"value": 8.0, "flag": "M"}}
    for bad in (
        {"values": {"a21026": float("nan")}},
        {"flags": {"a21026": "X"}},
        {"ts": ts.replace(tzinfo=None)},
    ):
        args = {"ts": ts, "values": {"a21026": 1.0}} | bad
        with pytest.raises(SimulatorError):
            payload_json(**args)


def test_parse_mqtt_url() -> None:
    assert parse_mqtt_url("mqtt://user:p%40ss@broker.local:1884") == (
        "broker.local",
        1884,
        "user",
        "p@ss",
    )
    assert parse_mqtt_url("mqtt://127.0.0.1") == ("127.0.0.1", 1883, None, None)
    for bad in ("http://x:1883", "mqtt://", "mqtt://h:notaport"):
        with pytest.raises(SimulatorError):
            parse_mqtt_url(bad)


def test_unreachable_broker_raises_chained() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fleet = build_fleet(2, start=T0)
    with pytest.raises(SimulatorError) as info:
        publish_fleet(fleet, f"mqtt://127.0.0.1:{port}", duration_s=1, realtime=False)
    assert isinstance(info.value.__cause__, OSError)


def test_publish_raw_unreachable_broker_raises() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SimulatorError):
        publish_raw(f"mqtt://127.0.0.1:{port}", "devices/X/telemetry", b"{not json")

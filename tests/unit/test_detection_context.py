"""Judging a channel against its partners: load wander and daily cycles every channel
shares raise nothing; an analyser leaving its partners, fast or slow, is caught."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from offsite.core.readings import DataKind, Reading
from offsite.rules.engine import DeviceMeta, RuleEngine
from offsite.rules.rules_file import parse_rules

T0 = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
SO2, NOX, PM, FLOW, VEL, O2 = "a21026", "a21002", "a34013", "a00000", "a01011", "a19001"
LIMITS = {SO2: 35.0, NOX: 50.0, PM: 10.0}
CTX = '["@flow", "@concentration"]'


def rules(context: bool = True) -> str:
    ctx = f", context = {CTX}" if context else ""
    return f"""
version = "t"
[[rule]]
name = "spike"
pollutants = ["@concentration", "@flow"]
params = {{ z = 8.0{ctx} }}
[[rule]]
name = "drift"
pollutants = "@concentration"
params = {{ history = 15, min_history = 12{ctx} }}
[[rule]]
name = "slow_drift"
pollutants = "@concentration"
"""


def plant(minutes: int, seed: int) -> dict[str, np.ndarray]:
    """A stack driven by one load: AR wander of about ±8 % over half an hour, a daily
    cycle of ±10 %; each channel with its own elasticity, noise and resolution."""
    rng = np.random.default_rng(seed)
    i = np.arange(minutes)
    ar = np.zeros(minutes)
    for k in range(1, minutes):
        ar[k] = 0.967 * ar[k - 1] + rng.normal(0, 0.013)
    load = (1 + 0.1 * np.sin(2 * np.pi * (i / 1440.0 + rng.uniform()))) * (1 + ar)

    def ch(level: float, beta: float, noise: float, res: float) -> np.ndarray:
        v = level * load**beta * (1 + rng.normal(0, noise, minutes))
        return np.round(v / res) * res

    return {
        SO2: ch(20.0, 1.0, 0.015, 0.1),
        NOX: ch(35.0, 0.7, 0.012, 0.1),
        PM: ch(5.0, 1.2, 0.02, 0.01),
        FLOW: ch(3e5, 1.0, 0.008, 1.0),
        VEL: ch(12.0, 1.0, 0.008, 0.01),
        O2: np.round(8.0 - 6.0 * (load - 1) + rng.normal(0, 0.05, minutes), 2),
    }


def run(text: str, devices: dict[str, dict[str, np.ndarray]], minutes: int) -> list:
    meta = {mn: DeviceMeta("flue_gas", "E", mn, 60.0, 6.0, LIMITS) for mn in devices}
    e = RuleEngine(parse_rules(text, "t.toml"), meta, started_at=T0)
    out = []
    step = 120
    for lo in range(0, minutes, step):
        batch = [
            Reading(T0 + timedelta(minutes=m), mn, code, float(v[m]), "N", DataKind.RTD)
            for m in range(lo, min(lo + step, minutes))
            for mn, data in devices.items()
            for code, v in data.items()
        ]
        out += e.evaluate(batch).findings
    return out


DAYS = 3
MIN = DAYS * 1440
CLEAN = {f"C{s}": plant(MIN, s) for s in range(4)}


@pytest.fixture(scope="module")
def clean_with_context() -> list:
    return run(rules(), CLEAN, MIN)


def test_load_wander_and_daily_cycle_raise_nothing_against_partners(clean_with_context):
    assert [(f.rule, f.mn, f.pollutant, f.ts) for f in clean_with_context][:5] == []


def test_the_same_plants_judged_channel_by_channel_cry_wolf():
    # what the issue measured: each channel alone sees the load's ramps as drifts
    found = run(rules(context=False), CLEAN, 1440)
    assert sum(f.rule == "drift" for f in found) > 10


def test_a_jump_on_one_channel_alone_is_a_spike_a_shared_load_step_is_not():
    data = plant(300, 7)
    shared = {c: v.copy() for c, v in data.items()}
    for c in shared:
        if c != O2:
            shared[c][200:] = shared[c][200:] * 1.3  # a load step: every channel together
    alone = {c: v.copy() for c, v in data.items()}
    alone[SO2][200] *= 1.6
    got = run(rules(), {"SHARED": shared, "ALONE": alone}, 300)
    spikes = {(f.mn, f.pollutant, f.ts) for f in got if f.rule == "spike"}
    assert ("ALONE", SO2, T0 + timedelta(minutes=200)) in spikes
    assert not [s for s in spikes if s[0] == "SHARED"]


# the creep must also stand clear of the hour-to-hour moves of the last two days (a
# step is not a creep: no hour may carry more than a fifth of the departure), and its
# own first hours are such moves against the flat ones before it: 9.5–13.5 h here, the
# 6-h target missed (precision bought with delay; it held from 1.5 %/h at two fifths)
@pytest.mark.parametrize(("rate", "within_h"), [(0.01, 14.0), (0.015, 11.0), (0.02, 10.0)])
def test_slow_drift_of_particulates_against_partners_is_caught_within_hours(rate, within_h):
    start = 2 * 1440 + 30  # after two clean days
    minutes = start + 20 * 60
    devices = {}
    for s in range(3):
        d = plant(minutes, 100 + s)
        ramp = np.minimum(1 + rate * np.arange(minutes - start) / 60.0, 1.9)
        d[PM][start:] = np.round(d[PM][start:] * ramp, 2)
        devices[f"D{s}"] = d
    got = run(rules(), devices, minutes)
    slow = [f for f in got if f.rule == "slow_drift"]
    assert {f.pollutant for f in slow} == {PM}
    assert not [f for f in got if f.rule in ("spike", "drift")]
    first = {}
    for f in slow:
        first.setdefault(f.mn, f.ts)
    delays = [
        (ts - (T0 + timedelta(minutes=start))).total_seconds() / 3600 for ts in first.values()
    ]
    assert len(delays) == 3 and float(np.median(delays)) <= within_h, delays


def test_a_partner_leaving_its_level_does_not_make_the_others_spike():
    # NOx at several times its level for twenty minutes (an exceedance), then back:
    # the load its partners share moves with it, the other channels did not move
    data = plant(300, 11)
    data[NOX][200:220] = data[NOX][200:220] * 5.0
    got = run(rules(), {"EXC": data}, 300)
    spikes = {f.pollutant for f in got if f.rule == "spike"}
    assert spikes <= {NOX}, spikes


@pytest.mark.parametrize("velocity_first", [True, False])
def test_the_flow_partner_is_the_volumetric_flow_whatever_the_device_sends_first(
    velocity_first: bool,
) -> None:
    # a shut-down beginning: O2 up 2 points, SO2 and the flow (a00000) down 10 %, the
    # velocity (a01011) lagging behind. The flow partner was the channel seen first, so
    # a device that sent its velocity first had its load fall judged as dilution.
    text = '[[rule]]\nname = "dilution"\ndevice_types = ["flue_gas"]\npollutants = "a21026"\n'
    text += "params = { o2_rise = 0.5, drop = 0.03 }\n"
    e = RuleEngine(parse_rules(text), {"S": DeviceMeta("flue_gas", limits={"a21026": 35.0})}, T0)
    rng = np.random.default_rng(3)
    found = []
    for i in range(40):
        down = 0.9 if i >= 38 else 1.0
        values = {
            "a01011": 13.8 + rng.normal(0, 0.05),
            "a00000": 1.2e6 * down + rng.normal(0, 3e3),
            "a19001": (7.8 if i >= 38 else 5.8) + rng.normal(0, 0.05),
            "a21026": 17.0 * down + rng.normal(0, 0.1),
        }
        order = sorted(values, reverse=velocity_first)  # a01011 before a00000, or after
        ts = T0 + timedelta(minutes=i)
        readings = [Reading(ts, "S", c, float(values[c]), "N", DataKind.RTD) for c in order]
        found += e.evaluate(readings).findings
    assert found == []


def test_a_creeping_channel_is_not_blamed_on_the_siblings_it_drags():
    # judged against the other concentrations (as a treated-water outlet's are), PM's
    # creep moves the load its siblings are judged by: they seem to leave it the other
    # way. The channel that moved departs the most; only it is raised
    text = rules() + 'params = { context = ["@concentration"] }\n'
    start = 2 * 1440 + 30
    minutes = start + 30 * 60
    devices = {}
    for s in range(3):
        d = plant(minutes, 200 + s)
        ramp = np.minimum(1 + 0.02 * np.arange(minutes - start) / 60.0, 1.9)
        d[PM][start:] = np.round(d[PM][start:] * ramp, 2)
        devices[f"D{s}"] = d
    got = [f for f in run(text, devices, minutes) if f.rule == "slow_drift"]
    assert {f.mn for f in got} == set(devices)
    assert {f.pollutant for f in got} == {PM}


def test_a_partner_the_rule_no_longer_judges_is_no_peer(monkeypatch):
    # an override stops slow_drift on NOx at run time: NOx keeps its slot in the rule,
    # but what is left there must not be read as a judgement any more
    from offsite.rules.detectors.drift import SlowDrift

    seen: list[np.ndarray] = []
    call = SlowDrift.__call__

    def spy(self, b, state):
        seen.append(b.peers.copy())
        return call(self, b, state)

    monkeypatch.setattr(SlowDrift, "__call__", spy)
    text = rules() + 'params = { context = ["@concentration"] }\n'
    e = RuleEngine(
        parse_rules(text, "t.toml"),
        {"D": DeviceMeta("flue_gas", "E", "D", 60.0, 6.0, LIMITS)},
        started_at=T0,
    )
    data = plant(4, 1)
    codes = [SO2, NOX, PM]

    def feed(m: int) -> None:
        t = T0 + timedelta(minutes=m)
        e.evaluate([Reading(t, "D", c, float(data[c][m]), "N", DataKind.RTD) for c in codes])

    feed(0)
    assert (seen[-1] >= 0).sum() == 6, "three channels, each with two judged peers"
    off = f'[[override]]\nrule = "slow_drift"\ndevice = "D"\npollutants = ["{NOX}"]\n'
    off += "enabled = false\n"
    e.update_rules(parse_rules(text + off, "t.toml"))
    feed(1)
    assert seen[-1].shape[0] == 2, "SO2 and PM are judged"
    assert ((seen[-1] >= 0).sum(axis=1) == 1).all() and ((seen[-1] == -2).sum(axis=1) == 1).all()

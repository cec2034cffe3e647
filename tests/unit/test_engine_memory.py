"""The engine's long memories and its determinism: copy-paste rebuilt from stored history,
and the same findings whatever the batch boundaries."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offsite.core.readings import DataKind, Reading
from offsite.rules.engine import DeviceMeta, RuleEngine
from offsite.rules.rules_file import parse_rules

T0 = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
MN = "MN1"
SO2, NOX, PM, FLOW, O2 = "a21026", "a21002", "a34013", "a00000", "a19001"
DEVICES = {MN: DeviceMeta("flue_gas", "E1", "P1", 60.0, 6.0, {SO2: 35.0, NOX: 50.0, PM: 10.0})}
COPY = """
version = "t1"
[[rule]]
name = "copy_paste"
pollutants = "@limited"
"""


def plant(minutes: int, seed: int = 1) -> dict[str, np.ndarray]:
    """One stack: a load that wanders and cycles daily drives every channel."""
    rng = np.random.default_rng(seed)
    i = np.arange(minutes)
    ar = np.zeros(minutes)
    for k in range(1, minutes):
        ar[k] = 0.97 * ar[k - 1] + rng.normal(0, 0.012)
    load = 1 + 0.1 * np.sin(2 * np.pi * i / 1440.0) + ar
    return {
        SO2: np.round(20 * load + rng.normal(0, 0.4, minutes), 1),
        NOX: np.round(35 * load + rng.normal(0, 0.6, minutes), 1),
        PM: np.round(5 * load + rng.normal(0, 0.15, minutes), 2),
        FLOW: np.round(3e5 * load + rng.normal(0, 2e3, minutes), 0),
        O2: np.round(8 - 2 * (load - 1) + rng.normal(0, 0.1, minutes), 2),
    }


def readings(data: dict[str, np.ndarray], lo: int, hi: int) -> list[Reading]:
    return [
        Reading(T0 + timedelta(minutes=m), MN, code, float(v[m]), "N", DataKind.RTD)
        for m in range(lo, hi)
        for code, v in data.items()
    ]


def engine(text: str = COPY) -> RuleEngine:
    return RuleEngine(parse_rules(text, "t.toml"), DEVICES, started_at=T0)


def test_copy_paste_memory_is_rebuilt_from_stored_history_after_a_restart():
    day = 1440
    data = plant(day + 400)
    for code in data:  # the whole device repeats yesterday, from minute 120 of day 2
        data[code][day + 120 : day + 400] = data[code][120:400]
    live = engine()
    live.evaluate(readings(data, 0, day + 60))
    restarted = engine()
    # the runner: yesterday's same time of day from the store, then the recent hours
    assert restarted.remember(readings(data, 40, 420)) > 0
    restarted.warm(readings(data, day - 180, day + 60))
    cold = engine()  # restarted without the long memory
    cold.warm(readings(data, day - 180, day + 60))
    found = {}
    for name, e in (("live", live), ("restarted", restarted), ("cold", cold)):
        f = e.evaluate(readings(data, day + 60, day + 400)).findings
        found[name] = [(x.pollutant, x.ts) for x in f]
    assert found["live"] and found["restarted"] == found["live"]
    assert not found["cold"]
    first = min(ts for _, ts in found["live"])
    assert first - (T0 + timedelta(minutes=day + 120)) <= timedelta(minutes=10)


def faulty_stream(seed: int) -> list[Reading]:
    """Three hours of two stacks under the default rules, with something for most rules
    to find: a spike, a stuck channel, a copied segment, a clamp, flags, a dilution."""
    data = plant(180, seed)
    data[SO2][50] = 90.0
    data[NOX][70:90] = 33.3
    data[PM][120:170] = data[PM][20:70]
    data[NOX][130:150] = np.round(48.5 + 0.2 * np.sin(np.arange(20)), 1)
    data[O2][160:170] = 13.0
    data[SO2][160:170] = np.round(data[SO2][160:170] * 0.6, 1)
    out = readings(data, 0, 180)
    other = [
        Reading(
            r.ts, "MN2", r.pollutant, r.value * 1.1, "M" if 100 <= i % 400 < 130 else "N", r.kind
        )
        for i, r in enumerate(out)
    ]
    return sorted(out + other, key=lambda r: r.ts)


def default_engine() -> RuleEngine:
    """The packaged rules, less the day of warm-up of channels without a limit (the stream
    lasts three hours; their routine stays, and is judged for batch boundaries too)."""
    from dataclasses import replace

    from offsite.rules.rules_file import load_rules

    rs = load_rules(None)
    rs = replace(
        rs,
        overrides=tuple(
            replace(o, gating={k: v for k, v in o.gating.items() if k != "warm_up_for"})
            for o in rs.overrides
        ),
        rules=tuple(replace(r, gating=replace(r.gating, warm_up_for_s=0.0)) for r in rs.rules),
    )
    devices = {**DEVICES, "MN2": DeviceMeta("flue_gas", "E1", "P2", 60.0, 6.0, {SO2: 35.0})}
    return RuleEngine(rs, devices, started_at=T0)


def findings_of(batches: list[list[Reading]]) -> list[tuple[str, str, str, datetime, float]]:
    e = default_engine()
    out = []
    for b in batches:
        for f in e.evaluate(b).findings:
            out.append((f.rule, f.mn, f.pollutant, f.ts, round(f.value, 6)))
    return sorted(out)


def messages(stream: list[Reading]) -> list[list[Reading]]:
    """The stream as devices send it: one message per device and instant."""
    out: dict[tuple[str, datetime], list[Reading]] = {}
    for x in stream:
        out.setdefault((x.mn, x.ts), []).append(x)
    return list(out.values())


MESSAGES = messages(faulty_stream(3))
WHOLE = findings_of([[x for m in MESSAGES for x in m]])


def test_the_faulty_stream_gives_findings_of_several_rules():
    assert len({f[0].split(".")[0] for f in WHOLE}) >= 5


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=st.lists(st.integers(1, len(MESSAGES) - 1), max_size=40, unique=True),
    shuffle=st.randoms(use_true_random=False),
)
def test_findings_do_not_depend_on_the_batch_boundaries(cuts, shuffle):
    """Any split of the stream into batches of whole messages, each batch in any order,
    gives the findings of the whole stream judged at once: for every rule."""
    edges = [0, *sorted(cuts), len(MESSAGES)]
    batches = []
    for a, b in itertools.pairwise(edges):
        piece = [x for m in MESSAGES[a:b] for x in m]
        shuffle.shuffle(piece)
        batches.append(piece)
    assert findings_of(batches) == WHOLE


def test_one_message_per_batch_gives_the_same_findings():
    assert findings_of(MESSAGES) == WHOLE

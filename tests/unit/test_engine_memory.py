"""The engine's long memories and its determinism: copy-paste rebuilt from stored history,
and the same findings whatever the batch boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from offsite.core.readings import DataKind, Reading
from offsite.rules.config import parse_rules
from offsite.rules.engine import DeviceMeta, RuleEngine

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

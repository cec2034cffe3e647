"""Work the engine shares between rules and series (a partner's load worked out once, a
batch's valid window computed once, medians without a per-row pick) must give what
working it out for each would: these pin the shortcuts to the plain computation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from offsite.core.readings import DataKind, Reading
from offsite.rules.detectors.base import FLAG_N, Batch, nanmedian_rows
from offsite.rules.engine import DeviceMeta, RuleEngine
from offsite.rules.rules_file import load_rules

T0 = datetime(2026, 11, 1, tzinfo=UTC)
CODES = ("a21026", "a21002", "a34013", "a19001", "a01012", "a01011", "a01013", "a01014")
BASE = (15.0, 30.0, 4.0, 8.0, 120.0, 12.0, 0.3, 8.0)
LIMITS = {"a21026": 35.0, "a21002": 50.0, "a34013": 10.0}


def test_nanmedian_rows_is_numpys_nanmedian_with_and_without_gaps() -> None:
    rng = np.random.default_rng(5)
    for width in (1, 2, 7, 30):
        w = np.round(rng.normal(10, 3, (200, width)), 1)
        assert np.array_equal(nanmedian_rows(w), np.median(w, axis=1))
        w[rng.random(w.shape) < 0.3] = np.nan
        w[:3] = np.nan  # rows with nothing known
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            want = np.nanmedian(w, axis=1)
        assert np.array_equal(nanmedian_rows(w), want, equal_nan=True)


def _batch(n: int = 6, w: int = 5) -> Batch:
    rng = np.random.default_rng(1)
    flags = np.full((n, w), FLAG_N, dtype=np.uint8)
    flags[0, 1] = ord("D")
    vec = np.zeros(n)
    return Batch(
        np.arange(n), *(vec,) * 2, np.full(n, FLAG_N, np.uint8), *(vec,) * 5,
        rng.normal(size=(n, w)), flags, rng.normal(size=(n, w)),
    )  # fmt: skip


def test_the_valid_window_is_shared_read_only_and_never_outlives_its_windows() -> None:
    b = _batch()
    vw = b.valid_window()
    assert np.isnan(vw[0, 1]) and b.valid_window() is vw
    with pytest.raises(ValueError):
        vw[0, 0] = 1.0  # shared by every rule of the round: nobody may write it
    assert b.same_windows(rows=b.rows + 10).valid_window() is vw
    sub = b.take(np.array([4, 0]))
    assert np.array_equal(sub.valid_window(), vw[[4, 0]], equal_nan=True)
    other = replace(b, window=b.window + 1.0)  # new windows: worked out afresh
    assert np.allclose(other.valid_window()[1:], vw[1:] + 1.0)
    with pytest.raises(ValueError):
        b.same_windows(window=b.window)


def _readings(mns: list[str], minute: int, rng: np.random.Generator) -> list[Reading]:
    ts = T0 + timedelta(minutes=minute)
    return [
        Reading(ts, mn, code, round(base * (1 + rng.normal(0, 0.02)), 3), "N", DataKind.RTD)
        for mn in mns
        for code, base in zip(CODES, BASE, strict=True)
    ]


def test_the_load_of_partners_shared_by_channels_is_each_channels_own() -> None:
    """Channels of a device share most of their context partners; the load is worked
    out once per set of partners. It must be what each channel's own partners give:
    the geometric mean of their values now, and the mean of their windows over now."""
    mns = [f"D{i}" for i in range(3)]
    meta = {mn: DeviceMeta("flue_gas", "E", mn, 60.0, 6.0, LIMITS) for mn in mns}
    engine = RuleEngine(load_rules(None), meta, T0)
    rng = np.random.default_rng(2)
    for minute in range(12):
        engine.evaluate(_readings(mns, minute, rng))
    now = _readings(mns, 12, rng)
    keys = [(r.mn, r.pollutant, "rtd") for r in now]
    rows = engine.series_rows(keys)
    x = np.array([r.value for r in now])
    full = engine._batch(rows, x, np.full(len(now), now[0].ts.timestamp()), np.full(
        len(now), FLAG_N, np.uint8))  # fmt: skip
    where = np.full(engine.windows.capacity, -1, dtype=np.int64)
    where[rows] = np.arange(rows.shape[0])
    sel = next(iter(engine.partners.ctx))
    load = engine.partners.load(rows, sel, where, full)
    table = engine.partners.ctx[sel][rows]
    assert (table >= 0).sum(axis=1).min() >= 2  # every channel has partners here
    for i in range(rows.shape[0]):
        p = where[table[i][table[i] >= 0]]
        assert load.x[i] == pytest.approx(np.exp(np.log(x[p]).mean()), rel=1e-12)
        want = (full.window[p] / x[p][:, None]).mean(axis=0)
        assert np.allclose(load.window[i], want, rtol=1e-12, equal_nan=True)

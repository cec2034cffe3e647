"""``offsite eval --generic``: the synthetic NAB-like series, the NAB file reader and
the figures (episodes in labelled windows against time in them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from offsite.evaluation.generic import SeriesResult, replay, score_generic
from offsite.evaluation.scoring import Raised
from offsite.simulators.generic import FAMILIES, INTERVALS_S, generic_series, nab_series

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def test_series_are_seeded_and_labelled_as_nab_labels_them():
    a, b = generic_series(3), generic_series(3)
    assert [s.name for s in a] == [s.name for s in b]
    assert all(np.array_equal(x.values, y.values) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0].values, generic_series(4)[0].values) or a[0].family == "flat"
    assert len(a) == len(FAMILIES) * len(INTERVALS_S)
    for s in a:
        if s.anomalous:  # one window, 10 % of the series, around the onset
            ((lo, hi),) = s.windows
            assert (hi - lo).total_seconds() == pytest.approx(0.1 * s.days * 86400, rel=0.01)
    assert {s.family for s in a if s.anomalous} == {
        "level_up",
        "level_down",
        "flat_middle",
        "noise_change",
        "spike_density",
    }


def test_nab_file_is_read_onto_its_own_grid():
    text = "timestamp,value\n" + "\n".join(
        f"{(T0 + timedelta(minutes=5 * i)).strftime('%Y-%m-%d %H:%M:%S')},{i}.5"
        for i in range(10)
        if i != 4  # a gap
    )
    s = nab_series("g/x.csv", text, [["2026-01-05 00:10:00.000000", "2026-01-05 00:20:00"]])
    assert s.interval_s == 300.0 and s.family == "x" and s.values.shape == (10,)
    assert np.isnan(s.values[4]) and s.values[9] == 9.5
    assert s.windows == ((T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)),)


def test_figures_compare_episodes_in_windows_with_time_in_them():
    day = timedelta(days=1)
    with_anomaly = SeriesResult(
        "a",
        "level_up",
        300.0,
        10.0,
        ((T0 + 5 * day, T0 + 6 * day),),
        (Raised("spike", "G1", "a99001", T0 + 5.5 * day), Raised("stat", "G1", "a99001", T0)),
    )
    clean = SeriesResult("b", "noise", 300.0, 10.0, (), (Raised("stat", "G2", "a99001", T0),), 2)
    sc = score_generic([with_anomaly, clean])
    assert (sc.episodes, sc.in_windows, sc.found, sc.windows) == (3, 1, 1, 1)
    assert sc.time_share == pytest.approx(1 / 20)
    assert sc.clean_rate == pytest.approx(0.1) and sc.clean_by_rule == {"stat": 1}
    assert sc.offline == 2 and sc.by_rule == {"spike": 1, "stat": 2}


def test_replay_counts_a_reopened_alert_as_a_new_episode():
    s = generic_series(0, ("noise",), (300.0,))[0]
    x = s.values.copy()
    base = float(np.median(x))
    x[2000], x[3000] = base + 1e4, base + 1e4
    res = replay([type(s)(s.name, s.family, s.interval_s, s.start, x, s.windows)])[0]
    spikes = [a for a in res.episodes if a.rule == "spike"]
    # raised by the reading that left each spike (a spike on such a channel must return)
    assert [a.at for a in spikes] == [s.time(2001), s.time(3001)]


def test_eval_nab_files_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from offsite.cli import main

    data = tmp_path / "data" / "grp"
    data.mkdir(parents=True)
    s = generic_series(0, ("level_up",), (3600.0,))[0]
    rows = [f"{s.time(i).strftime('%Y-%m-%d %H:%M:%S')},{v}" for i, v in enumerate(s.values)]
    (data / "up.csv").write_text("timestamp,value\n" + "\n".join(rows[:600]) + "\n")
    (tmp_path / "labels").mkdir()
    lo, hi = (t.strftime("%Y-%m-%d %H:%M:%S.%f") for t in s.windows[0])
    (tmp_path / "labels" / "combined_windows.json").write_text(
        json.dumps({"grp/up.csv": [[lo, hi]]})
    )
    assert main(["eval", "--nab", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    nab = doc["splits"]["nab"]
    assert nab["series"] == 1 and nab["anomalous"] == 1 and nab["windows"] == 1
    assert set(doc["nab_series"]) == {"grp/up.csv"}

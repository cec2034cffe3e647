"""``offsite alerts export`` on real PostgreSQL: the engine's alerts written through the
store's lifecycle (reopen included) come back as episodes in device time, one per alert
the engine raised; CSV and the device-time filter; a reader that stops early."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from offsite.cli import main
from offsite.evaluation.runner import run_engine
from offsite.simulators.evalsuite import build_suite
from offsite.simulators.faults import FaultKind, Message
from offsite.store.alerts import apply_plan
from offsite.store.registry import save_registry

pytestmark = pytest.mark.integration


def _write_alerts_through_the_store(db_url: str, registry, batches) -> None:
    """The engine and the alert book as ingest wires them, each plan written by the
    store in its own transaction (as the rule runner does)."""
    from offsite.rules.alerts import AlertBook
    from offsite.rules.engine import RuleEngine
    from offsite.rules.registry_view import device_meta
    from offsite.rules.rules_file import load_rules

    engine = RuleEngine(load_rules(None), device_meta(registry), started_at=batches[0][0])
    book = AlertBook(
        engine.clear_after(), default_clear_after=timedelta(minutes=5), cooldown=engine.cooldowns()
    )
    with psycopg.connect(db_url) as conn:
        save_registry(conn, registry)
        conn.commit()
        for ts, messages in batches:
            from offsite.core.readings import Reading

            readings = [
                Reading(ts, m.mn, code, value, m.flags.get(code, "N"))
                for m in messages
                for code, value in m.values.items()
            ]
            for ev in (engine.evaluate(readings, {m.mn: ts for m in messages}),):
                plan = book.plan(ev.findings, ev.seen)
                with conn.transaction():
                    apply_plan(conn, plan)
                book.applied(plan)


@pytest.fixture
def exceedance_twice(db_url: str):
    """One exceedance, then the same again 20 minutes after it ended: the alert clears
    in between and is *reopened* (same row), which must export as two episodes."""
    (faulty,) = build_suite(0, [FaultKind.EXCEEDANCE], devices_per_kind=1, clean_devices=0)
    fleet = faulty.fleet
    f = fleet.faults[0]
    code = f.pollutant
    assert code is not None
    again = f.end + timedelta(minutes=20)
    batches = []
    for ts in fleet.timestamps(faulty.duration_s):
        msgs = fleet.messages(ts)
        if again <= ts < again + timedelta(minutes=3):
            msgs = [
                Message(m.mn, {**m.values, code: 99.0} if m.mn == f.mn else m.values, m.flags)
                for m in msgs
            ]
        batches.append((ts, msgs))
    _write_alerts_through_the_store(db_url, fleet.registry, batches)
    raised = run_engine(fleet.registry, batches)
    return f, again, raised


def _export(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["alerts", "export", *args])
    got = capsys.readouterr()
    return code, got.out, got.err


def test_every_raised_alert_is_one_episode_and_a_reopen_is_a_new_one(
    db_url: str,
    exceedance_twice,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    f, again, raised = exceedance_twice
    monkeypatch.setenv("OFFSITE_DATABASE_URL", db_url)
    code, out, err = _export(capsys)
    assert code == 0
    episodes = [json.loads(line) for line in out.splitlines()]
    assert "exported" in err
    # the export and the evaluation's own count agree: one episode per raised alert
    assert sorted((e["rule"], e["mn"], e["pollutant"], e["start"]) for e in episodes) == sorted(
        (a.rule, a.mn, a.pollutant, a.at.isoformat()) for a in raised
    )
    exc = [e for e in episodes if e["rule"] == "exceedance" and e["mn"] == f.mn]
    assert [e["episode"] for e in exc] == [1, 2]
    assert exc[0]["alert_id"] == exc[1]["alert_id"]  # one row, reopened
    assert exc[0]["start"] == f.start.isoformat() and exc[1]["start"] == again.isoformat()
    assert exc[0]["end"] is not None and f.start.isoformat() < exc[0]["end"] < again.isoformat()
    assert exc[1]["end"] == (again + timedelta(minutes=2)).isoformat()
    assert exc[0]["end_reason"] == "cleared" and exc[0]["severity"] in ("major", "critical")
    assert exc[0]["point_id"] and exc[0]["enterprise_id"] and exc[0]["suppressed"] is None

    # the device-time filter keeps the episodes that touch the window
    since = (again - timedelta(minutes=1)).isoformat()
    code, out, _ = _export(capsys, "--since", since, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows and all(r["end"] == "" or r["end"] >= since for r in rows)
    assert [r["episode"] for r in rows if r["rule"] == "exceedance"] == ["2"]
    assert list(rows[0]) == [
        "alert_id",
        "episode",
        "rule",
        "mn",
        "point_id",
        "enterprise_id",
        "pollutant",
        "severity",
        "suppressed",
        "start",
        "end",
        "end_reason",
    ]
    assert main(["alerts", "export", "--since", "2026-03-01T00:00"]) == 2  # no zone


def test_a_reader_that_stops_early_ends_the_export_quietly(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO enterprises (id, name) VALUES ('E1', 'Pipe Co.') ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO points (id, enterprise_id, name, kind) "
            "VALUES ('E1-P1', 'E1', 'stack', 'flue_gas') ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO devices (mn, point_id, interval_s) VALUES ('PIPE01', 'E1-P1', 60)"
        )
        conn.execute(
            """INSERT INTO alerts (rule, mn, pollutant, severity, state, first_seen,
                                   last_seen, message)
               SELECT 'spike', 'PIPE01', 'a21026', 'warning', 'cleared',
                      '2026-03-01'::timestamptz + g * interval '1 min',
                      '2026-03-01'::timestamptz + g * interval '1 min', 'x'
               FROM generate_series(1, 5000) AS g"""
        )
    env = {**os.environ, "OFFSITE_DATABASE_URL": db_url, "OFFSITE_DATA_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "offsite.cli", "alerts", "export"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert json.loads(first)["rule"] == "spike"
    assert "Traceback" not in err and "BrokenPipe" not in err

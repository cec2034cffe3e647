"""The rule runner apart from the ingest worker: its own process by default, or run
elsewhere (``offsite rules``) with ``OFFSITE_RULES_RUNNER=external``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from offsite.core.registry import registry_from_dict
from offsite.ingest.service import runner_config
from offsite.runner.rule_process import run_rules
from tests.integration.helpers import (
    make_settings,
    publish_raw,
    register,
    running_ingest,
    scalar,
    topic_for,
    wait_for,
)

pytestmark = pytest.mark.integration

MN = "010000A8900016F000169DD0"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E1",
                "name": "Test Power",
                "points": [
                    {
                        "id": "E1-P1",
                        "kind": "flue_gas",
                        "o2_ref": 6.0,
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": MN, "interval_s": 60}],
                    }
                ],
            }
        ]
    }
)
EXCEEDANCES = "SELECT count(*) FROM alerts WHERE rule = 'exceedance' AND mn = %s"


def _payload(ts: datetime, **values: object) -> bytes:
    return json.dumps({"ts": ts.isoformat(), "values": values}).encode()


def test_the_runner_is_a_process_of_its_own_and_reports_to_its_worker(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    register(db_url, REGISTRY)
    with running_ingest(make_settings(db_url, mqtt_url, unique_topic)) as ingest:
        assert ingest.runner is not None
        assert ingest.runner.pid not in (None, os.getpid())
        wait_for(lambda: ingest.rules_figures().leading, what="the runner leading")
        publish_raw(
            mqtt_url, [(topic_for(unique_topic, MN), _payload(datetime.now(UTC), a21026=99.0))]
        )  # limit 35
        wait_for(lambda: scalar(db_url, EXCEEDANCES, MN) == 1, what="the exceedance alert")
        wait_for(
            lambda: ingest.rules_figures().opened == 1 and ingest.rules_figures().judged == 1,
            timeout=5,
            what="the runner's figures reaching the worker",
        )
        runner = ingest.runner
    assert not runner.alive  # stopped with its worker


def test_external_runner_judges_what_a_worker_only_queued(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    register(db_url, REGISTRY)
    settings = make_settings(db_url, mqtt_url, unique_topic, rules_runner="external")
    with running_ingest(settings) as ingest:
        assert ingest.runner is None
        publish_raw(
            mqtt_url, [(topic_for(unique_topic, MN), _payload(datetime.now(UTC), a21026=99.0))]
        )
        wait_for(lambda: ingest.stats.readings_stored == 1, what="the reading stored")
        # stored and queued, and nobody here judges it
        assert scalar(db_url, "SELECT count(*) FROM rule_inbox") >= 1
        assert scalar(db_url, EXCEEDANCES, MN) == 0
        stop = threading.Event()
        found: list[object] = []
        runner = threading.Thread(
            target=lambda: found.append(run_rules(db_url, runner_config(settings), stop))
        )
        runner.start()  # as `offsite rules` runs it
        try:
            wait_for(lambda: scalar(db_url, EXCEEDANCES, MN) == 1, what="the alert")
        finally:
            stop.set()
            runner.join(30)
    assert scalar(db_url, "SELECT count(*) FROM rule_inbox") == 0
    assert [(f.judged, f.opened) for f in found] == [(1, 1)]  # type: ignore[attr-defined]


def test_offsite_rules_command_leads_reports_and_stops_on_ctrl_c(db_url: str) -> None:
    env = {**os.environ, "OFFSITE_DATABASE_URL": db_url, "OFFSITE_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "offsite.cli", "rules", "--progress", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("leading" in ln and "judged" in ln for ln in lines):
            line = proc.stdout.readline()
            assert line, f"exited early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line)
        proc.send_signal(signal.SIGINT)
        out, _err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "rule runner stopped: 0 readings judged" in out


def test_ctrl_c_through_dev_py_waits_for_the_command_to_stop(db_url: str) -> None:
    """A terminal's Ctrl-C reaches dev.py and the command it runs: dev.py waits for the
    command's clean stop (and its summary) instead of returning at once and leaving it
    behind."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OFFSITE_DATABASE_URL": db_url, "OFFSITE_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "dev.py", "offsite", "rules", "--progress", "0.2"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = ""
        while not ("leading" in line and "judged" in line):
            line = proc.stdout.readline()
            assert line, f"exited early: {proc.stderr.read() if proc.stderr else ''}"
        os.killpg(proc.pid, signal.SIGINT)  # the whole group, as a terminal does
        out, _err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0  # the command's own status, once it stopped
    assert "rule runner stopped: 0 readings judged" in out

"""Supervision of the rule runner process beside an ingest worker: a runner killed
with SIGKILL is restarted within seconds, counted and reported (metrics figures and the
worker's heartbeat row behind /healthz) and nothing stays unjudged; SIGTERM after a
runner died still ends the worker promptly and cleanly; a runner whose worker is
killed exits at once and frees the rules lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from offsite.core.registry import registry_from_dict
from offsite.runner.rule_runner import RULES_LOCK
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

MN = "0500SUPERVISED0000000001"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E5",
                "name": "Supervised Works",
                "points": [
                    {
                        "id": "E5-P1",
                        "kind": "flue_gas",
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": MN, "interval_s": 60}],
                    }
                ],
            }
        ]
    }
)
EXCEEDANCE = "SELECT coalesce(sum(count), 0) FROM alerts WHERE rule = 'exceedance' AND mn = %s"
LOCK_HELD = """SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                 AND objid = %s AND database = (SELECT oid FROM pg_database
                                                WHERE datname = current_database())"""


def _payload(value: float) -> bytes:
    return json.dumps({"ts": datetime.now(UTC).isoformat(), "values": {"a21026": value}}).encode()


def _gone(pid: int) -> bool:
    """Ended: no such process, or a zombie nobody has reaped yet (reparented)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                out.append(int(d.name))
    return out


def _runner_children(pid: int) -> list[int]:
    """The rule runner processes of a worker (not multiprocessing's resource tracker)."""
    return [
        c
        for c in _children(pid)
        if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()
    ]


def test_a_killed_runner_is_restarted_counted_reported_and_nothing_stays_unjudged(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    register(db_url, REGISTRY)
    settings = make_settings(db_url, mqtt_url, unique_topic)
    topic = topic_for(unique_topic, MN)
    with running_ingest(settings) as ingest:
        sup = ingest.runner
        assert sup is not None
        wait_for(lambda: ingest.rules_figures().leading, what="the runner leading")
        publish_raw(mqtt_url, [(topic, _payload(99.0))])
        wait_for(lambda: scalar(db_url, EXCEEDANCE, MN) == 1, what="the first alert")
        wait_for(lambda: ingest.rules_figures().opened == 1, what="the figures reported")
        first = sup.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        # what arrives while no runner runs is queued, and judged by the next one
        publish_raw(mqtt_url, [(topic, _payload(98.0))])
        wait_for(lambda: sup.pid != first and sup.alive, timeout=15, what="a new runner")
        health = wait_for(
            lambda: scalar(
                db_url,
                """SELECT (rules_runner, rules_restarts, rules_last_exit)::text
                   FROM ingest_workers WHERE worker = %s AND rules_restarts = 1
                   AND rules_runner = 'running'""",
                settings.mqtt_client_id,
            ),
            timeout=15,
            what="the restart on the worker's heartbeat row",
        )
        assert health == '(running,1,"killed by SIGKILL")'
        assert sup.health().last_exit == "killed by SIGKILL"
        wait_for(lambda: ingest.rules_figures().leading, what="the new runner leading")
        publish_raw(mqtt_url, [(topic, _payload(97.0))])
        wait_for(lambda: scalar(db_url, EXCEEDANCE, MN) == 3, what="all three judged")
        wait_for(lambda: scalar(db_url, "SELECT count(*) FROM rule_inbox") == 0, what="no queue")
        f = ingest.rules_figures()
        assert f.restarts == 1 and f.up
        # the dead runner's figures are kept: counters do not go back on a restart
        wait_for(lambda: ingest.rules_figures().judged == 3, timeout=5, what="judged counted")
        assert ingest.rules_figures().opened == 1


def _ingest_cmd(db_url: str, mqtt_url: str, topic: str) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        "OFFSITE_DATABASE_URL": db_url,
        "OFFSITE_MQTT_URL": mqtt_url,
        "OFFSITE_MQTT_TOPIC": topic,
        "OFFSITE_MQTT_CLIENT_ID": f"offsite-test-{uuid.uuid4().hex[:8]}",
        "OFFSITE_LOG_LEVEL": "INFO",
    }
    return [sys.executable, "-m", "offsite.cli", "ingest", "--progress", "0.5"], env


def test_sigterm_after_the_runner_was_killed_ends_the_worker_promptly_and_cleanly(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    cmd, env = _ingest_cmd(db_url, mqtt_url, unique_topic)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: scalar(db_url, LOCK_HELD, RULES_LOCK) == 1, what="the runner leading")
        (runner,) = _runner_children(proc.pid)
        os.kill(runner, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(
            lambda: _runner_children(proc.pid) not in ([], [runner]),
            timeout=15,
            what="the runner restarted",
        )
        print(f"\nrunner restarted {time.monotonic() - killed:.2f} s after SIGKILL")
        wait_for(lambda: scalar(db_url, LOCK_HELD, RULES_LOCK) == 1, what="the new runner leading")
        proc.send_signal(signal.SIGTERM)
        termed = time.monotonic()
        out, err = proc.communicate(timeout=40)  # compose's stop grace period
        print(f"worker exited {time.monotonic() - termed:.2f} s after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = err.decode()
    assert proc.returncode == 0, text[-2000:]
    assert "leaked semaphore" not in text
    assert "rule runner (pid" in text and "died: killed by SIGKILL" in text
    assert b"ingest stopped:" in out
    assert scalar(db_url, LOCK_HELD, RULES_LOCK) == 0


def test_sigterm_while_the_runner_is_dead_ends_the_worker_promptly(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    """The case that hung: the runner killed, and SIGTERM before anyone restarts it."""
    cmd, env = _ingest_cmd(db_url, mqtt_url, unique_topic)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: scalar(db_url, LOCK_HELD, RULES_LOCK) == 1, what="the runner leading")
        (runner,) = _runner_children(proc.pid)
        os.kill(runner, signal.SIGKILL)
        proc.send_signal(signal.SIGTERM)
        termed = time.monotonic()
        out, err = proc.communicate(timeout=40)
        print(
            f"\nworker (runner just killed) exited {time.monotonic() - termed:.2f} s after SIGTERM"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"leaked semaphore" not in err
    assert b"ingest stopped:" in out


CHILD = """
import sys, time
from offsite.runner.rule_process import RuleProcess
from offsite.runner.rule_runner import RunnerConfig
p = RuleProcess(sys.argv[1], RunnerConfig())
p.start()
print(p.pid, flush=True)
time.sleep(600)
"""


def test_a_runner_whose_worker_is_killed_exits_at_once_and_frees_the_lock(db_url: str) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None
        runner = int(worker.stdout.readline())
        wait_for(lambda: scalar(db_url, LOCK_HELD, RULES_LOCK) == 1, what="the runner leading")
        worker.kill()
        worker.wait(10)
        t0 = time.monotonic()
        wait_for(lambda: _gone(runner), timeout=10, what="the runner exiting")
        wait_for(lambda: scalar(db_url, LOCK_HELD, RULES_LOCK) == 0, timeout=5, what="lock freed")
        print(f"runner gone {time.monotonic() - t0:.2f} s after its worker was killed")
    finally:
        if worker.poll() is None:
            worker.kill()
        if not _gone(runner):
            os.kill(runner, signal.SIGKILL)
    with psycopg.connect(db_url) as conn:  # and another runner may lead now
        assert conn.execute("SELECT pg_try_advisory_lock(%s)", (RULES_LOCK,)).fetchone() == (True,)

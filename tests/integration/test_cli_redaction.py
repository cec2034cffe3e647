"""`offsite ingest` never shows a password: its start line names the broker redacted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit


def _with_password(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))


def test_ingest_start_line_redacts_the_mqtt_and_database_passwords(db_url, mqtt_url, tmp_path):
    # the test broker and database accept any password (anonymous / trust): the point is
    # what the command prints, with a real broker and database behind it
    env = {
        **os.environ,
        "OFFSITE_MQTT_URL": _with_password(mqtt_url, "ingest", "mqtt-hunter2"),
        "OFFSITE_DATABASE_URL": _with_password(db_url, "postgres", "db-hunter2"),
        "OFFSITE_DATA_DIR": str(tmp_path),
        "OFFSITE_RULES_RUNNER": "external",
        "OFFSITE_MQTT_CLIENT_ID": f"redaction-{os.getpid()}",
        "OFFSITE_LOG_FORMAT": "text",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "offsite.cli", "ingest", "--progress", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C to stop" in line:
                break
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # every thread's stack: where the stop hangs
            time.sleep(2.0)
            proc.kill()
            rest, _ = proc.communicate()
            raise AssertionError(f"ingest did not stop within 60 s of Ctrl-C:\n{rest}") from None
        lines.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    assert "ingest consuming" in out, out
    assert "ingest:***@" in out
    assert "hunter2" not in out

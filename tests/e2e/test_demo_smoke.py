"""Smoke test: ``offsite demo --duration`` on the embedded default (no OFFSITE_* URLs):
embedded PostgreSQL and broker start, readings flow, faults are caught (from 12 s on: the
spike rule needs 10 readings of history), the API answers
while it runs, and it stops by itself with a summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from offsite.embedded import free_port

pytestmark = pytest.mark.integration


def test_demo_runs_on_embedded_services_and_summarises(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFSITE_")}
    env.update(OFFSITE_HTTP_PORT=str(port), OFFSITE_DATA_DIR=str(tmp_path))
    offsite = Path(sys.executable).with_name("offsite")
    proc = subprocess.Popen(
        [
            str(offsite),
            "demo",
            "--devices",
            "6",
            "--duration",
            "25",
            "--fault-after",
            "12",
            "--progress",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    api_checked = False
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        lines.append(line.rstrip())
        if not api_checked and line.startswith("[") and "readings stored" in line:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            assert health.status_code == 200 and health.json()["database"] == "ok"
            base = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{base}/api/devices", timeout=10).status_code == 401
            password = re.search(
                r"^\s+regulator\s+(\S+)\s+regulator", "\n".join(lines), re.M
            ).group(1)
            login = httpx.post(
                f"{base}/auth/login",
                timeout=10,
                json={"username": "regulator", "password": password},
            )
            assert login.status_code == 200, login.text
            devices = httpx.get(
                f"{base}/api/devices",
                timeout=10,
                cookies={"offsite_session": login.cookies["offsite_session"]},
            ).json()
            assert len(devices) == 6
            api_checked = True
        assert time.monotonic() < deadline, "\n".join(lines)
    assert proc.wait(30) == 0, "\n".join(lines)
    out = "\n".join(lines)
    assert api_checked, out
    assert "embedded PostgreSQL" in out and "embedded MQTT broker" in out
    stored = int(re.search(r"readings stored\s+(\d+)", out.split("summary")[1]).group(1))
    assert stored > 500, out
    assert "Warning" not in out, out
    # progress lines and a summary, not the rule runner's log of every alert it opens
    assert not [line for line in lines if '"level": "info"' in line or " INFO " in line], out
    assert re.search(r"dead letters\s+3 ", out), out
    assert "exceedance: 1/1 detected" in out and "spike: 1/1 detected" in out, out


def test_demo_on_hj212_loggers_uses_the_gateway_and_dead_letters_broken_packets(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFSITE_")}
    env.update(OFFSITE_HTTP_PORT=str(free_port()), OFFSITE_DATA_DIR=str(tmp_path))
    offsite = Path(sys.executable).with_name("offsite")
    # 20 loggers for 20 s: ~400 packets, so 2 % broken is at least one (P(none) < 0.1 %)
    args = ["demo", "--protocol", "hj212", "--devices", "20", "--duration", "20"]
    done = subprocess.run(
        [str(offsite), *args], capture_output=True, text=True, env=env, timeout=180
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert re.search(r"HJ 212 gateway on 127\.0\.0\.1:\d+", out), out
    sent = re.search(
        r"HJ 212 packets sent\s+(\d+)\s+\(answered (\d+), missing (\d+), broken copies (\d+)\)",
        out,
    )
    assert sent, out
    packets, answered, missing, broken = map(int, sent.groups())
    assert packets > 200 and answered == packets and missing == 0 and broken >= 1, out
    # 2 % of packets also go out broken: each is dead-lettered for its CRC
    crc = re.search(r"hj212_crc_mismatch: (\d+)", out)
    assert (int(crc.group(1)) if crc else 0) == broken, out
    stored = int(re.search(r"readings stored\s+(\d+)", out.split("summary")[1]).group(1))
    assert stored > 300, out

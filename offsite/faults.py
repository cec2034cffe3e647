"""Fault-injection harness shared by the fault tests and ``offsite soak``: an ingest
worker in a process of its own (so it can be killed -9), and a stream of numbered
readings published at QoS 1 whose every message can be accounted for."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt

from offsite.ingest.subscriber import parse_mqtt_url

POLLUTANTS = ("a21026", "a21002", "a34013", "a19001")


class IngestProcess:
    """``offsite ingest`` as a child process, with its output in ``log``."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        self.env = {**os.environ, **env}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "offsite.cli", "ingest", "--progress", "1"],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM: commit and acknowledge what is in hand, then exit. Killed only past
        ``timeout``, longer than ingest's own stop budget (30 s for the batch in hand and
        the rule runner's queue): on a loaded machine a clean stop takes most of it."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Stream:
    """Publish ``count`` messages round-robin over ``mns`` at ``rate`` msg/s, each with
    its own device timestamp (so every stored reading is traceable to one message), and
    keep going through broker restarts: paho resends unacknowledged messages."""

    def __init__(
        self,
        mqtt_url: str,
        topic_template: str,
        mns: Sequence[str],
        count: int,
        rate: float,
        start: datetime | None = None,
    ) -> None:
        self.host, self.port, user, password = parse_mqtt_url(mqtt_url)
        self.topic_template = topic_template
        self.mns = list(mns)
        self.count = count
        self.rate = rate
        self.start_ts = start or (
            datetime.now(UTC).replace(microsecond=0)
            - timedelta(seconds=count // max(1, len(mns)) + 60)
        )
        self.sent = 0
        self.acked = 0
        self.marks: list[tuple[str, int, int]] = []  # (event, sent, acked) at that moment
        self.mids: list[int] = []  # the MQTT packet id each message was published with
        self.client_id = f"offsite-stream-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if user:
            c.username_pw_set(user, password)
        c.max_inflight_messages_set(100)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(1, 2)
        c.on_publish = self._on_publish
        self._client = c
        self._thread = threading.Thread(target=self._run, name="offsite-stream", daemon=True)

    @property
    def readings(self) -> int:
        return self.acked * len(POLLUTANTS)

    def message(self, i: int) -> tuple[str, bytes]:
        mn = self.mns[i % len(self.mns)]
        ts = self.start_ts + timedelta(seconds=i // len(self.mns))
        values = {code: round(10.0 + (i % 97) * 0.37 + k, 3) for k, code in enumerate(POLLUTANTS)}
        return (
            self.topic_template.format(mn=mn),
            json.dumps({"ts": ts.isoformat(), "values": values}).encode(),
        )

    def sequence(self, mn: str, ts: datetime) -> int:
        """The number of the message that carried ``mn``'s reading at device time ``ts``."""
        return int((ts - self.start_ts).total_seconds()) * len(self.mns) + self.mns.index(mn)

    def mark(self, event: str) -> None:
        """Note how far the stream was when ``event`` happened (for a failure's report)."""
        self.marks.append((event, self.sent, self.acked))

    def start(self) -> Stream:
        self._client.connect_async(self.host, self.port, 30)
        self._client.loop_start()
        self._thread.start()
        return self

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, reason: object, properties: object
    ) -> None:
        with self._lock:
            self.acked += 1

    def _run(self) -> None:
        t0 = time.monotonic()
        for i in range(self.count):
            if self._stop.is_set():
                return
            delay = t0 + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            topic, payload = self.message(i)
            self.mids.append(self._client.publish(topic, payload, qos=1).mid)
            self.sent += 1

    def wait(self, timeout: float) -> bool:
        """Until every message is sent and acknowledged by the broker."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sent == self.count and self.acked >= self.count:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()
        self._client.disconnect()
        self._client.loop_stop()

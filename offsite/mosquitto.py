"""A private Mosquitto: its own port, config and persistence folder, so tests and
benchmarks can restart it or configure it for lossless ingest without touching the
machine's broker.

``LOSSLESS`` is the configuration ingest's guarantees rely on (see deploy/mosquitto).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from offsite.embedded import free_port

LOSSLESS = """max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 6000
"""


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1):
            return True
    except OSError:
        return False


class OwnMosquitto:
    def __init__(self, workdir: Path, extra_config: str = "", binary: str | None = None) -> None:
        binary = binary or mosquitto_binary()
        if binary is None:
            raise RuntimeError("no mosquitto binary")
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        self.config = workdir / "mosquitto.conf"
        # Run as root, Mosquitto drops to the "mosquitto" user and then cannot write its
        # persistence file or log here (sessions silently lost on restart): stay as we are.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.config.write_text(
            f"{user}listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {workdir / 'data'}/\n"
            f"log_dest file {workdir / 'mosquitto.log'}\n{extra_config}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def scratch(cls, extra_config: str = "") -> OwnMosquitto:
        """A broker in a temporary directory of its own; ``discard`` removes it."""
        return cls(Path(tempfile.mkdtemp(prefix="offsite-mosquitto-")), extra_config)

    def discard(self) -> None:
        """Stop, and remove the working directory (persistence file and log)."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until *this* process serves the port: another process that took
        the port meanwhile (a restart leaves it free for a moment) answers connections
        too, so the broker's own "running" line after this start is what counts."""
        seen = len(self.log())
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (" running" in self._log_since(seen) and _answers(self.port)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not start on port {self.port}: {self.log()}")
            time.sleep(0.05)
        if self.proc.poll() is not None:  # it logged "running", then lost the port
            raise RuntimeError(f"mosquitto exited after starting on port {self.port}: {self.log()}")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM): Mosquitto writes its persistence file on the way out."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def kill9(self) -> None:
        """SIGKILL: no persistence written on the way out (everything accepted since the
        last ``autosave_interval`` is lost, as in a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def _log_since(self, offset: int) -> str:
        text = self.log()
        return text[offset:] if len(text) >= offset else text  # a log started afresh

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text() if path.exists() else ""

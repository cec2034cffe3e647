"""What every ``offsite`` command shares: the stop on Ctrl-C or SIGTERM, printing, and
the choices the simulators offer."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import os
import signal
import sys
import threading
import time
from types import FrameType


class Stop:
    """A stop flag set by SIGINT/SIGTERM; a second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def wait(self, timeout: float) -> bool:
        """Like ``Event.wait``, in short slices: a signal the kernel hands to another
        thread is only run by the main thread between two of its waits."""
        deadline = time.monotonic() + timeout
        while not self.event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.event.wait(min(left, 0.5))
        return True

    def install(self) -> None:
        # `kill -USR1 <pid>` prints every thread's stack: what a stuck stop is doing
        with contextlib.suppress(AttributeError, ValueError, OSError):
            faulthandler.register(signal.SIGUSR1, all_threads=True)

        def handler(signum: int, frame: FrameType | None) -> None:
            if self.event.is_set():
                raise KeyboardInterrupt
            # set first, and never print() here: a signal landing while the main thread
            # is inside print() makes a second print() raise "reentrant call", which
            # unwinds the command without stopping its threads (a hang, not a stop)
            self.event.set()
            notice("\nstopping… (Ctrl-C again to abort)\n")

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def say(*parts: object, err: bool = False) -> None:
    print(*parts, file=sys.stderr if err else sys.stdout, flush=True)


def notice(text: str) -> None:
    """Write to standard output from a signal handler: straight to the file descriptor,
    past the buffered stream the interrupted code may be in the middle of."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # no descriptor (a test's captured stdout): the stop matters, not the line
    with contextlib.suppress(OSError):
        os.write(fd, text.encode("utf-8", "replace"))


def plant_profiles() -> list[str]:
    from offsite.simulators.plant import PLANT_PROFILES

    return list(PLANT_PROFILES)


def fault_kinds() -> list[str]:
    from offsite.simulators.faults import FaultKind

    return [k.value for k in FaultKind]


def add_model_argument(p: argparse.ArgumentParser) -> None:
    """``--model``, as ``offsite demo`` and ``offsite simulate`` both take it."""
    p.add_argument(
        "--model",
        choices=["plant", "simple"],
        default="plant",
        help="device model: plant (one load drives every channel: daily cycle, wander, "
        "stops, soot blowing, fuel changes) or simple (independent channels)",
    )

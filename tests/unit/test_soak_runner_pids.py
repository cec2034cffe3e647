"""The soak finds a worker's rule runners wherever they were started: a runner restarted
by the supervisor's thread is that thread's child in /proc, not the main thread's."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

from offsite.soak import _runner_pids


def _sleep() -> None:
    time.sleep(30)


def test_runner_started_from_another_thread_is_found() -> None:
    ctx = multiprocessing.get_context("spawn")
    procs: list = []
    started, done = threading.Event(), threading.Event()

    def start() -> None:  # the thread lives on, as the supervisor's does
        p = ctx.Process(target=_sleep, daemon=True)
        p.start()
        procs.append(p)
        started.set()
        done.wait(30)

    t = threading.Thread(target=start)
    t.start()
    started.wait(30)
    try:
        # the child shows spawn_main once it has exec'd: under load, a moment after start
        deadline = time.monotonic() + 20
        while procs[0].pid not in _runner_pids(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert procs[0].pid in _runner_pids(os.getpid())
    finally:
        done.set()
        t.join()
        procs[0].kill()
        procs[0].join()

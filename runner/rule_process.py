"""The rule runner in a process of its own, started beside an ingest worker, and watched.

Why a process and not a thread: ingest (paho's network thread, decoding, COPY) and rule
evaluation are both CPU-bound Python. In one process they share one GIL, so every
millisecond the engine spends is a millisecond ingest does not get, and the engine's
state (a window and fingerprints for every series) sits in the ingest worker's memory.
In its own process the engine runs on another core and its memory is its own, so the
worker's footprint no longer grows with the rule state.

Nothing crosses between the two but a pipe and a few counters, and nothing that can
block: the worker holds the write end of a pipe whose read end the runner watches — a
byte means "judge what is queued and stop", end-of-file means the worker is gone, so
the runner stops at once and its lock goes with its connection. The counters are plain
shared memory without a lock (a runner killed while holding a lock would block every
reader of it). The worker waits on the process's sentinel, never on a primitive a dead
process may hold; that is what hung a SIGTERM after a runner was SIGKILLed, and what
left "leaked semaphore objects" behind.

``RuleSupervisor`` restarts a runner that dies, says why, and counts it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import Any

from offsite.runner.rule_runner import RuleRunner, RunnerConfig

log = logging.getLogger("offsite.rules")
FIGURES = ("leading", "judged", "late", "opened", "cleared")
REPORT_S = 0.1  # how often the runner's counters reach the worker
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
ORPHAN_EXIT_S = 3.0  # a runner whose worker is gone exits by force after this long
RESTART_S = 1.0  # first delay before restarting a dead runner …
RESTART_MAX_S = 30.0  # … doubling while it keeps dying within STABLE_S of its start
STABLE_S = 60.0
REPORT_AGAIN_S = 15.0  # the runner's state is written again this often, changed or not


@dataclass(frozen=True, slots=True)
class RulesFigures:
    """What the worker shows of its rule runner: progress lines, metrics, tests."""

    leading: bool = False
    judged: int = 0  # readings judged while leading
    late: int = 0  # readings judged after a newer one of their series
    opened: int = 0  # alerts opened or reopened
    cleared: int = 0
    restarts: int = 0  # runner processes that died and were started again
    up: bool = False  # a runner process is running


@dataclass(frozen=True, slots=True)
class RunnerHealth:
    """The supervision side, for /healthz: 'running', 'restarting' or 'stopped'."""

    state: str
    restarts: int
    last_exit: str | None  # why the last runner process ended, e.g. "killed by SIGKILL"


def new_counts() -> Any:
    """Shared counters a runner reports its figures in (see ``run_rules``); no lock."""
    return mp.get_context("spawn").RawArray("q", len(FIGURES))


def figures_in(counts: Any) -> RulesFigures:
    v = list(counts)  # 8-byte aligned words: each read whole; figures may be a tick apart
    return RulesFigures(bool(v[0]), *v[1:])


def describe_exit(code: int | None) -> str:
    """A process's exit, as a log line or /healthz says it."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def restart_delay(previous: float, lived_s: float, restarts: int) -> float:
    """How long to wait before restarting a runner that lived ``lived_s``: RESTART_S,
    doubling up to RESTART_MAX_S while each dies within STABLE_S of its start (a crash
    loop, e.g. a bad rules file, should not spin), back to RESTART_S once one lived."""
    if restarts and lived_s < STABLE_S:
        return min(previous * 2, RESTART_MAX_S)
    return RESTART_S


class RuleProcess:
    """Starts and stops one rule runner process."""

    def __init__(
        self,
        database_url: str,
        config: RunnerConfig,
        *,
        log_level: str = "INFO",
        log_format: str = "auto",
    ) -> None:
        # spawned, not forked: a fork of a process running paho's and the pool's threads
        # may inherit a held lock, and the runner starts as clean as its own command does
        ctx = mp.get_context("spawn")
        self._counts: Any = new_counts()
        reader, self._writer = ctx.Pipe(duplex=False)
        self._reader: Connection | None = reader
        self._proc = ctx.Process(
            target=run_child,
            name="offsite-rules",
            daemon=True,
            args=(database_url, config, self._counts, reader, log_level, log_format),
        )

    def start(self) -> None:
        self._proc.start()
        if self._reader is not None:  # the child has its own copy now
            self._reader.close()
            self._reader = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.is_alive()

    @property
    def sentinel(self) -> int:
        """Readable once the process has ended (for ``multiprocessing.connection.wait``)."""
        return self._proc.sentinel

    @property
    def exitcode(self) -> int | None:
        return self._proc.exitcode

    def figures(self) -> RulesFigures:
        return replace(figures_in(self._counts), up=self.alive)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the runner to judge what is queued and exit; terminate it, then kill it,
        if it will not. Never blocks for longer than ``timeout`` + 6 s."""
        with contextlib.suppress(OSError):  # the runner is gone already (its end closed)
            self._writer.send_bytes(b"stop")
        if self._proc.pid is None:
            self._writer.close()
            return
        self._proc.join(timeout)
        if self._proc.is_alive():
            log.warning(
                "rule runner did not stop within %.0f s; terminating it (the "
                "queue it held is judged by the next runner)",
                timeout,
            )
            self._proc.terminate()
            self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(1)
        self._writer.close()


class RuleSupervisor:
    """Keeps a rule runner process running beside a worker: restarts one that dies
    (within ``RESTART_S``, backing off while it keeps dying young), logs why, counts
    restarts, and tells ``on_change`` (the worker's heartbeat row, for /healthz)."""

    def __init__(
        self,
        database_url: str,
        config: RunnerConfig,
        *,
        log_level: str = "INFO",
        log_format: str = "auto",
        on_change: Callable[[RunnerHealth], None] = lambda h: None,
    ) -> None:
        self._make = lambda: RuleProcess(
            database_url, config, log_level=log_level, log_format=log_format
        )
        self.on_change = on_change
        self.proc: RuleProcess | None = None
        self.restarts = 0
        self.last_exit: str | None = None
        self._state = "stopped"
        self._base = RulesFigures()  # the figures of runners that died, summed
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # a thread lock of this process only
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            self.proc = self._make()
            self.proc.start()
            self._state = "running"
        self._thread = threading.Thread(target=self._watch, name="offsite-rules-watch", daemon=True)
        self._thread.start()
        self._changed()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive

    def health(self) -> RunnerHealth:
        return RunnerHealth(self._state, self.restarts, self.last_exit)

    def figures(self) -> RulesFigures:
        with self._lock:
            b, proc = self._base, self.proc
        f = proc.figures() if proc is not None else RulesFigures()
        return RulesFigures(
            f.leading,
            b.judged + f.judged,
            b.late + f.late,
            b.opened + f.opened,
            b.cleared + f.cleared,
            self.restarts,
            f.up,
        )

    def _changed(self) -> None:
        try:
            self.on_change(self.health())
        except Exception as exc:  # reporting must never stop the supervision
            log.debug("rule runner state not reported: %s", exc)

    def _watch(self) -> None:
        delay = RESTART_S
        started = reported = time.monotonic()
        while not self._stopping.is_set():
            proc = self.proc
            assert proc is not None
            if proc.pid is not None:  # None: its start failed, below
                wait([proc.sentinel], timeout=1.0)
            if self._stopping.is_set():
                return
            if proc.alive:
                if time.monotonic() - reported > REPORT_AGAIN_S:  # a report lost to an outage
                    self._changed()
                    reported = time.monotonic()
                continue
            proc.stop(0)  # reap it and close our end of its pipe; returns at once
            why = describe_exit(proc.exitcode) if proc.pid is not None else "could not start"
            delay = restart_delay(delay, time.monotonic() - started, self.restarts)
            with self._lock:
                f = proc.figures()
                b = self._base
                self._base = RulesFigures(
                    False,
                    b.judged + f.judged,
                    b.late + f.late,
                    b.opened + f.opened,
                    b.cleared + f.cleared,
                )
                self.last_exit, self._state = why, "restarting"
            log.error(
                "rule runner (pid %s) died: %s; restarting it in %.0f s (what it had "
                "taken is still queued and is judged again)",
                proc.pid,
                why,
                delay,
            )
            self._changed()
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self.proc = self._make()
                self.restarts += 1
                try:
                    self.proc.start()
                    self._state = "running"
                except Exception as exc:  # cannot spawn (out of memory, fds…): try again
                    log.error("rule runner could not be started: %s", exc)
            started = time.monotonic()
            if self.proc.pid is not None:
                log.warning(
                    "rule runner restarted (pid %s), restart %d", self.proc.pid, self.restarts
                )
            self._changed()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop supervising, then stop the runner (see ``RuleProcess.stop``)."""
        with self._lock:
            self._stopping.set()
            proc = self.proc
        if self._thread is not None:
            self._thread.join(2)
        if proc is not None:
            proc.stop(timeout)
        self._state = "stopped"
        self._changed()


def release_freed_memory() -> None:
    """Have glibc hand large freed blocks back to the system at once.

    Each round the engine makes numpy temporaries over every series judged (tens of MB
    at 10,000 devices). glibc serves blocks that large by mmap, but after the first is
    freed it raises its mmap threshold, and later ones come from the heap, which it
    seldom returns: the process kept ~140 MB it did not use. A fixed threshold
    (mallopt M_MMAP_THRESHOLD, which also stops the adjusting) keeps them mmapped.
    Elsewhere than glibc this does nothing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 256 * 1024)
    except (OSError, AttributeError):
        pass


def run_child(
    database_url: str,
    config: RunnerConfig,
    counts: Any,
    stop_pipe: Connection,
    log_level: str,
    log_format: str,
) -> None:
    """The runner process: lead when it can, report its counters, stop when asked or,
    at once, when the worker that started it is gone."""
    # Ctrl-C reaches the whole process group; the worker decides when we stop (after its
    # last commit), so a SIGINT here must not cut the final judging short
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from offsite.core.logs import setup_logging

    setup_logging(log_level, fmt=log_format)  # type: ignore[arg-type]
    release_freed_memory()
    stop = threading.Event()
    hurry = threading.Event()

    def watch() -> None:
        try:
            stop_pipe.recv_bytes()  # the worker asks: judge what is queued, then exit
        except (EOFError, OSError):  # the worker's end closed: it is gone
            log.warning(
                "rule runner: the ingest worker that started it is gone; stopping now "
                "(what is queued is judged by the next runner)"
            )
            hurry.set()
            stop.set()
            time.sleep(ORPHAN_EXIT_S)  # a daemon thread: returns only if still running
            os._exit(1)  # a judging step stuck on a dead server; the lock goes too
        stop.set()

    threading.Thread(target=watch, name="offsite-rules-watch", daemon=True).start()
    run_rules(database_url, config, stop, counts, hurry)


def run_rules(
    database_url: str,
    config: RunnerConfig,
    stop: threading.Event,
    counts: Any = None,
    hurry: threading.Event | None = None,
) -> RulesFigures:
    """Run a rule runner until ``stop`` (also ``offsite rules`` in the foreground);
    ``counts``, if given, receives its figures every ``REPORT_S``; ``hurry`` stops it
    without judging what is left."""
    opened = cleared = 0

    def on_events(events: list[tuple[int, str]]) -> None:
        nonlocal opened, cleared
        for alert_id, kind in events:
            if kind in ("opened", "reopened"):
                opened += 1
                log.info("alert %d %s", alert_id, kind)
            elif kind == "cleared":
                cleared += 1

    runner = RuleRunner(database_url, config, on_events)

    def figures() -> RulesFigures:
        return RulesFigures(runner.leading, runner.judged, runner.late, opened, cleared)

    def report() -> None:
        if counts is None:
            return
        f = figures()
        counts[:] = [int(f.leading), f.judged, f.late, f.opened, f.cleared]

    done = threading.Event()

    def reporter() -> None:
        while not done.wait(REPORT_S):
            report()

    threading.Thread(target=reporter, name="offsite-rules-report", daemon=True).start()
    try:
        runner.run(stop, hurry)
    finally:
        done.set()
        report()
    return figures()

"""The rule runner in a process of its own, started beside an ingest worker.

Why a process and not a thread: ingest (paho's network thread, decoding, COPY) and rule
evaluation are both CPU-bound Python. In one process they share one GIL, so every
millisecond the engine spends is a millisecond ingest does not get, and the engine's
state (a window and fingerprints for every series) sits in the ingest worker's memory.
In its own process the engine runs on another core and its memory is its own, so the
worker's footprint no longer grows with the rule state.

Nothing crosses between the two but a stop event and a few counters: the worker queues
what it stores in PostgreSQL (``store.rule_inbox``) and the runner, whichever process
leads, takes it from there. Stopping keeps the order the guarantees need: the worker
commits what it holds first, then the runner judges the rest of the queue, then exits.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import signal
import threading
from dataclasses import dataclass
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Event
from typing import Any

from offsite.core.errors import RetryStopped
from offsite.core.retry import Backoff, retry
from offsite.runner.rule_runner import RuleRunner, RunnerConfig

log = logging.getLogger("offsite.rules")
FIGURES = ("leading", "judged", "late", "opened", "cleared")
REPORT_S = 0.1  # how often the runner's counters reach the worker
START_RETRY_S = 2.0
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


@dataclass(frozen=True, slots=True)
class RulesFigures:
    """What the worker shows of its rule runner: progress lines, metrics, tests."""

    leading: bool = False
    judged: int = 0  # readings judged while leading
    late: int = 0  # readings judged after a newer one of their series
    opened: int = 0  # alerts opened or reopened
    cleared: int = 0


def new_counts() -> Any:
    """Shared counters a runner reports its figures in (see ``run_rules``)."""
    return mp.get_context("spawn").Array("q", len(FIGURES))


def figures_in(counts: Any) -> RulesFigures:
    with counts.get_lock():
        v = list(counts)
    return RulesFigures(bool(v[0]), *v[1:])


class RuleProcess:
    """Starts, watches and stops the rule runner's process."""

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
        self._stop: Event = ctx.Event()
        self._counts: Any = new_counts()
        self._proc = ctx.Process(
            target=run_child,
            name="offsite-rules",
            daemon=True,
            args=(database_url, config, self._counts, self._stop, log_level, log_format),
        )

    def start(self) -> None:
        self._proc.start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.is_alive()

    def figures(self) -> RulesFigures:
        return figures_in(self._counts)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the runner to judge what is queued and exit; kill it if it will not."""
        self._stop.set()
        if self._proc.pid is None:
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
    counts: SynchronizedArray[int],
    stop_asked: Event,
    log_level: str,
    log_format: str,
) -> None:
    """The runner process: lead when it can, report its counters, stop when asked or
    when the worker that started it is gone."""
    # Ctrl-C reaches the whole process group; the worker decides when we stop (after its
    # last commit), so a SIGINT here must not cut the final judging short
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from offsite.core.logs import setup_logging

    setup_logging(log_level, fmt=log_format)  # type: ignore[arg-type]
    release_freed_memory()
    stop = threading.Event()
    parent = mp.parent_process()

    def watch() -> None:
        while not stop_asked.wait(0.5):
            if parent is not None and not parent.is_alive():
                log.warning("rule runner: the ingest worker that started it is gone; stopping")
                break
        stop.set()

    threading.Thread(target=watch, name="offsite-rules-watch", daemon=True).start()
    run_rules(database_url, config, stop, counts)


def run_rules(
    database_url: str,
    config: RunnerConfig,
    stop: threading.Event,
    counts: SynchronizedArray[int] | None = None,
) -> RulesFigures:
    """Run a rule runner until ``stop`` (also ``offsite rules`` in the foreground);
    ``counts``, if given, receives its figures every ``REPORT_S``."""
    from offsite.store.errors import StoreUnavailable, unavailable
    from offsite.store.pool import open_pool

    opened = cleared = 0

    def on_events(events: list[tuple[int, str]]) -> None:
        nonlocal opened, cleared
        for alert_id, kind in events:
            if kind in ("opened", "reopened"):
                opened += 1
                log.info("alert %d %s", alert_id, kind)
            elif kind == "cleared":
                cleared += 1

    try:
        pool = retry(
            lambda: open_pool(database_url, max_size=2, name="offsite-rules"),
            retry_on=lambda exc: isinstance(exc, StoreUnavailable),
            backoff=Backoff(START_RETRY_S, 1, START_RETRY_S),
            sleep=stop.wait,
            on_retry=lambda exc, delay: log.warning(
                "rule runner: %s; retrying in %.0f s", exc, delay
            ),
        )
    except RetryStopped:
        return RulesFigures()
    runner = RuleRunner(database_url, pool, config, on_events, unavailable)

    def figures() -> RulesFigures:
        eng = runner.engine
        return RulesFigures(runner.leading, runner.judged, eng.late if eng else 0, opened, cleared)

    def report() -> None:
        if counts is None:
            return
        f = figures()
        with counts.get_lock():
            counts[:] = [int(f.leading), f.judged, f.late, f.opened, f.cleared]

    done = threading.Event()

    def reporter() -> None:
        while not done.wait(REPORT_S):
            report()

    threading.Thread(target=reporter, name="offsite-rules-report", daemon=True).start()
    try:
        runner.run(stop)
    finally:
        done.set()
        report()
        pool.close()
    return figures()

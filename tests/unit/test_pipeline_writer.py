"""The pipeline's writer thread: a batch's transaction runs while the next batch is
taken, batches commit and are acknowledged in order, the batch being written still
holds the idle watermark back, and a bug in the writer is raised in the pipeline.

The store functions are replaced by recorders here, to control when a transaction
ends; the same pipeline against a real PostgreSQL and Mosquitto is tested in
tests/integration (test_ingest_store, test_faults, test_workers_same_alerts)."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from offsite.core.readings import InboundMessage
from offsite.ingest import pipeline as pl
from offsite.ingest.batcher import Batcher
from offsite.ingest.validate import Policy

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
MN = "010000A8900016F000169DC0"


class _Conn:
    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield


class _Pool:
    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[_Conn]:
        yield _Conn()


class Store:
    """Records what the pipeline writes; ``gate`` holds the first transaction open."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[float]] = []
        self.through: list[datetime] = []
        self.fail: Exception | None = None

    def insert_readings(self, conn: Any, readings: list, received: list) -> list:
        self.entered.set()
        assert self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
        self.batches.append([r.value for r in readings])
        return list(readings)

    def committed_through(self, conn: Any, worker: str, through: datetime) -> None:
        self.through.append(through)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Store:
    s = Store()
    monkeypatch.setattr(pl, "insert_readings", s.insert_readings)
    monkeypatch.setattr(pl, "committed_through", s.committed_through)
    for name in ("insert_dead_letters", "insert_packets", "queue_for_rules"):
        monkeypatch.setattr(pl, name, lambda *a, **k: None)
    return s


def _msg(i: int) -> InboundMessage:
    payload = json.dumps({"ts": T0.isoformat(), "values": {"a21026": float(i)}}).encode()
    return InboundMessage(f"devices/{MN}/telemetry", payload, T0 + timedelta(seconds=i), mid=i + 1)


def _pipeline(acked: list[int]) -> pl.Pipeline:
    p = pl.Pipeline(
        _Pool(),
        Policy(max_age=timedelta(days=36500)),  # type: ignore[arg-type]
        Batcher(2, 60.0),
        lambda m: acked.append(m.mid),
    )
    p.known = {MN: object()}  # type: ignore[dict-item]
    return p


def test_the_next_batch_is_taken_while_one_is_written_and_acks_keep_their_order(
    store: Store,
) -> None:
    acked: list[int] = []
    p = _pipeline(acked)
    p._take(_msg(0), None)
    p._take(_msg(1), None)  # batch 1 closes and goes to the writer, which blocks
    assert store.entered.wait(5)
    p._take(_msg(2), None)  # taken here while batch 1 is still being written
    assert acked == [] and p.stats.messages == 3
    # batch 1 holds the idle watermark back, and counts in the backlog
    assert p._in_hand_since() == _msg(0).received_at
    assert p.backlog()[0] == 3
    # batch 2's own promise leaves batch 1 out: it commits first
    assert p._through() == _msg(2).received_at
    store.gate.set()
    p._take(_msg(3), None)  # batch 2 closes: handed over once batch 1 is settled
    p._reap(keep=0)
    assert store.batches == [[0.0, 1.0], [2.0, 3.0]]
    assert acked == [1, 2, 3, 4]
    assert p.stats.readings_stored == 4 and p.stats.batches == 2
    assert p._in_hand_since() is None


def test_a_bug_in_the_writer_is_raised_in_the_pipeline_thread(store: Store) -> None:
    acked: list[int] = []
    p = _pipeline(acked)
    store.fail = RuntimeError("a bug, not the database")
    store.gate.set()
    p._take(_msg(0), None)
    p._take(_msg(1), None)
    with pytest.raises(RuntimeError, match="a bug"):
        p._reap(keep=0)
    assert acked == []  # nothing committed, nothing acknowledged


def test_an_idle_promise_never_passes_a_message_stamped_while_it_is_made(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing in hand: the promise is "now, less a margin". A message the subscriber
    stamps just after the pipeline looked, while the pipeline thread is descheduled
    for longer than the margin, must still be after the promise: the broken order
    (look, then read the clock) let three in-process workers judge a reading late."""
    p = _pipeline([])
    stamped: list[datetime] = []
    looked = p._in_hand_since

    def look_then_lose_the_cpu(writing: bool = True) -> datetime | None:
        seen = looked(writing)
        stamped.append(datetime.now(UTC))  # the subscriber stamps a message now
        threading.Event().wait(0.15)  # 3 × the margin without the GIL
        return seen

    monkeypatch.setattr(p, "_in_hand_since", look_then_lose_the_cpu)
    through = p._through()
    assert stamped and through < stamped[0]


def test_while_the_writer_is_busy_the_open_batch_keeps_filling_past_its_deadline(
    store: Store,
) -> None:
    """Closed on time (or on an idle inbox) while the batch before is still being
    written, a batch only waited for the writer, and the next commit held fewer
    readings: under load batches were cut at the timer to 60 % of the size limit. Now
    the open batch stays open until the writer is free (or the size closes it), and is
    handed over then."""
    acked: list[int] = []
    p = pl.Pipeline(
        _Pool(),
        Policy(max_age=timedelta(days=36500)),  # type: ignore[arg-type]
        Batcher(3, 0.01),
        lambda m: acked.append(m.mid),
        idle_flush_s=0.005,
    )
    p.known = {MN: object()}  # type: ignore[dict-item]
    for name in ("refresh_registry", "_refresh_revoked", "_sweep_splits", "_beat", "_mark_idle"):
        setattr(p, name, lambda *a: None)
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    stop = threading.Event()
    loop = threading.Thread(target=p.run, args=(inbox, stop), daemon=True)
    loop.start()
    try:
        for i in range(3):  # batch 1 closes on size; its transaction is held open
            inbox.put(_msg(i))
        assert store.entered.wait(5)
        inbox.put(_msg(3))
        threading.Event().wait(0.2)  # 20 × the deadline, 40 × the idle flush
        assert [m.mid for m in p.batcher.pending()] == [4]  # still open, not handed over
        inbox.put(_msg(4))
        threading.Event().wait(0.05)
        assert [m.mid for m in p.batcher.pending()] == [4, 5]
        store.gate.set()  # the writer is free: the open batch is due and goes
        deadline = time.monotonic() + 5
        while len(acked) < 5 and time.monotonic() < deadline:
            threading.Event().wait(0.01)
    finally:
        store.gate.set()
        stop.set()
        loop.join(10)
    assert store.batches == [[0.0, 1.0, 2.0], [3.0, 4.0]]
    assert acked == [1, 2, 3, 4, 5]


def test_the_wait_for_a_busy_writer_is_counted(store: Store) -> None:
    """A batch closed on size while the writer still holds the one before waits to be
    handed over; that wait is counted (``offsite_ingest_writer_wait_seconds``): when it
    grows with the clock, the database is what limits ingest, not the broker."""
    p = _pipeline([])
    p._take(_msg(0), None)
    p._take(_msg(1), None)  # batch 1 with the writer, held open
    assert store.entered.wait(5)
    p._take(_msg(2), None)
    assert p.stats.writer_wait_s == 0.0
    taker = threading.Thread(target=p._take, args=(_msg(3), None))
    taker.start()  # batch 2 is full: waits for the writer
    threading.Event().wait(0.1)
    store.gate.set()
    taker.join(10)
    p._reap(keep=0)
    assert store.batches == [[0.0, 1.0], [2.0, 3.0]]
    assert p.stats.writer_wait_s >= 0.1

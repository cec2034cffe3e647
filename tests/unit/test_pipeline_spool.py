"""The pipeline's use of the spool, the database replaced by a recorder that can be
"down": a batch the database cannot take goes to the spool and is acknowledged only
then; later batches follow it there while it holds anything (arrival order); a full
spool acknowledges nothing (the broker keeps the rest). The real thing, against a
crashed PostgreSQL and a SIGKILLed Mosquitto, is tests/integration/test_spool.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from offsite.ingest import pipeline as pl
from offsite.ingest.batcher import Batch
from offsite.ingest.spool import Spool, encode_record
from tests.unit.test_pipeline_writer import T0, _msg


class _Conn:
    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield


class _Pool:
    def __init__(self) -> None:
        self.down = False

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[_Conn]:
        if self.down:
            raise psycopg.OperationalError("connection refused")
        yield _Conn()


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    values: list[float] = []

    def insert_readings(conn: Any, readings: list, received: list) -> list:
        values.extend(r.value for r in readings)
        return list(readings)

    monkeypatch.setattr(pl, "insert_readings", insert_readings)
    for name in ("insert_dead_letters", "insert_packets", "queue_for_rules", "committed_through"):
        monkeypatch.setattr(pl, name, lambda *a, **k: None)
    return values


def _batch(p: pl.Pipeline, *idx: int) -> Batch:
    for i in idx:
        out = p.batcher.add(_msg(i), pl.process(_msg(i), p.known, p.policy, p.revoked), 0.0)
        assert out is None
    b = p.batcher.flush()
    assert b is not None
    return b


def _pipeline(pool: _Pool, spool: Spool, acked: list[int]) -> pl.Pipeline:
    from offsite.ingest.batcher import Batcher
    from offsite.ingest.validate import Policy

    p = pl.Pipeline(
        pool,  # type: ignore[arg-type]
        Policy(max_age=timedelta(days=36500)),
        Batcher(1000, 60.0),
        lambda m: acked.append(m.mid),
        spool=spool,
    )
    p.known = {_msg(0).topic.split("/")[1]: object()}  # type: ignore[dict-item]
    return p


def test_database_down_spool_then_ack_and_order_kept(tmp_path: Path, stored: list[float]) -> None:
    sp = Spool(tmp_path / "w", 10**6)
    sp.open()
    sp.resume(None)
    pool, acked = _Pool(), []  # type: ignore[var-annotated]
    p = _pipeline(pool, sp, acked)
    p._write(_batch(p, 0, 1), {}, T0, threading.Event())
    assert stored == [0.0, 1.0] and acked == [1, 2] and not sp.pending
    pool.down = True
    p._write(_batch(p, 2, 3), {}, T0, threading.Event())  # fails once, goes to the spool
    assert acked == [1, 2, 3, 4] and sp.pending_records == 2 and p.stats.spooled == 2
    pool.down = False  # back, but the spool holds older messages: this one joins them
    p._write(_batch(p, 4), {}, T0, threading.Event())
    assert stored == [0.0, 1.0] and acked == [1, 2, 3, 4, 5] and sp.pending_records == 3
    assert [m.payload for m, _ in sp.read(sp.mark, 10)] == [_msg(i).payload for i in (2, 3, 4)]
    assert p._in_hand_since() == _msg(2).received_at  # the rule runner waits for them
    sp.close()


def test_full_spool_acknowledges_nothing(tmp_path: Path, stored: list[float]) -> None:
    one = len(encode_record(_msg(0)))
    sp = Spool(tmp_path / "w", one * 2)
    sp.open()
    sp.resume(None)
    pool, acked = _Pool(), []  # type: ignore[var-annotated]
    pool.down = True
    p = _pipeline(pool, sp, acked)
    p._write(_batch(p, 0, 1), {}, T0, threading.Event())
    assert acked == [1, 2]
    stop = threading.Event()
    stop.set()  # shutting down while full: left to the broker, not acknowledged
    p._write(_batch(p, 2), {}, T0, stop)
    assert acked == [1, 2] and sp.figures.refused_full >= 1 and stored == []
    sp.close()


def test_database_down_split_sweep_does_not_hold_live_messages(
    tmp_path: Path, stored: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The split-packet sweep comes due while the database is away: it is skipped, and
    the messages arriving meanwhile still reach the spool and are acknowledged (it used
    to retry with backoff on the pipeline thread, so nothing was taken until it was back)."""
    import queue
    import time

    sp = Spool(tmp_path / "w", 10**6)
    sp.open()
    sp.resume(None)
    pool, acked = _Pool(), []  # type: ignore[var-annotated]
    pool.down = True
    p = _pipeline(pool, sp, acked)
    monkeypatch.setattr(pl, "expire_parts", lambda conn, older: [])
    inbox: queue.Queue = queue.Queue()
    for i in range(3):
        inbox.put(_msg(i))
    stop = threading.Event()
    t = threading.Thread(target=p.run, args=(inbox, stop), daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while len(acked) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    before_stop = list(acked)
    stop.set()
    t.join(10)
    assert before_stop == [1, 2, 3] and sp.pending_records == 3
    sp.close()

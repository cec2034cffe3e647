"""offsite.ingest.batcher: group processed messages into batches; the caller owns the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from offsite.core.readings import DeadLetter, DeadReason, InboundMessage, Outcome, Reading
from offsite.ingest.batcher import Batch, Batcher

T0 = datetime(2026, 11, 26, tzinfo=UTC)


def message(i: int) -> InboundMessage:
    return InboundMessage(f"devices/MN{i}/telemetry", b"{}", T0 + timedelta(seconds=i), mid=i)


def outcome(i: int, n: int, dead: bool = False) -> Outcome:
    readings = [Reading(T0, f"MN{i}", f"a2100{k}", float(k)) for k in range(n)]
    dl = (
        DeadLetter(f"devices/MN{i}/telemetry", b"{}", T0, DeadReason.BAD_VALUE, "x")
        if dead
        else None
    )
    return Outcome(readings=readings, dead=dl)


@pytest.mark.parametrize(
    ("readings", "delay", "messages"),
    [(0, 1.0, 10), (1, 0.0, 10), (1, -1.0, 10), (1, 1.0, 0), (-5, 1, 1)],
)
def test_invalid_limits_raise(readings, delay, messages):
    with pytest.raises(ValueError):
        Batcher(readings, delay, messages)


def test_empty_batcher_has_nothing_due():
    b = Batcher(10, 1.0)
    assert b.deadline() is None
    assert b.poll(1e9) is None
    assert b.flush() is None


def test_closes_at_max_readings():
    b = Batcher(max_readings=5, max_delay_s=100.0)
    assert b.add(message(1), outcome(1, 2), now=0.0) is None
    assert b.add(message(2), outcome(2, 2), now=0.1) is None
    batch = b.add(message(3), outcome(3, 2), now=0.2)
    assert isinstance(batch, Batch)
    assert [m.mid for m in batch.messages] == [1, 2, 3]
    assert len(batch) == 3
    assert len(batch.readings) == 6  # the message that crossed the limit is included whole
    assert b.deadline() is None and b.flush() is None  # a fresh batch was started


def test_exactly_max_readings_closes():
    b = Batcher(max_readings=3, max_delay_s=100.0)
    batch = b.add(message(1), outcome(1, 3), now=0.0)
    assert batch is not None and len(batch.readings) == 3


def test_closes_at_max_messages_even_without_readings():
    b = Batcher(max_readings=1000, max_delay_s=100.0, max_messages=3)
    assert b.add(message(1), outcome(1, 0, dead=True), now=0.0) is None
    assert b.add(message(2), outcome(2, 0, dead=True), now=0.0) is None
    batch = b.add(message(3), outcome(3, 1), now=0.0)
    assert batch is not None and len(batch) == 3 and len(batch.dead) == 2


def test_closes_after_max_delay_on_poll():
    b = Batcher(max_readings=1000, max_delay_s=0.5)
    b.add(message(1), outcome(1, 1), now=10.0)
    b.add(message(2), outcome(2, 1), now=10.3)
    assert b.deadline() == pytest.approx(10.5)  # measured from the oldest message
    assert b.poll(10.49) is None
    batch = b.poll(10.5)
    assert batch is not None and len(batch) == 2
    assert batch.opened_at == 10.0
    assert b.poll(100.0) is None


def test_add_after_the_deadline_closes_with_the_new_message():
    b = Batcher(max_readings=1000, max_delay_s=0.5)
    b.add(message(1), outcome(1, 1), now=0.0)
    batch = b.add(message(2), outcome(2, 1), now=0.6)
    assert batch is not None and [m.mid for m in batch.messages] == [1, 2]


def test_a_held_batch_closes_on_size_only():
    """``hold``: the writer is busy with the batch before; past its deadline the batch
    stays open (closing it would not commit it sooner), until the size closes it or an
    add without hold finds it due."""
    b = Batcher(max_readings=6, max_delay_s=0.5)
    assert b.add(message(1), outcome(1, 2), now=0.0, hold=True) is None
    assert b.add(message(2), outcome(2, 2), now=5.0, hold=True) is None  # past due, held
    batch = b.add(message(3), outcome(3, 2), now=5.1, hold=True)  # full: closes
    assert batch is not None and [m.mid for m in batch.messages] == [1, 2, 3]
    assert b.add(message(4), outcome(4, 1), now=6.0, hold=True) is None
    batch = b.add(message(5), outcome(5, 1), now=6.6)  # the writer is free: due, closes
    assert batch is not None and [m.mid for m in batch.messages] == [4, 5]


def test_deadline_restarts_with_the_next_batch():
    b = Batcher(max_readings=2, max_delay_s=1.0)
    assert b.add(message(1), outcome(1, 2), now=5.0) is not None
    assert b.deadline() is None
    b.add(message(2), outcome(2, 1), now=7.0)
    assert b.deadline() == pytest.approx(8.0)


def test_flush_returns_the_open_batch_once():
    b = Batcher(max_readings=1000, max_delay_s=100.0)
    b.add(message(1), outcome(1, 1), now=0.0)
    batch = b.flush()
    assert batch is not None and len(batch) == 1
    assert b.flush() is None
    assert b.deadline() is None


def test_received_is_aligned_with_readings():
    b = Batcher(max_readings=1000, max_delay_s=100.0)
    b.add(message(1), outcome(1, 2), now=0.0)
    b.add(message(2), outcome(2, 0, dead=True), now=0.0)
    b.add(message(3), outcome(3, 3), now=0.0)
    batch = b.flush()
    assert len(batch.received) == len(batch.readings) == 5
    assert batch.received == [message(1).received_at] * 2 + [message(3).received_at] * 3
    assert [r.mn for r in batch.readings] == ["MN1", "MN1", "MN3", "MN3", "MN3"]


def test_dead_letters_are_carried_with_their_messages():
    b = Batcher(max_readings=1000, max_delay_s=100.0)
    b.add(message(1), outcome(1, 1, dead=True), now=0.0)
    b.add(message(2), outcome(2, 1), now=0.0)
    b.add(message(3), outcome(3, 0, dead=True), now=0.0)
    batch = b.flush()
    assert [d.topic for d in batch.dead] == ["devices/MN1/telemetry", "devices/MN3/telemetry"]
    assert len(batch.messages) == 3  # every message is acked with its batch


def test_batches_do_not_share_lists():
    b = Batcher(max_readings=1, max_delay_s=100.0)
    first = b.add(message(1), outcome(1, 1), now=0.0)
    second = b.add(message(2), outcome(2, 1), now=0.0)
    assert first is not second
    assert [m.mid for m in first.messages] == [1]
    assert [m.mid for m in second.messages] == [2]

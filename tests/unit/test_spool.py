"""The ingest spool: record codec and segment bookkeeping (pure, with hypothesis), and
the file edge for real in a temporary directory (torn tail, resume, full, rollover)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offsite.core.readings import InboundMessage
from offsite.ingest.spool import (
    Spool,
    SpoolError,
    decode_records,
    encode_record,
    fill_crossed,
    releasable,
    segment_name,
    segment_number,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

messages = st.builds(
    InboundMessage,
    topic=st.text(max_size=80),
    payload=st.binary(max_size=600),
    received_at=st.integers(0, 10**15).map(lambda us: T0 + timedelta(microseconds=us)),
    mid=st.just(0),
    qos=st.integers(0, 2),
    transport=st.sampled_from(["mqtt", "tcp"]),
)


@given(st.lists(messages, max_size=20))
def test_records_round_trip(msgs: list[InboundMessage]) -> None:
    buf = b"".join(encode_record(m) for m in msgs)
    found = decode_records(buf)
    assert found.problem is None and found.good_end == len(buf)
    assert [m for m, _ in found.records] == msgs
    assert [e for _, e in found.records][-1:] == ([len(buf)] if msgs else [])


@given(st.lists(messages, min_size=1, max_size=8), st.data())
def test_a_torn_tail_is_found_and_what_precedes_it_kept(
    msgs: list[InboundMessage], data: st.DataObject
) -> None:
    """kill -9 mid-append leaves a prefix of the last record: everything before it
    decodes, the rest is reported, never misread."""
    whole = [encode_record(m) for m in msgs]
    head = b"".join(whole[:-1])
    cut = data.draw(st.integers(0, len(whole[-1]) - 1))
    found = decode_records(head + whole[-1][:cut])
    assert [m for m, _ in found.records] == msgs[:-1]
    assert found.good_end == len(head)
    assert (found.problem is None) == (cut == 0)


@given(st.lists(messages, min_size=1, max_size=5), st.data())
def test_a_flipped_bit_never_yields_a_wrong_record(
    msgs: list[InboundMessage], data: st.DataObject
) -> None:
    buf = bytearray(b"".join(encode_record(m) for m in msgs))
    i = data.draw(st.integers(0, len(buf) - 1))
    buf[i] ^= 1 << data.draw(st.integers(0, 7))
    found = decode_records(bytes(buf))
    got = [m for m, _ in found.records]
    assert got == msgs[: len(got)] and len(got) < len(msgs)  # a prefix, never garbage
    assert found.problem is not None


@given(st.integers(0, 10**12))
def test_segment_names_round_trip(n: int) -> None:
    assert segment_number(segment_name(n)) == n
    assert segment_number("lock") is None and segment_number("spool.id") is None


@given(
    st.sets(st.integers(1, 50), max_size=12),
    st.integers(1, 50),
    st.integers(0, 10_000),
)
def test_releasable_segments(segs: set[int], mark_seg: int, mark_off: int) -> None:
    segments = sorted(segs)
    end = (max(segments), 10_000) if segments else (0, 0)
    mark = (mark_seg, mark_off)
    gone = releasable(segments, mark, end)
    if mark >= end:
        assert gone == segments
    else:
        assert gone == [s for s in segments if s < mark_seg]  # the mark's own stays


@settings(max_examples=200)
@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 10**6))
def test_fill_warnings_fire_once_per_threshold(a: int, b: int, cap: int) -> None:
    before, after = min(a, b), max(a, b)
    level = fill_crossed(before, after, cap)
    crossed = [f for f in (0.5, 0.8, 0.95) if before < f * cap <= after]
    assert level == (max(crossed) if crossed else None)
    assert fill_crossed(after, after, cap) is None


# -- the file edge, for real ------------------------------------------------------------
def msg(i: int) -> InboundMessage:
    return InboundMessage(f"devices/D{i}/telemetry", b"x" * 50 + str(i).encode(), T0, 0, 1)


def test_append_read_drain_and_release(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "w", 10**6, segment_bytes=1000)
    sp.open()
    sp.resume(None)
    assert not sp.pending
    for i in range(0, 60, 6):
        assert sp.append([msg(j) for j in range(i, i + 6)])
    assert sp.pending and sp.pending_records == 60
    segs = sorted(p.name for p in (tmp_path / "w").glob("*.seg"))
    assert len(segs) > 3  # rolled over
    got = sp.read(sp.mark, 25)
    assert [m.payload for m, _ in got] == [msg(i).payload for i in range(25)]
    sp.drained(got[-1][1], 25, got[-1][0].received_at)
    assert sp.pending_records == 35
    rest = sp.read(sp.mark, 1000)
    assert [m.payload for m, _ in rest] == [msg(i).payload for i in range(25, 60)]
    sp.drained(rest[-1][1], 35, None)
    assert not sp.pending and list((tmp_path / "w").glob("*.seg")) == []
    assert sp.append([msg(99)])  # a fresh segment past the mark
    assert [m.payload for m, _ in sp.read(sp.mark, 10)] == [msg(99).payload]
    sp.close()


def test_torn_tail_truncated_at_open_and_resume_skips_the_drained(tmp_path: Path) -> None:
    d = tmp_path / "w"
    sp = Spool(d, 10**6)
    sp.open()
    sp.resume(None)
    sp.append([msg(i) for i in range(10)])
    first = sp.read(sp.mark, 4)
    mark = first[-1][1]
    sp.close()
    seg = next(d.glob("*.seg"))
    with open(seg, "ab") as f:  # kill -9 in the middle of the next append
        f.write(encode_record(msg(10))[:17])
    again = Spool(d, 10**6)
    again.open()
    assert seg.stat().st_size == mark[1] + sum(len(encode_record(msg(i))) for i in range(4, 10))
    again.resume(mark)  # as read from spool_marks
    assert again.pending_records == 6
    assert [m.payload for m, _ in again.read(again.mark, 100)] == [
        msg(i).payload for i in range(4, 10)
    ]
    again.close()


def test_full_spool_refuses_and_takes_nothing(tmp_path: Path) -> None:
    one = len(encode_record(msg(0)))
    sp = Spool(tmp_path / "w", one * 3 + 1)
    sp.open()
    sp.resume(None)
    assert sp.append([msg(0), msg(1)])
    assert not sp.append([msg(2), msg(3)])
    assert sp.figures.refused_full == 1 and sp.pending_records == 2
    assert sp.append([msg(2)])
    sp.close()


def test_one_process_per_spool(tmp_path: Path) -> None:
    a = Spool(tmp_path / "w", 10**6)
    a.open()
    b = Spool(tmp_path / "w", 10**6)
    with pytest.raises(SpoolError, match="in use"):
        b.open()
    a.close()
    b.open()
    assert a.id == b.id  # the id survives reopening
    b.close()


def test_damage_mid_segment_is_skipped_not_fatal(tmp_path: Path) -> None:
    d = tmp_path / "w"
    sp = Spool(d, 10**6, segment_bytes=64 * 1024)
    sp.open()
    sp.resume(None)
    sp.append([msg(i) for i in range(5)])
    seg = next(d.glob("*.seg"))
    fd = os.open(seg, os.O_RDWR)
    os.pwrite(fd, b"\xff", len(encode_record(msg(0))) + 20)  # inside record 1
    os.close(fd)
    got = sp.read(sp.mark, 100)
    assert [m.payload for m, _ in got[:1]] == [msg(0).payload]
    assert got[-1][1] == sp.end  # the rest of the segment skipped, with its position
    sp.close()


def test_orphans_are_spools_nobody_holds(tmp_path: Path) -> None:
    from offsite.ingest.spool import discard, orphans

    gone = Spool(tmp_path / "gone-worker", 10**6)
    gone.open()
    gone.resume(None)
    gone.append([msg(1)])
    gone.close()  # its process died
    alive = Spool(tmp_path / "alive-worker", 10**6)
    alive.open()
    found = orphans(tmp_path, "me", 10**6)
    assert [o.dir.name for o in found] == ["gone-worker"]
    returning = Spool(tmp_path / "gone-worker", 10**6)
    with pytest.raises(SpoolError):  # held while a peer drains it
        returning.open()
    o = found[0]
    o.resume(None)
    with pytest.raises(SpoolError, match="undrained"):
        discard(o)
    got = o.read(o.mark, 10)
    o.drained(got[-1][1], 1, None)
    discard(o)
    assert not (tmp_path / "gone-worker").exists()
    returning.open()  # starts afresh, under a new id
    assert returning.id != o.id
    alive.close()
    returning.close()

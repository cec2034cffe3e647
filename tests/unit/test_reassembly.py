"""offsite.ingest.reassembly: HJ 212 split packets held until every PNO has arrived."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offsite.core.readings import DataKind, DeadReason, InboundMessage
from offsite.ingest.codecs.hj212 import BEIJING, Packet, frame, parse_packet, to_message
from offsite.ingest.reassembly import (
    Reassembler,
    Released,
    assemble,
    complete,
    expired_letter,
    part_of,
)
from offsite.ingest.validate import Policy
from offsite.store.split_parts import StoredPart

MN = "010000A8900016F000169DC0"
QN = "20240315103000123"


def part(
    pno: int,
    pnum: int = 3,
    *,
    qn: str = QN,
    mn: str = MN,
    cn: str = "2061",
    code: str | None = None,
) -> Packet:
    code = code or f"a2100{pno % 10}"
    return parse_packet(
        frame(
            f"QN={qn};ST=31;CN={cn};PW=123456;MN={mn};Flag=7;PNUM={pnum};PNO={pno};"
            f"CP=&&DataTime=20240315100000;{code}-Avg={pno}.5,{code}-Flag=N&&"
        )
    )


def test_parts_are_split_packets():
    p = part(2)
    assert p.is_split and (p.pnum, p.pno) == (3, 2)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8).flatmap(lambda n: st.permutations(range(1, n + 1))))
def test_parts_in_any_order_complete_in_pno_order(order):
    n = len(order)
    r: Reassembler[str] = Reassembler()
    for i, pno in enumerate(order):
        out = r.add(f"item{pno}", part(pno, n), now=float(i))
        if i < n - 1:
            assert out == [] and len(r) == 1
    assert len(out) == 1
    rel = out[0]
    assert rel.complete and rel.expected == n
    assert rel.key == (MN, "2061", QN)
    assert rel.items == [f"item{k}" for k in range(1, n + 1)]
    assert [p.pno for p in rel.packets] == list(range(1, n + 1))
    assert rel.extra == []
    assert len(r) == 0


def test_released_set_gives_one_message_with_every_part():
    r: Reassembler[int] = Reassembler()
    r.add(3, part(3), 0.0)
    r.add(1, part(1), 0.0)
    (rel,) = r.add(2, part(2), 0.0)
    m = to_message(rel.packets)
    (rec,) = m.records
    assert rec.ts == datetime(2024, 3, 15, 10, tzinfo=BEIJING)
    assert [(v.pollutant, v.value, v.kind) for v in rec.values] == [
        ("a21001", 1.5, DataKind.HOUR),
        ("a21002", 2.5, DataKind.HOUR),
        ("a21003", 3.5, DataKind.HOUR),
    ]


def test_single_part_set_completes_at_once():
    r: Reassembler[str] = Reassembler()
    (rel,) = r.add("only", part(1, 1), 0.0)
    assert rel.complete and rel.items == ["only"]


def test_duplicates_go_to_extra_and_leave_with_the_set():
    r: Reassembler[str] = Reassembler()
    assert r.add("a1", part(1), 0.0) == []
    assert r.add("a1-again", part(1), 1.0) == []
    assert r.add("a2", part(2), 2.0) == []
    assert r.add("a2-again", part(2), 3.0) == []
    (rel,) = r.add("a3", part(3), 4.0)
    assert rel.complete
    assert rel.items == ["a1", "a2", "a3"]
    assert rel.extra == ["a1-again", "a2-again"]
    assert [p.pno for p in rel.packets] == [1, 2, 3]


def test_part_with_another_pnum_is_kept_aside():
    r: Reassembler[str] = Reassembler()
    r.add("p1", part(1, 2), 0.0)
    assert r.add("odd", part(2, 3), 0.0) == []  # PNUM disagrees with the set's
    (rel,) = r.add("p2", part(2, 2), 0.0)
    assert rel.items == ["p1", "p2"] and rel.extra == ["odd"] and rel.expected == 2


def test_sets_are_keyed_by_mn_cn_and_qn():
    r: Reassembler[str] = Reassembler()
    r.add("a", part(1, 2), 0.0)
    r.add("b", part(1, 2, qn="20240315103000999"), 0.0)
    r.add("c", part(1, 2, mn="OTHER"), 0.0)
    r.add("d", part(1, 2, cn="2051"), 0.0)
    assert len(r) == 4
    (rel,) = r.add("b2", part(2, 2, qn="20240315103000999"), 0.0)
    assert rel.items == ["b", "b2"] and rel.key == (MN, "2061", "20240315103000999")
    assert len(r) == 3


def test_expiry_after_timeout():
    r: Reassembler[str] = Reassembler(timeout_s=60.0)
    r.add("p1", part(1), 100.0)
    r.add("p3", part(3), 150.0)
    r.add("dup", part(3), 155.0)
    assert r.expired(159.999) == []
    (rel,) = r.expired(160.0)  # measured from the first part
    assert not rel.complete
    assert rel.items == ["p1", "p3"] and [p.pno for p in rel.packets] == [1, 3]
    assert rel.extra == ["dup"] and rel.expected == 3
    assert len(r) == 0 and r.expired(1e9) == []


def test_expiry_takes_only_the_late_sets():
    r: Reassembler[str] = Reassembler(timeout_s=10.0)
    r.add("old", part(1), 0.0)
    r.add("new", part(1, qn="20240315103000999"), 5.0)
    assert [x.items for x in r.expired(12.0)] == [["old"]]
    assert len(r) == 1
    assert [x.items for x in r.expired(15.0)] == [["new"]]


def test_a_part_after_expiry_starts_a_new_set():
    r: Reassembler[str] = Reassembler(timeout_s=10.0)
    r.add("p1", part(1, 2), 0.0)
    assert len(r.expired(10.0)) == 1
    assert r.add("p2", part(2, 2), 11.0) == []
    assert len(r) == 1


def test_capacity_evicts_the_oldest_set_incomplete():
    r: Reassembler[str] = Reassembler(max_sets=2)
    assert r.add("a", part(1, qn="20240315103000001"), 5.0) == []
    assert r.add("b", part(1, qn="20240315103000002"), 1.0) == []  # oldest by first_at
    assert r.add("a2", part(2, qn="20240315103000001"), 6.0) == []  # existing set: no evict
    out = r.add("c", part(1, qn="20240315103000003"), 7.0)
    assert len(out) == 1
    assert out[0] == Released(
        (MN, "2061", "20240315103000002"), ["b"], out[0].packets, [], False, 3
    )
    assert len(r) == 2


def test_capacity_eviction_and_completion_in_one_add():
    r: Reassembler[str] = Reassembler(max_sets=1)
    r.add("a", part(1, 2), 0.0)
    out = r.add("solo", part(1, 1, qn="20240315103000999"), 1.0)
    assert [(x.items, x.complete) for x in out] == [(["a"], False), (["solo"], True)]
    assert len(r) == 0


def test_drain_returns_everything_held_and_clears():
    r: Reassembler[str] = Reassembler()
    r.add("a1", part(1), 0.0)
    r.add("a1-dup", part(1), 0.0)
    r.add("b2", part(2, qn="20240315103000999"), 0.0)
    assert sorted(r.drain()) == ["a1", "a1-dup", "b2"]
    assert len(r) == 0 and r.drain() == [] and r.expired(1e9) == []


def test_add_refuses_a_packet_that_is_not_split():
    r: Reassembler[str] = Reassembler()
    whole = parse_packet(frame("ST=31;CN=2011;MN=AB;Flag=4;CP=&&&&"))
    with pytest.raises(AssertionError):
        r.add("x", whole, 0.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3)), max_size=30), st.floats(0, 100))
def test_nothing_is_lost(adds, horizon):
    """Every item added leaves exactly once: released (items + extra) or drained."""
    r: Reassembler[int] = Reassembler(timeout_s=50.0, max_sets=3)
    out: list[int] = []
    for i, (set_no, pno) in enumerate(adds):
        for rel in r.add(i, part(pno, 3, qn=f"2024031510300000{set_no}"), float(i)):
            out += rel.items + rel.extra
            if rel.complete:
                assert len(rel.items) == rel.expected
    for rel in r.expired(horizon):
        assert not rel.complete
        out += rel.items + rel.extra
    out += r.drain()
    assert sorted(out) == list(range(len(adds)))


# -- sets kept in the store ----------------------------------------------------------------


def _stored(p: Packet, second: int) -> StoredPart:
    at = datetime(2024, 3, 15, 2, 0, second, tzinfo=UTC)
    return part_of(InboundMessage("tcp/peer", p.raw, at, transport="tcp"), p)


def test_a_stored_set_is_complete_only_with_every_pno_and_assembles_in_pno_order():
    p3, p1, p2 = (_stored(part(n), s) for n, s in ((3, 1), (1, 2), (2, 3)))
    assert not complete([p3, p1])
    assert complete([p3, p1, p2])
    policy = Policy(max_age=timedelta(days=10_000))
    outcome, strays, at = assemble([p3, p1, p2], policy)
    assert [r.pollutant for r in outcome.readings] == ["a21001", "a21002", "a21003"]
    assert [p.pno for p in outcome.packets] == [1, 2, 3] and strays == []
    assert at == p2.received_at  # the newest part's receive time


def test_a_part_whose_pnum_disagrees_is_dead_lettered_not_dropped():
    parts = [_stored(part(1, 2), 1), _stored(part(3, 4), 2), _stored(part(2, 2), 3)]
    assert complete(parts)
    outcome, strays, _ = assemble(parts, Policy(max_age=timedelta(days=10_000)))
    assert len(outcome.readings) == 2
    assert [(d.reason, d.payload) for d in strays] == [
        (DeadReason.HJ212_MALFORMED_FIELD, parts[1].raw)
    ]
    assert "PNUM disagrees" in strays[0].detail


def test_an_expired_set_names_the_parts_that_came():
    parts = [_stored(part(1), 1), _stored(part(3), 2)]
    d = expired_letter(parts, 60.0)
    assert (
        d.reason is DeadReason.HJ212_INCOMPLETE_SPLIT and d.payload == parts[0].raw + parts[1].raw
    )
    assert d.detail == f"split packet CN=2061 QN={QN}: parts [1, 3] of 3 arrived within 60 s"

"""offsite.store.audit's kept head, pure: what the chain alone cannot show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from offsite.store.audit import GENESIS, AuditError, AuditRow, Head, check_chain, row_hash

T = datetime(2026, 12, 1, tzinfo=UTC)


def _chain(n: int, note: str = "x", start_prev: bytes = GENESIS) -> list[AuditRow]:
    rows, prev = [], start_prev
    for seq in range(1, n + 1):
        at = T + timedelta(seconds=seq)
        h = row_hash(prev, seq, at, "a", "act", f"s:{seq}", f'"{note}{seq}"')
        rows.append(AuditRow(seq, at, "a", "act", f"s:{seq}", f'"{note}{seq}"', prev, h))
        prev = h
    return rows


def test_a_kept_head_reads_back_from_both_forms() -> None:
    head = Head(7, "ab" * 32)
    assert Head.from_text(head.to_json() + "\n") == head
    assert Head.from_text(f"7 {'AB' * 32}") == head
    for bad in ('{"seq": 3}', "seven", '{"seq": -1, "hash": "' + "0" * 64 + '"}', "3 abc"):
        with pytest.raises(AuditError):
            Head.from_text(bad)


def test_truncated_tail_and_recomputed_chain_show_only_against_a_kept_head() -> None:
    rows = _chain(5)
    kept = Head(5, rows[-1].hash.hex())
    assert check_chain(rows, kept).broken is None
    # the newest rows deleted: still a chain, not the kept one
    assert check_chain(rows[:3]).broken is None
    cut = check_chain(rows[:3], kept).broken
    assert cut is not None and cut.seq == 4 and "rows 4–5 were deleted" in cut.reason
    # every row rewritten and rehashed: still a chain, not the kept one
    forged = _chain(5, note="y")
    assert check_chain(forged).broken is None
    redone = check_chain(forged, kept).broken
    assert redone is not None and redone.seq == 5 and "recomputed" in redone.reason
    # appended after the kept head: fine
    assert check_chain(_chain(8), Head(5, _chain(8)[4].hash.hex())).broken is None

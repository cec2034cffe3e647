"""Rule shards, the pure parts: which shard a device is in, how a batch is split into
queue rows, and how runners share shards."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from offsite.runner.rule_runner import (
    MAX_SHARDS,
    RULES_LOCK,
    SHARD_CLASS,
    Holders,
    RunnerConfig,
    balance,
    fair_share,
    shard_lock,
)
from offsite.store.rule_inbox import _rows_by_shard, shard_of, split_by_shard


def test_a_device_shard_is_crc32_of_its_mn_and_stable() -> None:
    mn = "010000A8900016F000169DC0"
    assert shard_of(mn, 1) == 0
    assert shard_of(mn, 7) == zlib.crc32(mn.encode()) % 7
    # a constant, not Python's salted hash: the same in every process and release
    assert [shard_of(mn, n) for n in (2, 3, 4)] == [zlib.crc32(mn.encode()) % n for n in (2, 3, 4)]


def test_devices_spread_about_evenly() -> None:
    counts = np.bincount([shard_of(f"MN{i:08d}", 4) for i in range(10_000)], minlength=4)
    assert counts.min() > 2_300


def test_a_batch_splits_into_rows_per_shard_with_nothing_lost_or_moved() -> None:
    mns = [f"DEV{i}" for i in range(10)]
    keys = [(mn, p, "rtd") for mn in mns for p in ("a21026", "a19001")]
    sidx = np.array([i % len(keys) for i in range(47)], np.int64)
    ts = np.arange(47, dtype="<f8")
    heard = [(mn, 100.0 + i) for i, mn in enumerate(mns[:7])]
    rows = _rows_by_shard(3, keys, sidx, ts, ts * 2, ts + 1000, "N" * 46 + "M", heard)
    got: list[tuple[str, str, str, float, float, int]] = []
    seen_heard = []
    for row in rows:
        shards, shard, first = row[1], row[2], row[3]
        assert shards == 3
        s_mn, s_pol, s_kind = row[4].split("\x1f"), row[6].split("\x1f"), row[8].split("\x1f")
        local = np.frombuffer(row[10], "<i4")
        t = np.frombuffer(row[11], "<f8")
        v = np.frombuffer(row[12], "<f8")
        rec = np.frombuffer(row[13], "<f8")
        assert {shard_of(m, 3) for m in s_mn} == {shard}
        for i, ti, vi in zip(local, t, v, strict=True):
            got.append((s_mn[i], s_pol[i], s_kind[i], ti, vi, shard))
        hm = [m for m in row[15].split("\x1f") if m]
        assert all(shard_of(m, 3) == shard for m in hm)
        seen_heard += hm
        hat = [float(x) for x in row[17].split(",") if x]
        assert first == min([*rec.tolist(), *hat])
    want = sorted((*keys[j], float(t), float(t) * 2) for j, t in zip(sidx, ts, strict=True))
    assert sorted(g[:5] for g in got) == want
    assert sorted(seen_heard) == sorted(m for m, _ in heard)
    assert "M" in "".join(r[14] for r in rows)


def test_one_shard_is_one_row_as_before() -> None:
    keys = [("A", "a21026", "rtd"), ("B", "a21026", "rtd")]
    sidx = np.array([0, 1, 0], np.int64)
    ts = np.array([1.0, 2.0, 3.0])
    (row,) = _rows_by_shard(1, keys, sidx, ts, ts, ts, "NNN", [("A", 0.5)])
    assert row[1:4] == (1, 0, 0.5)


def test_a_split_keeps_only_shards_with_something_in_them() -> None:
    keys = [("A", "p", "rtd")]
    out = split_by_shard(keys, np.array([0, 0], np.int64), [], 8)
    assert list(out) == [shard_of("A", 8)]


def test_lock_keys_one_shard_keeps_the_old_lock_and_sharded_keys_are_distinct() -> None:
    assert shard_lock(1, 0) == (RULES_LOCK,)
    keys = {shard_lock(n, k) for n in range(2, 40) for k in range(n)}
    assert len(keys) == sum(range(2, 40))
    # (SHARD_CLASS, 0) is the gate and (SHARD_CLASS, n) the presence of n-shard runners
    assert all(k[0] == SHARD_CLASS and k[1] > MAX_SHARDS for k in keys)


def test_the_shard_count_is_checked() -> None:
    with pytest.raises(ValueError):
        RunnerConfig(shards=0)
    with pytest.raises(ValueError):
        RunnerConfig(shards=MAX_SHARDS + 1)


def test_fair_share() -> None:
    assert [fair_share(2, r) for r in (0, 1, 2, 3)] == [2, 2, 1, 1]
    assert fair_share(5, 2) == 3


def test_a_runner_alone_takes_every_free_shard() -> None:
    want, give, others = balance(4, set(), Holders([], {4: 1}), me=10)
    assert (want, give, others) == ([0, 1, 2, 3], [], set())


def test_a_second_runner_gets_its_share_once_the_first_gives_it_back() -> None:
    holders = Holders([(2, 0, 10), (2, 1, 10)], {2: 2})
    # the newcomer (pid 11) finds nothing free yet
    assert balance(2, set(), holders, me=11) == ([], [], set())
    # the first (pid 10) holds more than its share: it gives one back
    assert balance(2, {0, 1}, holders, me=10) == ([], [1], set())
    # then the newcomer takes it
    assert balance(2, set(), Holders([(2, 0, 10)], {2: 2}), me=11) == ([1], [], set())


def test_a_dead_runners_shards_are_taken_by_the_one_left() -> None:
    # runner 11 died: its lock and its presence are gone
    assert balance(2, {0}, Holders([(2, 0, 10)], {2: 1}), me=10) == ([1], [], set())


def test_free_shards_are_tried_from_the_runners_own_start() -> None:
    want, _, _ = balance(4, set(), Holders([], {4: 2}), me=7, start=3)
    assert want == [3, 0]


def test_nothing_is_taken_while_runners_with_another_count_lead() -> None:
    holders = Holders([(3, 1, 20)], {3: 1, 2: 1})
    assert balance(2, set(), holders, me=10) == ([], [], {3})
    # the old single-shard lock counts as a 1-shard runner
    assert balance(2, set(), Holders([(1, 0, 20)], {}), me=10)[2] == {1}

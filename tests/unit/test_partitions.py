"""The monthly partition planner (pure) and the rollup chooser (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from offsite.store.partitions import (
    Partition,
    add_months,
    month_partition,
    month_start,
    plan_partitions,
)
from offsite.store.rollups import rollup_table


def d(y: int, m: int, day: int = 1, h: int = 0) -> datetime:
    return datetime(y, m, day, h, tzinfo=UTC)


def names(ps: tuple[Partition, ...]) -> list[str]:
    return [p.name for p in ps]


def test_month_arithmetic_crosses_years_and_reads_utc():
    assert add_months(d(2026, 11), 3) == d(2027, 2)
    assert add_months(d(2026, 1), -1) == d(2025, 12)
    # 07:00 on 1 December in Beijing is still 30 November in UTC
    beijing = timezone(timedelta(hours=8))
    assert month_start(datetime(2026, 12, 1, 7, tzinfo=beijing)) == d(2026, 11)
    p = month_partition(d(2026, 12, 31, 23))
    assert (p.name, p.start, p.end) == ("readings_p2026_12", d(2026, 12), d(2027, 1))


def test_fresh_table_gets_this_month_and_the_months_ahead():
    plan = plan_partitions(d(2026, 11, 26, 9), [], months_ahead=3, retention=None)
    assert names(plan.create) == [
        "readings_p2026_11",
        "readings_p2026_12",
        "readings_p2027_01",
        "readings_p2027_02",
    ]
    assert plan.drop == () and plan.purge_default_before is None


def test_nothing_to_do_when_the_months_exist():
    now = d(2026, 11, 26)
    existing = [month_partition(add_months(d(2026, 11), i)) for i in range(3)]
    plan = plan_partitions(now, existing, months_ahead=2, retention=None)
    assert not plan


def test_months_with_rows_in_default_get_partitions_even_in_the_past():
    plan = plan_partitions(
        d(2026, 11, 26),
        [month_partition(d(2026, 11))],
        months_ahead=0,
        retention=timedelta(days=365),
        default_months=[d(2026, 3, 15), d(2026, 11, 2)],
    )
    assert names(plan.create) == ["readings_p2026_03"]


def test_default_rows_past_retention_are_purged_not_given_a_month():
    now = d(2026, 11, 26)
    plan = plan_partitions(
        now,
        [month_partition(d(2026, 11))],
        months_ahead=0,
        retention=timedelta(days=365),
        default_months=[d(2020, 1, 5)],
    )
    assert plan.create == ()
    assert plan.purge_default_before == now - timedelta(days=365)


def test_retention_drops_only_whole_months_older_than_the_cutoff():
    now = d(2026, 11, 15)
    existing = [month_partition(add_months(d(2025, 10), i)) for i in range(14)]
    # cutoff 2025-11-15: October 2025 ends before it; November 2025 straddles it and stays
    plan = plan_partitions(now, existing, months_ahead=0, retention=timedelta(days=365))
    assert names(plan.drop) == ["readings_p2025_10"]
    # exactly on a boundary: the month ending at the cutoff goes
    plan = plan_partitions(
        d(2026, 12, 1), existing, months_ahead=0, retention=d(2026, 12, 1) - d(2025, 12, 1)
    )
    assert names(plan.drop) == ["readings_p2025_10", "readings_p2025_11"]


def test_foreign_partitions_of_other_widths_are_not_overlapped():
    weekly = Partition("by_hand", d(2026, 12, 10), d(2026, 12, 17))
    plan = plan_partitions(d(2026, 11, 26), [weekly], months_ahead=2, retention=None)
    assert names(plan.create) == ["readings_p2026_11", "readings_p2027_01"]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="months_ahead"):
        plan_partitions(d(2026, 1), [], months_ahead=-1, retention=None)
    with pytest.raises(ValueError, match="empty range"):
        Partition("x", d(2026, 2), d(2026, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        Partition("x", datetime(2026, 1, 1), d(2026, 2))


@pytest.mark.parametrize(
    ("bucket_s", "start", "end", "table"),
    [
        (86400, d(2026, 11, 1), d(2026, 11, 8), "readings_daily"),
        (7 * 86400, d(2026, 11, 1), d(2026, 11, 8), "readings_daily"),
        (86400, d(2026, 11, 1, 5), d(2026, 11, 8), "readings_hourly"),  # start mid-day
        (3600, d(2026, 11, 1, 5), d(2026, 11, 1, 9), "readings_hourly"),
        (7200, d(2026, 11, 1, 5), d(2026, 11, 1, 9), "readings_hourly"),
        (3600, d(2026, 11, 1, 5) + timedelta(minutes=30), d(2026, 11, 1, 9), None),
        (3600, d(2026, 11, 1, 5), d(2026, 11, 1, 9) + timedelta(microseconds=1), None),
        (1800, d(2026, 11, 1), d(2026, 11, 2), None),
        (5400, d(2026, 11, 1), d(2026, 11, 2), None),
    ],
)
def test_rollup_is_chosen_only_when_it_gives_the_raw_answer(bucket_s, start, end, table):
    assert rollup_table(bucket_s, start, end) == table

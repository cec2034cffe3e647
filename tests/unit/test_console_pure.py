"""The console's pure pieces: data-capture rate per device-day, and CSV cells."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from offsite.api.capture import DayCount, active_since, capture_by_day, utc_days
from offsite.api.csvout import cell, to_csv

D = datetime(2026, 11, 20, tzinfo=UTC)


def test_utc_days_cover_the_range_and_no_more() -> None:
    assert utc_days(D, D + timedelta(days=1)) == [date(2026, 11, 20)]
    assert utc_days(D + timedelta(hours=23), D + timedelta(hours=25)) == [
        date(2026, 11, 20),
        date(2026, 11, 21),
    ]
    # a zone other than UTC is converted, not misread
    cst = D.replace(hour=7).astimezone(timezone(timedelta(hours=8)))  # 15:00 in Beijing
    assert utc_days(cst, cst + timedelta(hours=1)) == [date(2026, 11, 20)]
    with pytest.raises(ValueError, match="time zone"):
        utc_days(D.replace(tzinfo=None), D)


def test_capture_counts_whole_days_partial_days_and_today_so_far() -> None:
    counts = [
        DayCount(date(2026, 11, 20), 720, 600, D),
        DayCount(date(2026, 11, 22), 100, 100, None),
    ]
    now = D + timedelta(days=2, hours=6)  # 06:00 on the 22nd
    days = capture_by_day(counts, 60.0, D, D + timedelta(days=3), now, since=D)
    assert [d.day for d in days] == [date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)]
    assert (days[0].expected, days[0].capture_rate, days[0].valid_rate) == (1440, 0.5, 600 / 1440)
    assert (days[1].received, days[1].capture_rate) == (0, 0.0)  # a silent day is 0 %, not absent
    assert days[2].expected == 360 and days[2].capture_rate == pytest.approx(100 / 360)


def test_capture_expects_nothing_before_the_device_existed_or_after_now() -> None:
    since = D + timedelta(hours=12)
    days = capture_by_day(
        [],
        60.0,
        D - timedelta(days=1),
        D + timedelta(days=1),
        now=D + timedelta(days=5),
        since=since,
    )
    assert [d.expected for d in days] == [0, 720]
    assert days[0].capture_rate is None  # nothing expected: no rate, neither 0 nor 100 %
    assert (
        capture_by_day([], 60.0, D, D + timedelta(days=1), now=D - timedelta(days=1))[
            0
        ].capture_rate
        is None
    )


def test_capture_caps_at_one_and_refuses_a_bad_interval() -> None:
    days = capture_by_day(
        [DayCount(D.date(), 3000, 3000)], 60.0, D, D + timedelta(days=1), now=D + timedelta(days=2)
    )
    assert days[0].capture_rate == 1.0
    with pytest.raises(ValueError, match="interval_s"):
        capture_by_day([], 0.0, D, D + timedelta(days=1), now=D)


def test_active_since_is_the_first_reading_when_history_predates_registration() -> None:
    reg = D + timedelta(days=3)
    assert active_since(reg, [DayCount(D.date(), 5, 5, D + timedelta(hours=1))]) == D + timedelta(
        hours=1
    )
    assert active_since(reg, [DayCount(D.date(), 0, 0, None)]) == reg


def test_csv_cells_keep_numbers_and_defuse_formulas() -> None:
    assert cell(None) == "" and cell(True) == "true" and cell(3) == "3"
    assert cell(-5.5) == "-5.5"  # a negative number stays a number
    assert cell('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    assert cell("-1+1") == "'-1+1" and cell("@SUM(A1)") == "'@SUM(A1)"
    assert cell(D) == "2026-11-20T00:00:00+00:00"
    assert cell({"a": 1}) == '{"a": 1}'


def test_to_csv_round_trips_through_a_csv_reader() -> None:
    rows = [{"id": 1, "message": 'over, "quoted"\nline two', "extra": "ignored"}, {"id": 2}]
    text = to_csv(["id", "message"], rows)
    assert list(csv.reader(io.StringIO(text))) == [
        ["id", "message"],
        ["1", 'over, "quoted"\nline two'],
        ["2", ""],
    ]

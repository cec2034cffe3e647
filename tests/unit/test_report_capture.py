"""The monthly report's expected values count from when the device was expected to
report, not from the month's start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from offsite.api.queries.reports import expected_values

START = datetime(2026, 12, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 6, tzinfo=UTC)


def test_a_device_registered_mid_month_is_expected_from_its_registration() -> None:
    registered = NOW - timedelta(hours=2)
    assert expected_values(START, NOW, registered, None, 60.0) == 120.0


def test_history_loaded_before_registration_counts_from_the_first_reading() -> None:
    registered = NOW - timedelta(minutes=1)
    first = NOW - timedelta(hours=1)
    assert expected_values(START, NOW, registered, first, 60.0) == 60.0


def test_a_device_older_than_the_month_counts_from_the_month_start() -> None:
    registered = START - timedelta(days=40)
    assert expected_values(START, NOW, registered, None, 60.0) == 5 * 1440.0


def test_registered_after_the_period_expects_nothing() -> None:
    assert expected_values(START, NOW, NOW + timedelta(hours=1), None, 60.0) == 0.0

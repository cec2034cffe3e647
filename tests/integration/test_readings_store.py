"""offsite.store.readings.insert_readings on a real PostgreSQL: it returns exactly the readings
new to the store — the whole batch when all are new, and only the inserted ones, as
stored, once each and in batch order, when some were already there or repeated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from offsite.core.readings import DataKind, Reading
from offsite.core.registry import registry_from_dict
from offsite.store.readings import insert_readings
from tests.integration.helpers import register

pytestmark = pytest.mark.integration

MN = "0300STORE000000000000001"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E9",
                "name": "Store Works",
                "points": [
                    {
                        "id": "E9-P1",
                        "kind": "flue_gas",
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": MN, "interval_s": 60}],
                    }
                ],
            }
        ]
    }
)
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def _r(minute: int, value: float, pollutant: str = "a21026", stat: str = "") -> Reading:
    return Reading(
        T0 + timedelta(minutes=minute),
        MN,
        pollutant,
        value,
        "N",
        DataKind.HOUR if stat else DataKind.RTD,
        stat,
    )


def test_all_new_returns_the_batch_and_counts_the_device(db_url: str) -> None:
    register(db_url, REGISTRY)
    batch = [_r(i, 10.0 + i) for i in range(5)] + [_r(0, 3.0, stat="max")]
    got = T0 + timedelta(hours=1)
    with psycopg.connect(db_url) as conn:
        assert insert_readings(conn, batch, [got] * len(batch)) == batch
        row = conn.execute(
            "SELECT last_ts, last_received_at, readings FROM device_status WHERE mn = %s", (MN,)
        ).fetchone()
    assert row == (T0 + timedelta(minutes=4), got, 6)


def test_duplicates_are_left_out_and_the_stored_value_is_returned(db_url: str) -> None:
    register(db_url, REGISTRY)
    got = T0 + timedelta(hours=1)
    with psycopg.connect(db_url) as conn:
        insert_readings(conn, [_r(1, 11.0), _r(3, 13.0)], [got, got])
        conn.commit()
        # minute 1 and 3 already stored; minute 5 twice in the batch (first one wins)
        batch = [
            _r(1, 99.0),
            _r(2, 12.0),
            _r(3, 99.0),
            _r(5, 15.0),
            _r(5, 77.0),
            _r(2, 12.0, pollutant="a21002"),
        ]
        new = insert_readings(conn, batch, [got] * len(batch))
        conn.commit()
        stored = conn.execute("SELECT count(*), sum(value) FROM readings").fetchone()
        status = conn.execute("SELECT readings FROM device_status").fetchone()
    assert new == [_r(2, 12.0), _r(5, 15.0), _r(2, 12.0, pollutant="a21002")]
    assert stored == (5, 11.0 + 13.0 + 12.0 + 15.0 + 12.0)
    assert status == (5,)


def test_day_lag_readings_fetch_the_same_time_of_day_on_past_days(db_url: str) -> None:
    """What copy-paste's memory is rebuilt from at a takeover: for each past day, the
    window around now's time of day, of the pollutants asked for, and nothing else."""
    from offsite.store.readings import day_lag_readings

    register(db_url, REGISTRY)
    now = T0 + timedelta(days=3)
    minutes = [d * 1440 + m for d in range(3) for m in range(-90, 150, 10)]
    batch = [_r(m, 1.0) for m in minutes] + [_r(m, 2.0, pollutant="a19001") for m in minutes]
    with psycopg.connect(db_url) as conn:
        insert_readings(conn, batch, [now] * len(batch))
        got = day_lag_readings(
            conn, ["a21026"], now, 2, timedelta(minutes=30), timedelta(minutes=60)
        )
    want = sorted(
        T0 + timedelta(minutes=m) for m in minutes if any(-30 <= m - d * 1440 < 60 for d in (1, 2))
    )
    assert sorted(r.ts for r in got) == want
    assert {r.pollutant for r in got} == {"a21026"}

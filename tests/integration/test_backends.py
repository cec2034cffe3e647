"""One test, two backends: the monthly report, the console's bucketed charts and the
data-capture rate answer the same on plain PostgreSQL (partitions, rollup tables kept
by ingest) and on TimescaleDB (hypertable, continuous aggregates), for the same
readings — late and redelivered ones included, once the aggregates' refresh has run."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from offsite.core.readings import Reading
from offsite.core.registry import registry_from_dict
from offsite.store.readings import insert_readings
from offsite.store.rollups import rebuild_rollups
from tests.integration.helpers import bearer, make_settings, register, token_for
from tests.integration.test_api_live import serving

pytestmark = pytest.mark.integration

A, B = "BKND00000000000000000001", "BKND00000000000000000002"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "BK",
                "name": "Both Backends Power",
                "points": [
                    {
                        "id": "BK-P1",
                        "kind": "flue_gas",
                        "o2_ref": 6.0,
                        "limits": {"a21026": 35.0, "a21002": 50.0},
                        "devices": [{"mn": A, "interval_s": 60}, {"mn": B, "interval_s": 60}],
                    }
                ],
            }
        ]
    }
)
START = datetime(2026, 10, 30, 0, tzinfo=UTC)  # three days across the month end
DAYS = 3


def _readings(seed: int = 11) -> tuple[list[Reading], list[Reading]]:
    """Minute data of two devices (SO2, NOx, O2) with hours over the limit, thin hours,
    gaps and invalid flags; and the late readings that arrive after the first refresh."""
    rnd = random.Random(seed)
    first, late = [], []
    for minute in range(DAYS * 24 * 60):
        ts = START + timedelta(minutes=minute)
        hour = minute // 60
        if hour % 13 == 5:
            continue  # a gap: the whole hour never arrives
        for k, mn in enumerate((A, B)):
            thin = (hour + k) % 9 == 0 and minute % 60 >= 40  # only 40 minutes
            level = 20.0 + ((hour * 7 + k * 3) % 11) * 2.5  # 20 … 45 against 35
            o2 = 7.0 + ((hour + k) % 4) * 0.8
            for pol, value in (("a21026", level), ("a21002", level * 1.4), ("a19001", o2)):
                flag = "N" if rnd.random() > 0.05 else rnd.choice("MD")
                r = Reading(ts, mn, pol, round(value + rnd.uniform(-2, 2), 2), flag)
                (late if thin else first).append(r)
    return first, late


def _store(url: str, readings: list[Reading], batch: int = 500) -> None:
    with psycopg.connect(url) as conn:
        for k in range(0, len(readings), batch):
            part = readings[k : k + batch]
            with conn.transaction():
                insert_readings(conn, part, [r.ts + timedelta(seconds=5) for r in part])


def _refresh(url: str) -> None:
    """What the refresh policy does on TimescaleDB (its window is relative to now, so the
    test's fixed dates are refreshed by range); plain PostgreSQL's tables are already up
    to date, and rebuilding them changes nothing."""
    with psycopg.connect(url, autocommit=True) as conn:
        rebuild_rollups(conn, START - timedelta(days=1), START + timedelta(days=DAYS + 1))


def _rounded(x: Any) -> Any:
    """Floats to 9 significant digits: sums over other orders differ in the last bits."""
    if isinstance(x, float):
        return float(f"{x:.9g}") if math.isfinite(x) else x
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return x


def _answers(url: str, mqtt_url: str) -> dict[str, Any]:
    settings = make_settings(url, mqtt_url, "x/+/y")
    out: dict[str, Any] = {}
    end = START + timedelta(days=DAYS)
    charts = [
        (3600, START, end),  # from the hourly rollup
        (86400, START, end),  # from the daily one
        (4 * 3600, START + timedelta(hours=2), end),  # hourly rollup, 4 h buckets
        (900, START + timedelta(hours=3), START + timedelta(hours=9)),  # raw rows
        (3600, START + timedelta(minutes=30), START + timedelta(hours=20)),  # raw: unaligned
    ]
    with (
        serving(settings, url) as base,
        httpx.Client(base_url=base, timeout=60, headers=bearer(token_for(url, "regulator"))) as h,
    ):
        for month in ("2026-10", "2026-11"):
            got = h.get(f"/api/reports/BK/{month}")
            assert got.status_code == 200, got.text
            report = got.json()
            report.pop("generated_at")
            out[f"report {month}"] = report
            csv = h.get(f"/api/reports/BK/{month}/csv")
            assert csv.status_code == 200
            out[f"csv {month}"] = [
                line for line in csv.text.splitlines() if "generated" not in line.lower()
            ]
        for mn in (A, B):
            for bucket, lo, hi in charts:
                got = h.get(
                    f"/api/devices/{mn}/readings",
                    params={"bucket": bucket, "start": lo.isoformat(), "end": hi.isoformat()},
                )
                assert got.status_code == 200, got.text
                out[f"chart {mn} {bucket} {lo}"] = got.json()
            got = h.get(
                f"/api/devices/{mn}/capture",
                params={"start": START.isoformat(), "end": end.isoformat()},
            )
            assert got.status_code == 200, got.text
            out[f"capture {mn}"] = got.json()
    return _rounded(out)


def test_reports_charts_and_capture_rate_answer_the_same_on_both_backends(
    plain_db_url: str, timescale_db_url: str, mqtt_url: str
) -> None:
    first, late = _readings()
    answers = {}
    for backend, url in (("plain", plain_db_url), ("timescaledb", timescale_db_url)):
        register(url, REGISTRY)
        _store(url, first)
        _refresh(url)  # the hours are materialised on TimescaleDB …
        redelivered = first[5000:9000]
        random.Random(3).shuffle(redelivered)
        _store(url, late + redelivered, batch=333)  # … before these arrive
        _refresh(url)
        answers[backend] = _answers(url, mqtt_url)
    plain, timescale = answers["plain"], answers["timescaledb"]
    assert plain.keys() == timescale.keys()
    for key in plain:
        assert plain[key] == timescale[key], key
    # and the answers are about something: hours over the limit, thin hours not valid,
    # capture below 1 for the gaps, charts with buckets
    october = plain["report 2026-10"]
    assert sum(october["summary"]["hours_over_limit"].values()) > 0
    assert all(0 < c["capture_rate"] < 1 for c in october["capture"])
    assert all(plain[k]["buckets"] for k in plain if k.startswith("chart"))

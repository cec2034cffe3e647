"""How fast the console's device page answers, over a month of minute data.

    python -m offsite.bench.console [--days 30] [--repeat 5] [--browser] [--json]

Loads ``--days`` of 1-minute readings of 8 pollutants for one device into a scratch
database (OFFSITE_DATABASE_URL's server, default the local test server), serves the API on
a socket and times the requests the device page makes, as the page makes them: the chart
over the last hour (raw), day (2-minute buckets from raw rows) and month (hourly buckets,
answered by the rollup), latest values, data capture over 7 and 30 days. Median of
``--repeat`` calls each. With ``--browser`` (Debian's chromium via Playwright) it also
times the whole page in a browser: navigation to a drawn month chart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import uvicorn

from offsite.api.app import create_app
from offsite.bench.report import emit
from offsite.core.readings import Reading
from offsite.core.registry import registry_from_dict
from offsite.core.settings import load_settings
from offsite.embedded import free_port
from offsite.store.migrate import migrate
from offsite.store.readings import insert_readings
from offsite.store.registry import save_registry
from offsite.store.scratch import scratch_database
from offsite.store.users import create_user, issue_token

MN = "BENCHCONSOLE000000000001"
POLLUTANTS = ("a21026", "a21002", "a34013", "a19001", "a01011", "a01012", "a01013", "a01014")
PASSWORD = "bench console password"


def _readings(start: datetime, minutes: int) -> Iterator[Reading]:
    for m in range(minutes):
        ts = start + timedelta(minutes=m)
        for k, pol in enumerate(POLLUTANTS):
            yield Reading(ts, MN, pol, 20.0 + (m * 7 + k) % 13, "N" if m % 97 else "M")


def _load(url: str, end: datetime, days: int) -> int:
    reg = registry_from_dict(
        {
            "enterprises": [
                {
                    "id": "EB",
                    "name": "Bench",
                    "points": [
                        {
                            "id": "EB-P",
                            "kind": "flue_gas",
                            "limits": {"a21026": 35.0},
                            "devices": [{"mn": MN, "interval_s": 60}],
                        }
                    ],
                }
            ]
        }
    )
    n = 0
    with psycopg.connect(url) as conn:
        migrate(conn)
        save_registry(conn, reg)
        create_user(conn, "bench", "regulator", PASSWORD)
        batch: list[Reading] = []
        for r in _readings(end - timedelta(days=days), days * 1440):
            batch.append(r)
            if len(batch) == 8000:
                with conn.transaction():
                    n += len(insert_readings(conn, batch, [x.ts for x in batch]))
                batch = []
        if batch:
            with conn.transaction():
                n += len(insert_readings(conn, batch, [x.ts for x in batch]))
    return n


def _floor(t: datetime, s: int) -> datetime:
    return datetime.fromtimestamp(int(t.timestamp()) // s * s, UTC)


def _median_ms(client: httpx.Client, path: str, params: dict, repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat + 1):  # the first call warms caches and is not counted
        t0 = time.perf_counter()
        r = client.get(path, params=params)
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        size = len(r.content)
    return round(statistics.median(times[1:]), 1), size


def _browser_ms(url: str, end: datetime, days: int) -> float:
    from playwright.sync_api import sync_playwright

    start = end - timedelta(days=days)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=os.environ.get("OFFSITE_TEST_CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox"] if os.geteuid() == 0 else [],
        )
        page = b.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/")
        page.fill("input[name=username]", "bench")
        page.fill("input[name=password]", PASSWORD)
        page.click("#login button")
        page.wait_for_selector("#who")
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            page.goto(
                f"{url}/#/device/{MN}?pollutant=a21026&start={start.isoformat()}"
                f"&end={end.isoformat()}".replace("+", "%2B")
            )
            page.reload()
            page.wait_for_selector("#chart canvas")
            times.append((time.perf_counter() - t0) * 1000)
        b.close()
    return round(statistics.median(times), 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--browser", action="store_true")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    admin = os.environ.get("OFFSITE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    end = _floor(datetime.now(UTC), 3600) + timedelta(hours=1)
    out: dict[str, object] = {}
    with scratch_database(admin, "offsite_bench_console") as url:
        t0 = time.perf_counter()
        out["readings"] = _load(url, end, a.days)
        out["load_s"] = round(time.perf_counter() - t0, 1)
        with psycopg.connect(url) as conn:
            token = issue_token(conn, "bench")
        settings = load_settings(
            database_url=url, mqtt_url="mqtt://127.0.0.1:1", login_rate_per_min=600
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, url), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
            ) as c:
                readings = f"/api/devices/{MN}/readings"
                for label, path, params in (
                    (
                        "chart_1h_raw",
                        readings,
                        {
                            "pollutant": "a21026",
                            "limit": 20000,
                            "start": end - timedelta(hours=1),
                            "end": end,
                        },
                    ),
                    (
                        "chart_24h_2min_buckets",
                        readings,
                        {
                            "pollutant": "a21026",
                            "bucket": 120,
                            "start": end - timedelta(days=1),
                            "end": end,
                        },
                    ),
                    (
                        f"chart_{a.days}d_hourly_rollup",
                        readings,
                        {
                            "pollutant": "a21026",
                            "bucket": 3600,
                            "start": end - timedelta(days=a.days),
                            "end": end,
                        },
                    ),
                    ("latest_values", f"/api/devices/{MN}", {}),
                    ("capture_7d", f"/api/devices/{MN}/capture", {}),
                    (
                        f"capture_{a.days}d",
                        f"/api/devices/{MN}/capture",
                        {"start": end - timedelta(days=a.days), "end": end},
                    ),
                ):
                    ms, size = _median_ms(
                        c,
                        path,
                        {
                            k: v.isoformat() if isinstance(v, datetime) else v
                            for k, v in params.items()
                        },
                        a.repeat,
                    )
                    out[f"{label}_ms"] = f"{ms}  ({size / 1024:.0f} KiB)"
            if a.browser:
                out[f"browser_device_page_{a.days}d_ms"] = _browser_ms(base, end, a.days)
        finally:
            server.should_exit = True
            thread.join(10)
    emit(out, a.json)


if __name__ == "__main__":
    main()

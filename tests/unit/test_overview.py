"""The overview's tiles, statuses and today's capture, from given counts and a given now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from offsite.api.overview import build_overview, capture_today, device_status, site_day_start

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai


def dev(mn: str, ent: str, region: str, last_s_ago: float | None, **kw: object) -> dict:
    last = None if last_s_ago is None else NOW - timedelta(seconds=last_s_ago)
    return {
        "mn": mn,
        "enterprise_id": ent,
        "enterprise_name": f"{ent} plant",
        "region": region,
        "interval_s": 60.0,
        "active": True,
        "registered_at": NOW - timedelta(days=30),
        "last_ts": last,
        "last_received_at": last,
        **kw,
    }


def test_the_sites_day_starts_at_local_midnight() -> None:
    start = site_day_start(NOW)
    assert start.isoformat() == "2026-12-06T00:00:00+08:00"
    late = datetime(2026, 12, 6, 17, 30, tzinfo=UTC)  # 01:30 on the 7th in Shanghai
    assert site_day_start(late).isoformat() == "2026-12-07T00:00:00+08:00"


def test_status_follows_missed_intervals_with_a_floor() -> None:
    assert device_status(dev("A", "E", "R", 60), NOW) == "online"
    assert device_status(dev("A", "E", "R", 299), NOW) == "online"  # floor of 5 minutes
    assert device_status(dev("A", "E", "R", 301), NOW) == "offline"
    assert device_status(dev("A", "E", "R", None), NOW) == "never"
    assert device_status(dev("A", "E", "R", 10, active=False), NOW) == "revoked"


def test_capture_today_counts_from_midnight_or_registration() -> None:
    day = site_day_start(NOW)
    # 11 hours since local midnight at one reading a minute: 660 expected
    assert capture_today(dev("A", "E", "R", 60), 330, NOW, day) == 0.5
    young = dev("A", "E", "R", 60, registered_at=NOW - timedelta(hours=1))
    assert capture_today(young, 60, NOW, day) == 1.0
    assert capture_today(dev("A", "E", "R", 60, registered_at=NOW), 0, NOW, day) is None
    # registered a minute ago with two hours of history loaded: expected from the history
    loaded = dev("A", "E", "R", 60, registered_at=NOW - timedelta(minutes=1))
    assert capture_today(loaded, 120, NOW, day, NOW - timedelta(hours=2)) == 1.0


def test_tiles_per_site_and_region_put_criticals_first() -> None:
    devices = [
        dev("A1", "E1", "Nanjing", 60),
        dev("A2", "E1", "Nanjing", 3600),
        dev("B1", "E2", "Nanjing", None),
        dev("C1", "E3", "Suzhou", 60),
    ]
    o = build_overview(
        devices,
        [("E3", "critical", 2), ("E1", "warning", 1), ("E9", "critical", 5)],
        {"A1": (660, None), "A2": (330, None), "C1": (660, None)},
        NOW,
    )
    assert [s["key"] for s in o["sites"]] == ["E3", "E1", "E2"]
    e1 = o["sites"][1]
    assert (e1["devices"], e1["offline"], e1["capture_today"]) == (2, 1, 0.75)
    assert e1["alerts"] == {"critical": 0, "major": 0, "warning": 1, "info": 0}
    nanjing = next(r for r in o["regions"] if r["key"] == "Nanjing")
    assert (nanjing["devices"], nanjing["offline"]) == (3, 2)  # never reported counts
    assert o["regions"][0]["key"] == "Suzhou"  # its critical ranks it first
    assert {d["mn"]: d["status"] for d in o["devices"]} == {
        "A1": "online",
        "A2": "offline",
        "B1": "never",
        "C1": "online",
    }

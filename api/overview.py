"""The regulator's overview: tiles per region and per site, and each device's status.

Pure: it takes the devices (with their last arrival), the open alerts per site and
severity, today's received reporting slots per device, and ``now`` with the start of the
sites' local day; it reads no clock. A device is offline after three missed intervals
(at least five minutes) — the same horizon the console shows on the device list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

SITE_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")  # China keeps no daylight saving
SEVERITIES = ("critical", "major", "warning", "info")
OFFLINE_INTERVALS = 3
OFFLINE_FLOOR_S = 300.0


def site_day_start(now: datetime) -> datetime:
    """Midnight of the sites' local day that holds ``now``."""
    local = now.astimezone(SITE_TZ)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def device_status(device: Mapping[str, Any], now: datetime) -> str:
    """online / offline / never / revoked."""
    if not device["active"]:
        return "revoked"
    last = device.get("last_received_at") or device.get("last_ts")
    if last is None:
        return "never"
    horizon = max(OFFLINE_INTERVALS * float(device["interval_s"]), OFFLINE_FLOOR_S)
    return "offline" if (now - last).total_seconds() > horizon else "online"


def capture_today(
    device: Mapping[str, Any],
    received: int,
    now: datetime,
    day_start: datetime,
    first_today: datetime | None = None,
) -> float | None:
    """Received slots over those expected since the local midnight, or since the device
    was expected to report if that is later (its registration, or its first reading if
    earlier — history loaded after registering); None when nothing is expected yet or
    the device is revoked."""
    if not device["active"]:
        return None
    expected_from = device.get("registered_at") or day_start
    if first_today is not None:
        expected_from = min(expected_from, first_today)
    since = max(day_start, expected_from)
    expected = (now - since).total_seconds() / float(device["interval_s"])
    if expected < 1:
        return None
    return min(1.0, received / expected)


def _tile(key: str, name: str, region: str) -> dict[str, Any]:
    return {
        "key": key,
        "name": name,
        "region": region,
        "alerts": dict.fromkeys(SEVERITIES, 0),
        "devices": 0,
        "offline": 0,
        "capture_today": None,
        "_cap": [],
    }


def build_overview(
    devices: Iterable[Mapping[str, Any]],
    open_alerts: Iterable[tuple[str, str, int]],
    received_today: Mapping[str, tuple[int, datetime | None]],
    now: datetime,
) -> dict[str, Any]:
    """Tiles per site and per region, and the devices with a status.

    ``open_alerts``: (enterprise_id, severity, count) of active alerts;
    ``received_today``: per device, reporting slots since the local midnight and the first."""
    day_start = site_day_start(now)
    sites: dict[str, dict[str, Any]] = {}
    out_devices = []
    for d in devices:
        site = sites.setdefault(
            d["enterprise_id"],
            _tile(d["enterprise_id"], d["enterprise_name"], d.get("region") or ""),
        )
        status = device_status(d, now)
        received, first = received_today.get(d["mn"], (0, None))
        cap = capture_today(d, received, now, day_start, first)
        site["devices"] += 1
        site["offline"] += status in ("offline", "never")
        if cap is not None:
            site["_cap"].append(cap)
        out_devices.append({**d, "status": status, "capture_today": cap})
    for ent, severity, n in open_alerts:
        if ent in sites and severity in SEVERITIES:
            sites[ent]["alerts"][severity] += n
    regions: dict[str, dict[str, Any]] = {}
    for s in sites.values():
        r = regions.setdefault(s["region"], _tile(s["region"], s["region"], s["region"]))
        for sev in SEVERITIES:
            r["alerts"][sev] += s["alerts"][sev]
        r["devices"] += s["devices"]
        r["offline"] += s["offline"]
        r["_cap"].extend(s["_cap"])
    for tile in [*sites.values(), *regions.values()]:
        caps = tile.pop("_cap")
        tile["capture_today"] = sum(caps) / len(caps) if caps else None

    def order(t: dict[str, Any]) -> tuple:
        return (-t["alerts"]["critical"], -t["alerts"]["major"], -t["offline"], t["name"])

    return {
        "now": now,
        "day_start": day_start,
        "regions": sorted(regions.values(), key=order),
        "sites": sorted(sites.values(), key=order),
        "devices": out_devices,
    }

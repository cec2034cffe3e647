"""store.readings.device_times against the plain per-reading computation."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from offsite.core.readings import Reading
from offsite.store.readings import device_times


def _plain(readings: list[Reading]) -> dict[str, tuple[datetime, int]]:
    last: dict[str, tuple[datetime, int]] = {}
    for r in readings:
        ts, n = last.get(r.mn, (r.ts, 0))
        last[r.mn] = (max(ts, r.ts), n + 1)
    return last


def test_device_times_as_the_plain_loop() -> None:
    rng = random.Random(7)
    t0 = datetime(2026, 12, 6, tzinfo=UTC)
    east = timezone(timedelta(hours=8))
    for _ in range(50):
        readings: list[Reading] = []
        for _ in range(rng.randint(0, 40)):  # messages: one device, one shared ts object
            mn = rng.choice(["MN1", "MN2", "MN3"])
            ts = t0 + timedelta(minutes=rng.randint(-5, 5))
            if rng.random() < 0.3:
                ts = ts.astimezone(east)  # the same instant in another zone
            readings += [Reading(ts, mn, f"a{i:05d}", 1.0) for i in range(rng.randint(1, 4))]
            if rng.random() < 0.2:  # an equal time in another object, same device
                readings.append(Reading(ts + timedelta(0), mn, "a99999", 2.0))
        last, counts = device_times(readings)
        expected = _plain(readings)
        assert set(last) == set(counts) == set(expected)
        for mn, (ts, n) in expected.items():
            assert last[mn] == ts
            assert counts[mn] == n

"""The benchmarks' own arithmetic: percentiles, latency matching, counting readings,
the MQTT packets the lean publisher writes."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from offsite.bench.harness import (
    _publish_packet,
    _varint,
    latency,
    message_key,
    percentile,
    readings_in,
)
from offsite.simulators.publisher import payload_json


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_latency_matches_keys_and_counts_the_first_arrival() -> None:
    published = {1: 10.0, 2: 20.0, 3: 30.0}
    arrived = [(1, 10.5), (2, 20.1), (1, 11.0), (9, 99.0)]  # 1 redelivered, 9 unknown
    lat = latency(published, arrived)
    assert lat.count == 2
    assert lat.p50_ms == 100.0 and lat.p99_ms == 500.0


def test_message_key_depends_on_topic_and_payload() -> None:
    assert message_key("a/1", b"x") == message_key(b"a/1", b"x")
    assert message_key("a/1", b"x") != message_key("a/2", b"x")
    assert message_key("a/1", b"x") != message_key("a/1", b"y")


def test_readings_in_counts_values_also_flagged_and_batched() -> None:
    ts = datetime(2026, 11, 1, tzinfo=UTC)
    plain = payload_json(ts, {"a21026": 1.0, "a21002": 2.0, "a19001": 3.0})
    flagged = payload_json(ts, {"a21026": 1.0, "a21002": 2.0}, {"a21002": "M"})
    batch = b"[" + plain + b"," + flagged + b"]"
    assert readings_in([("t", plain), ("t", flagged), ("t", batch)]) == 3 + 2 + 5


def test_publish_packet_is_mqtt_qos1_publish() -> None:
    assert _varint(0) == b"\x00" and _varint(127) == b"\x7f"
    assert _varint(128) == b"\x80\x01" and _varint(16_383) == b"\xff\x7f"
    payload = b"p" * 200
    pkt = _publish_packet(b"a/b", 513, payload)
    body = b"\x00\x03a/b\x02\x01" + payload
    assert pkt == b"\x32" + _varint(len(body)) + body


def test_month_starts_are_the_whole_hours_a_30_day_window_fits_after() -> None:
    from datetime import timedelta

    from offsite.bench.query import month_starts

    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    got = month_starts(start, end)
    assert got[0] == start and got[-1] == end - timedelta(days=30)
    assert len(got) == 25  # 31 days hold 30-day windows starting at 25 whole hours
    assert all(t.minute == 0 and t.second == 0 for t in got)
    # a history starting mid-hour: the first window starts at the next whole hour
    late = month_starts(start + timedelta(minutes=20), end)
    assert late[0] == start + timedelta(hours=1) and late[-1] == got[-1]
    # shorter than a month: one window, from the first whole hour (the caller clips it)
    assert month_starts(start + timedelta(minutes=1), start + timedelta(days=2)) == [
        start + timedelta(hours=1)
    ]

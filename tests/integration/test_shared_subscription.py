"""Scale-out: several ingest workers share one MQTT 5 shared subscription
(``$share/<group>/<topic>``). Each message goes to one worker; every reading is stored
exactly once, each worker takes a share, and a worker that leaves and comes back gets
what the broker kept for its session. Needs Mosquitto itself (a lossless one of our own).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from offsite.core.registry import registry_from_dict
from offsite.ingest.service import IngestService
from offsite.mosquitto import LOSSLESS, OwnMosquitto
from tests import services
from tests.integration.helpers import (
    make_settings,
    publish_raw,
    register,
    running_ingest,
    scalar,
    topic_for,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.mosquitto]

MNS = [f"0300SHARE{i:015d}" for i in range(12)]
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E7",
                "name": "Shared Load Works",
                "points": [
                    {
                        "id": f"E7-P{i}",
                        "kind": "flue_gas",
                        "limits": {"a21026": 1000.0},
                        "devices": [{"mn": mn, "interval_s": 60}],
                    }
                    for i, mn in enumerate(MNS)
                ],
            }
        ]
    }
)


def _messages(subscription: str, start: datetime, ticks: range) -> list[tuple[str, bytes]]:
    """One message per device and tick, two pollutants each (values far below limits)."""
    return [
        (
            topic_for(subscription, mn),
            json.dumps(
                {
                    "ts": (start + timedelta(minutes=k)).isoformat(),
                    "values": {"a21026": 10.0 + (k * 7 + i) % 11, "a21002": 20.0 + (k * 3 + i) % 5},
                }
            ).encode(),
        )
        for k in ticks
        for i, mn in enumerate(MNS)
    ]


@pytest.fixture
def lossless_mosquitto(tmp_path: Path) -> Iterator[OwnMosquitto]:
    if services.mosquitto_binary() is None:
        if services.required():
            pytest.fail("OFFSITE_TEST_REQUIRE_SERVICES=1 but no mosquitto binary was found")
        pytest.skip("needs the mosquitto binary (a broker with a lossless configuration)")
    broker = OwnMosquitto(tmp_path, LOSSLESS, binary=services.mosquitto_binary())
    broker.start()
    yield broker
    broker.stop()


def _stored_once(db_url: str, expected: int) -> None:
    wait_for(
        lambda: scalar(db_url, "SELECT count(*) FROM readings") >= expected,
        what=f"{expected} readings stored",
    )
    assert scalar(db_url, "SELECT count(*) FROM readings") == expected
    assert scalar(db_url, "SELECT count(DISTINCT (mn, pollutant, ts)) FROM readings") == expected


def test_two_workers_share_the_stream_and_store_every_reading_once(
    db_url: str, lossless_mosquitto: OwnMosquitto, unique_topic: str
) -> None:
    register(db_url, REGISTRY)
    url = lossless_mosquitto.url
    group = f"g{uuid.uuid4().hex[:6]}"
    a = make_settings(db_url, url, unique_topic, mqtt_shared_group=group)
    b = make_settings(db_url, url, unique_topic, mqtt_shared_group=group)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=5)
    messages = _messages(unique_topic, start, range(50))
    with running_ingest(a) as wa, running_ingest(b) as wb:
        assert wa.subscriber is not None and wa.subscriber.mqtt5
        publish_raw(url, messages)
        _stored_once(db_url, 2 * len(messages))
        wait_for(
            lambda: wa.stats.messages + wb.stats.messages == len(messages),
            what="both workers' counts settle",
        )
    # each took a real share (Mosquitto deals round-robin), none was delivered twice
    assert min(wa.stats.messages, wb.stats.messages) >= len(messages) // 4
    assert wa.stats.duplicates == wb.stats.duplicates == 0
    assert wa.stats.dead_letters == wb.stats.dead_letters == 0


def test_a_worker_that_leaves_and_returns_loses_nothing(
    db_url: str, lossless_mosquitto: OwnMosquitto, unique_topic: str
) -> None:
    """A worker's persistent MQTT 5 session (clean start off, no expiry) keeps its place
    in the group while it is away: whatever the broker routed to it waits for it."""
    register(db_url, REGISTRY)
    url = lossless_mosquitto.url
    group = f"g{uuid.uuid4().hex[:6]}"
    a = make_settings(db_url, url, unique_topic, mqtt_shared_group=group)
    b = make_settings(db_url, url, unique_topic, mqtt_shared_group=group)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=5)
    first, second = (
        _messages(unique_topic, start, range(20)),
        _messages(unique_topic, start, range(20, 60)),
    )
    with running_ingest(a) as wa:
        assert a.database_url and a.mqtt_url
        wb = IngestService(b, a.database_url, a.mqtt_url)
        wb.start()
        publish_raw(url, first)
        _stored_once(db_url, 2 * len(first))
        wb.stop()  # leaves; its session stays with the broker
        publish_raw(url, second)  # while b is away
        wb2 = IngestService(b, a.database_url, a.mqtt_url)
        wb2.start()
        try:
            _stored_once(db_url, 2 * (len(first) + len(second)))
        finally:
            wb2.stop()
        assert wb2.error is None and wa.alive
    total = wa.stats.messages + wb.stats.messages + wb2.stats.messages
    assert total == len(first) + len(second)
    # what Mosquitto routed to b's session while it was away came to b on its return
    # (a clean start would have discarded it: those readings would never be stored)
    assert wb2.stats.messages > 0
    assert wa.stats.duplicates + wb.stats.duplicates + wb2.stats.duplicates == 0

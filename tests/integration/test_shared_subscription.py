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
    in the group while it is away, and the survivor adopts it meanwhile (the leaving
    worker says ``gone``): what the broker routes to it is stored without waiting for
    its return, and the returning worker takes its session back."""
    register(db_url, REGISTRY)
    url = lossless_mosquitto.url
    group = f"g{uuid.uuid4().hex[:6]}"
    a = make_settings(db_url, url, unique_topic, mqtt_shared_group=group)
    b = make_settings(db_url, url, unique_topic, mqtt_shared_group=group)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=5)
    first, second, third = (
        _messages(unique_topic, start, range(20)),
        _messages(unique_topic, start, range(20, 60)),
        _messages(unique_topic, start, range(60, 80)),
    )
    with running_ingest(a) as wa:
        assert a.database_url and a.mqtt_url
        wb = IngestService(b, a.database_url, a.mqtt_url)
        wb.start()
        publish_raw(url, first)
        _stored_once(db_url, 2 * len(first))
        wb.stop()  # leaves; its session stays with the broker, and a adopts it
        wait_for(lambda: wa.subscriber and wa.subscriber.adopted, what="a adopts b's session")
        publish_raw(url, second)  # while b is away: all of it stored by a
        _stored_once(db_url, 2 * (len(first) + len(second)))
        wb2 = IngestService(b, a.database_url, a.mqtt_url)
        wb2.start()
        try:
            assert wa.subscriber is not None
            wait_for(lambda: not wa.subscriber.adopted, what="b takes its session back")  # type: ignore[union-attr]
            publish_raw(url, third)
            _stored_once(db_url, 2 * (len(first) + len(second) + len(third)))
        finally:
            wb2.stop()
        assert wb2.error is None and wa.alive
    total = wa.stats.messages + wb.stats.messages + wb2.stats.messages
    assert total == len(first) + len(second) + len(third)
    assert wa.stats.messages >= len(second)  # b's share of it included
    assert wb2.stats.messages > 0  # back in the group
    assert wa.stats.duplicates + wb.stats.duplicates + wb2.stats.duplicates == 0


def test_a_killed_worker_s_share_goes_to_the_survivor(
    tmp_path: Path, db_url: str, lossless_mosquitto: OwnMosquitto, unique_topic: str
) -> None:
    """kill -9 of one of two workers: the broker publishes its will, the survivor adopts
    its session, gets the messages it held unacknowledged and its share from then on,
    and stores everything, once, without the dead worker ever coming back."""
    from offsite.faults import IngestProcess, Stream

    register(db_url, REGISTRY)
    url = lossless_mosquitto.url
    group = f"g{uuid.uuid4().hex[:6]}"
    a = make_settings(db_url, url, unique_topic, mqtt_shared_group=group)
    victim = IngestProcess(
        {
            "OFFSITE_DATABASE_URL": db_url,
            "OFFSITE_MQTT_URL": url,
            "OFFSITE_MQTT_TOPIC": unique_topic,
            "OFFSITE_MQTT_CLIENT_ID": f"victim-{uuid.uuid4().hex[:6]}",
            "OFFSITE_MQTT_SHARED_GROUP": group,
            "OFFSITE_RULES_RUNNER": "external",
            # slow to commit: it always holds messages unacknowledged when killed
            "OFFSITE_BATCH_MAX_DELAY_MS": "1000",
            "OFFSITE_BATCH_IDLE_MS": "1000",
        },
        tmp_path / "victim.log",
    )
    with running_ingest(a) as wa:
        victim.start()
        try:
            wait_for(lambda: "MQTT subscribed" in victim.output(), 60, what="the victim")
            stream = Stream(
                url, unique_topic.replace("+", "{mn}"), MNS, count=1200, rate=300
            ).start()
            wait_for(lambda: stream.acked >= 400, what="a third of the stream published")
            victim.kill9()
            assert stream.wait(60)
            stream.close()
            expected = stream.readings
            wait_for(
                lambda: scalar(db_url, "SELECT count(*) FROM readings") >= expected,
                30,
                what="everything stored by the survivor alone",
            )
        finally:
            victim.stop()
        assert scalar(db_url, "SELECT count(*) FROM readings") == expected
        distinct = "SELECT count(DISTINCT (mn, pollutant, ts)) FROM readings"
        assert scalar(db_url, distinct) == expected
        assert wa.subscriber is not None and wa.subscriber.adopted

"""Ingest survives a broker restart: paho reconnects with backoff, the persistent
session (clean session off) keeps the subscription and the QoS 1 messages queued while
ingest was away, and everything published is stored once. Needs Mosquitto itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from offsite.core.registry import registry_from_dict
from offsite.mosquitto import OwnMosquitto
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

MN = "030000A8900016F000169DC0"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E3",
                "name": "Broker Restart Works",
                "points": [
                    {
                        "id": "E3-P1",
                        "kind": "flue_gas",
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": MN, "interval_s": 60}],
                    }
                ],
            }
        ]
    }
)


def _messages(topic: str, start: datetime, n: int, offset: int) -> list[tuple[str, bytes]]:
    return [
        (
            topic,
            json.dumps(
                {
                    "ts": (start + timedelta(seconds=offset + i)).isoformat(),
                    "values": {"a21026": 10.0 + (offset + i) % 7},
                }
            ).encode(),
        )
        for i in range(n)
    ]


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> OwnMosquitto:
    if services.mosquitto_binary() is None:
        if services.required():
            pytest.fail("OFFSITE_TEST_REQUIRE_SERVICES=1 but no mosquitto binary was found")
        pytest.skip(
            "needs the mosquitto binary (restarts a broker of its own); "
            "set OFFSITE_TEST_MOSQUITTO or install mosquitto"
        )
    broker = OwnMosquitto(tmp_path, binary=services.mosquitto_binary())
    broker.start()
    yield broker
    broker.stop()


def test_ingest_reconnects_and_loses_nothing_across_a_broker_restart(
    db_url: str, own_mosquitto: OwnMosquitto, unique_topic: str
) -> None:
    register(db_url, REGISTRY)
    url = own_mosquitto.url
    settings = make_settings(db_url, url, unique_topic, mqtt_keepalive_s=5)
    topic = topic_for(unique_topic, MN)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    with running_ingest(settings) as ingest:
        publish_raw(url, _messages(topic, start, 50, 0))
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM readings") == 50, what="first 50 readings"
        )
        own_mosquitto.stop()
        wait_for(lambda: not ingest.subscriber.connected.is_set(), what="disconnect noticed")
        own_mosquitto.start()
        wait_for(
            lambda: ingest.subscriber.connected.is_set(),
            timeout=45,
            what="ingest reconnected by itself",
        )
        publish_raw(url, _messages(topic, start, 50, 50))
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM readings") == 100,
            what="all 100 readings after the restart",
        )
        assert ingest.alive
    assert scalar(db_url, "SELECT count(DISTINCT ts) FROM readings") == 100

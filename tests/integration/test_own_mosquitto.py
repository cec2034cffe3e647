"""The tests' and soak's own broker: ``start`` succeeds only when its own process serves
the port, not when something else answers there (a restart leaves the port free for a
moment, and another process may take it)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from offsite.mosquitto import OwnMosquitto
from tests import services


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[OwnMosquitto]:
    if services.mosquitto_binary() is None:
        if services.required():
            pytest.fail("OFFSITE_TEST_REQUIRE_SERVICES=1 but no mosquitto binary was found")
        pytest.skip("needs the mosquitto binary; set OFFSITE_TEST_MOSQUITTO or install it")
    own = OwnMosquitto(tmp_path, binary=services.mosquitto_binary())
    yield own
    own.stop()


def test_start_fails_when_another_process_holds_the_port(broker: OwnMosquitto) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", broker.port))
        squatter.listen()
        with pytest.raises(RuntimeError, match=f"port {broker.port}"):
            broker.start()
    assert broker.proc is None or broker.proc.poll() is not None


def test_restart_serves_mqtt_on_the_same_port(broker: OwnMosquitto) -> None:
    broker.start()
    broker.stop()
    broker.start()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="own-mosquitto-test")
    assert client.connect("127.0.0.1", broker.port) == mqtt.MQTT_ERR_SUCCESS
    client.disconnect()

"""Broker credentials generated from the registry, checked by the real Mosquitto binary:
a device logs in with its own password, publishes only to its own topic; revoked,
unknown, anonymous and wrong-password clients are refused."""

from __future__ import annotations

import queue
import subprocess
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from offsite.broker_auth import BrokerAuthError, render
from offsite.core.credentials import mosquitto_hash, mosquitto_verify
from offsite.core.registry import registry_from_dict
from offsite.mosquitto import OwnMosquitto
from offsite.store.registry import device_mqtt_hashes, set_device_mqtt_hash
from tests import services
from tests.integration.helpers import register

pytestmark = [pytest.mark.integration, pytest.mark.mosquitto]

A, B, C = "AAAA0001", "BBBB0002", "CCCC0003"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E1",
                "name": "One",
                "points": [
                    {
                        "id": "E1-P1",
                        "kind": "flue_gas",
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": A}, {"mn": B}, {"mn": C}],
                    }
                ],
            }
        ]
    }
)


def _binary() -> str:
    binary = services.mosquitto_binary()
    if binary is None:
        if services.required():
            pytest.fail("OFFSITE_TEST_REQUIRE_SERVICES=1 but no mosquitto binary was found")
        pytest.skip("needs the mosquitto binary")
    return binary


def _client(port: int, user: str | None, password: str | None) -> tuple[mqtt.Client, int]:
    """Connect and return the client with the CONNACK reason code (0: accepted)."""
    got: queue.Queue[int] = queue.Queue()
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"t-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
    )
    if user is not None:
        c.username_pw_set(user, password)
    c.on_connect = lambda cl, ud, flags, rc, props: got.put(rc.value)
    c.connect("127.0.0.1", port, 10)
    c.loop_start()
    return c, got.get(timeout=10)


def test_mosquitto_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    tool = Path(_binary()).parent.parent / "bin" / "mosquitto_passwd"
    if not tool.exists():
        pytest.skip("mosquitto_passwd not installed beside mosquitto")
    f = tmp_path / "pw"
    subprocess.run([str(tool), "-c", "-b", str(f), "dev", "s3cret"], check=True)
    stored = f.read_text().strip().split(":", 1)[1]
    assert stored.startswith("$7$101$")
    assert mosquitto_verify(stored, "s3cret") and not mosquitto_verify(stored, "s3creT")
    salt = __import__("base64").b64decode(stored.split("$")[3])
    assert mosquitto_hash("s3cret", salt) == stored


def test_generated_files_enforce_per_device_credentials_and_topics(
    tmp_path: Path, db_url: str
) -> None:
    binary = _binary()
    register(db_url, REGISTRY)
    pw = {A: "pw-a-" + uuid.uuid4().hex, B: "pw-b-" + uuid.uuid4().hex}
    with psycopg.connect(db_url) as conn:
        for mn, p in pw.items():
            assert set_device_mqtt_hash(conn, mn, mosquitto_hash(p))
        conn.commit()
        conn.execute(
            "UPDATE devices SET revoked_at = now(), revoked_reason = 'stolen' WHERE mn = %s", (B,)
        )
        conn.commit()
        hashes = device_mqtt_hashes(conn)
    assert [mn for mn, _ in hashes] == [A]  # B revoked, C has no MQTT credentials
    auth = render(hashes, "devices", "telemetry", "ingest", "ingest-pw")
    (tmp_path / "passwd").write_text(auth.passwd)
    (tmp_path / "acl").write_text(auth.acl)
    broker = OwnMosquitto(
        tmp_path / "b",
        binary=binary,
        extra_config=(
            f"allow_anonymous false\npassword_file {tmp_path / 'passwd'}\n"
            f"acl_file {tmp_path / 'acl'}\n"
        ),
    )
    broker.start()
    clients: list[mqtt.Client] = []
    try:
        ingest, rc = _client(broker.port, "ingest", "ingest-pw")
        clients.append(ingest)
        assert rc == 0, broker.log()
        got: queue.Queue[str] = queue.Queue()
        subscribed: queue.Queue[list] = queue.Queue()
        ingest.on_message = lambda cl, ud, m: got.put(m.topic)
        ingest.on_subscribe = lambda cl, ud, mid, codes, props: subscribed.put(codes)
        ingest.subscribe("devices/+/telemetry", qos=1)
        assert [c.value for c in subscribed.get(timeout=10)] == [1]
        device, rc = _client(broker.port, A, pw[A])
        clients.append(device)
        assert rc == 0

        device.publish(f"devices/{B}/telemetry", b"{}", qos=1).wait_for_publish(10)
        device.publish(f"devices/{A}/telemetry", b"{}", qos=1).wait_for_publish(10)
        # the broker drops the spoofed publish (ACL) and delivers the device's own one
        assert got.get(timeout=10) == f"devices/{A}/telemetry"
        assert got.empty()

        for user, password in (
            (A, "wrong"),
            (B, pw[B]),
            (C, "anything"),
            (None, None),
            ("ingest", "nope"),
        ):
            c, rc = _client(broker.port, user, password)
            clients.append(c)
            assert rc in (134, 135), (user, rc)  # paho maps 3.1.1 refusals to these
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        broker.stop()


def test_render_refuses_names_the_files_cannot_carry() -> None:
    with pytest.raises(BrokerAuthError):
        render([("bad:name", mosquitto_hash("x"))], "devices", "telemetry")
    with pytest.raises(BrokerAuthError):
        render([("AAAA", "plain-text")], "devices", "telemetry")
    with pytest.raises(BrokerAuthError):
        render([], "devices", "telemetry", "ingest", None)

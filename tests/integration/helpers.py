"""Small helpers for integration tests: settings, waiting, a running ingest worker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from offsite.core.registry import Registry
from offsite.core.settings import Settings, load_settings
from offsite.ingest.service import IngestService
from offsite.store.registry import save_registry


def make_settings(db_url: str, mqtt_url: str, topic: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": db_url,
        "mqtt_url": mqtt_url,
        "mqtt_topic": topic,
        "mqtt_client_id": f"offsite-test-{uuid.uuid4().hex[:8]}",
        "batch_max_delay_ms": 50,
        "offline_check_s": 0.5,
        "alert_clear_s": 60.0,
    }
    base.update(overrides)
    return load_settings(**base)


def topic_for(subscription: str, mn: str) -> str:
    return subscription.replace("+", mn)


def wait_for(
    cond: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what} (last value: {value!r})"
            )
        time.sleep(interval)


def scalar(db_url: str, query: str, *args: Any) -> Any:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(query.encode(), args).fetchone()
        return row[0] if row else None


def register(db_url: str, registry: Registry) -> None:
    with psycopg.connect(db_url) as conn:
        save_registry(conn, registry)


@contextmanager
def running_ingest(settings: Settings) -> Iterator[IngestService]:
    assert settings.database_url and settings.mqtt_url
    svc = IngestService(settings, settings.database_url, settings.mqtt_url)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()
        assert svc.error is None, f"ingest pipeline failed: {svc.error!r}"
        _forget_session(settings)


def _forget_session(settings: Settings) -> None:
    """Drop the test client's persistent session from the shared broker."""
    import paho.mqtt.client as mqtt

    from offsite.ingest.subscriber import parse_mqtt_url

    assert settings.mqtt_url
    host, port, user, password = parse_mqtt_url(settings.mqtt_url)
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=settings.mqtt_client_id,
        clean_session=True,
        protocol=mqtt.MQTTv311,
    )
    if user:
        c.username_pw_set(user, password)
    try:
        c.connect(host, port, 10)
        c.loop_start()
        time.sleep(0.1)
        c.disconnect()
        c.loop_stop()
    except OSError:
        pass


def publish_raw(mqtt_url: str, messages: list[tuple[str, bytes]], qos: int = 1) -> None:
    """Publish raw payloads (good or deliberately bad) and wait for every PUBACK."""
    import paho.mqtt.client as mqtt

    from offsite.ingest.subscriber import parse_mqtt_url

    host, port, user, password = parse_mqtt_url(mqtt_url)
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"offsite-test-pub-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
    )
    if user:
        c.username_pw_set(user, password)
    c.connect(host, port, 10)
    c.loop_start()
    try:
        infos = [c.publish(topic, payload, qos=qos) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        c.disconnect()
        c.loop_stop()


def token_for(
    db_url: str,
    role: str,
    *,
    user_id: str | None = None,
    enterprise: str | None = None,
    region: str = "",
    password: str | None = None,
) -> str:
    """Create (or update) a user of ``role`` in the test database and return an API key."""
    from offsite.store.users import create_user, issue_token

    user_id = user_id or f"{role}-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_url) as conn:
        create_user(conn, user_id, role, password, enterprise_id=enterprise, region=region)
        return issue_token(conn, user_id)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

"""Locate the services integration tests run against.

``OFFSITE_TEST_DATABASE_URL`` / ``OFFSITE_TEST_MQTT_URL`` name them; unset, the local
PostgreSQL (127.0.0.1:5432, database ``test``) and Mosquitto (127.0.0.1:1883) are used
when they answer, else the embedded ones (pgserver, amqtt) are started for the session.
With ``OFFSITE_TEST_REQUIRE_SERVICES=1`` (CI) a missing real service is an error, never a
fallback. ``OFFSITE_TEST_MOSQUITTO`` names the mosquitto binary for tests that run their
own broker (default: ``mosquitto`` on PATH or /usr/sbin/mosquitto).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_MQTT = "mqtt://127.0.0.1:1883"


def required() -> bool:
    return os.environ.get("OFFSITE_TEST_REQUIRE_SERVICES", "") not in ("", "0", "false")


def db_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def mqtt_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 1883), 2):
            return True
    except OSError:
        return False


def mosquitto_binary() -> str | None:
    from offsite.mosquitto import mosquitto_binary as found

    binary = os.environ.get("OFFSITE_TEST_MOSQUITTO") or found()
    return binary if binary and Path(binary).exists() else None

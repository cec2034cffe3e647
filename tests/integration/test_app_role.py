"""The services run as the limited application role (docker-compose.yml: the login role
``offsite_service``, a member of ``offsite_app`` from migration 0007), not as the owner:
the owner migrates, and a service starting on an up-to-date schema needs no DDL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from offsite.store.migrate import current_version, migrate
from tests.integration.helpers import (
    make_settings,
    publish_raw,
    register,
    running_ingest,
    scalar,
    topic_for,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def app_url(db_url: str, admin_db_url: str) -> Iterator[str]:
    """The test database reached as a fresh login role that is only a member of offsite_app."""
    role = f"offsite_svc_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_db_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE offsite_app").format(sql.Identifier(role))
        )
    try:
        yield urlunsplit(
            urlsplit(db_url)._replace(netloc=f"{role}@{urlsplit(db_url).netloc.split('@')[-1]}")
        )
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
            )
        with psycopg.connect(admin_db_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_service_starts_as_the_app_role_on_a_migrated_schema(app_url: str) -> None:
    with psycopg.connect(app_url) as conn:
        assert migrate(conn) == []  # nothing to do, and no CREATE needed to find that out
        assert current_version(conn) > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE not_for_the_app (x int)")


def test_ingest_stores_as_the_app_role(
    app_url: str, db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    from datetime import UTC, datetime

    from offsite.simulators.publisher import payload_json
    from offsite.simulators.scenarios import build_fleet

    now = datetime.now(UTC).replace(microsecond=0)
    fleet = build_fleet(1, seed=2, start=now, faults=[])
    register(db_url, fleet.registry)
    (message,) = fleet.messages(now)
    settings = make_settings(app_url, mqtt_url, unique_topic)
    with running_ingest(settings):
        payload = payload_json(now, message.values, message.flags)
        publish_raw(mqtt_url, [(topic_for(unique_topic, message.mn), payload)])
        wait_for(
            lambda: (
                scalar(db_url, "SELECT count(*) FROM readings WHERE mn = %s", message.mn)
                == len(message.values)
            ),
            what="the readings stored by the app role",
        )


def test_storage_upkeep_as_the_app_role_changes_nothing_already_set(admin_db_url: str) -> None:
    """Once the owner's maintain job has run, ingest's upkeep as the app role finds nothing
    to change instead of failing (at every start and every hour) on tables it does not
    own: the retention policy on TimescaleDB, the months ahead on plain partitions. What
    does need a change still needs the owner."""
    from datetime import UTC, datetime, timedelta

    from offsite.store.errors import StoreError
    from offsite.store.migrate import timescale_active
    from offsite.store.partitions import maintain

    name, role = f"offsite_up_{uuid.uuid4().hex[:10]}", f"offsite_svc_{uuid.uuid4().hex[:10]}"
    admin = urlsplit(admin_db_url)
    owner_url = urlunsplit(admin._replace(path=f"/{name}"))
    app_url = urlunsplit(
        admin._replace(path=f"/{name}", netloc=f"{role}@{admin.netloc.split('@')[-1]}")
    )
    now, kept = datetime.now(UTC), timedelta(days=400)
    with psycopg.connect(admin_db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(owner_url) as conn:
            migrate(conn)
            backend = "timescaledb" if timescale_active(conn) else "partitioned"
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN IN ROLE offsite_app").format(sql.Identifier(role))
            )
            conn.commit()
            maintain(conn, now, months_ahead=2, retention=kept)
        with psycopg.connect(app_url) as conn:
            assert maintain(conn, now, months_ahead=2, retention=kept).backend == backend
            with pytest.raises((psycopg.errors.InsufficientPrivilege, StoreError)) as err:
                if backend == "timescaledb":  # a new retention policy
                    maintain(conn, now, months_ahead=2, retention=timedelta(days=30))
                else:  # a new month
                    maintain(conn, now, months_ahead=4, retention=kept)
            denied = psycopg.errors.InsufficientPrivilege
            assert isinstance(err.value, denied) or isinstance(err.value.__cause__, denied)
    finally:
        with psycopg.connect(admin_db_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))

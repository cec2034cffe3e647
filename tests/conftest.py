"""Shared fixtures: real services located by environment, embedded ones as fallback."""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tests import services


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that runs a command in-process (``cli.main``) points the root logger at
    the stderr pytest captured for it; left there, a thread logging in a later test
    writes to that closed stream ("Logging error … I/O operation on closed file")."""
    from offsite.core.logs import JsonFormatter, TextFormatter

    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    ours = [
        h
        for h in root.handlers
        if h not in before and isinstance(h.formatter, JsonFormatter | TextFormatter)
    ]
    for h in ours:  # pytest's own capture handlers come and go by themselves
        root.removeHandler(h)
    if ours:
        root.setLevel(level)


@pytest.fixture(scope="session")
def admin_db_url() -> Iterator[str]:
    """A URL to a database from which test databases can be created."""
    url = os.environ.get("OFFSITE_TEST_DATABASE_URL", services.DEFAULT_DB)
    if services.db_answers(url):
        yield url
        return
    if services.required():
        pytest.fail(f"PostgreSQL at {url} does not answer and OFFSITE_TEST_REQUIRE_SERVICES=1")
    from offsite.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="offsite-test-pg-") as d:
        pg = EmbeddedPostgres(Path(d), delete_on_stop=True)
        try:
            yield pg.start()
        finally:
            pg.stop()


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    url = os.environ.get("OFFSITE_TEST_MQTT_URL", services.DEFAULT_MQTT)
    if services.mqtt_answers(url):
        yield url
        return
    if services.required():
        pytest.fail(f"MQTT broker at {url} does not answer and OFFSITE_TEST_REQUIRE_SERVICES=1")
    from offsite.embedded import EmbeddedBroker

    broker = EmbeddedBroker()
    try:
        yield broker.start()
    finally:
        broker.stop()


def _with_dbname(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def template_db(admin_db_url: str) -> Iterator[str]:
    """A migrated template database; each test clones it (fast, and fully isolated)."""
    from offsite.store.migrate import migrate

    name = f"offsite_tpl_{os.getpid()}"
    with psycopg.connect(admin_db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(_with_dbname(admin_db_url, name)) as conn:
        migrate(conn)
    try:
        yield name
    finally:
        with psycopg.connect(admin_db_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def db_url(admin_db_url: str, template_db: str) -> Iterator[str]:
    name = f"offsite_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_db_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    try:
        yield _with_dbname(admin_db_url, name)
    finally:
        with psycopg.connect(admin_db_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def unique_topic() -> str:
    """A topic subscription of this test's own, so tests never see each other's messages."""
    return f"offsite-test/{uuid.uuid4().hex[:10]}/devices/+/telemetry"


# The source tree's folders are importable from its root by their bare names (ingest,
# store, …), but the installed package knows them only as offsite.*: a bare import or
# resources.files("store") would pass here and fail from the wheel.
_BARE = {"core", "rules", "store", "ingest", "runner", "api", "simulators", "bench"}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import sys

    bare = sorted(_BARE & set(sys.modules))
    if bare:
        print(f"\nbare top-level imports of the source tree's folders: {bare}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

"""Shared fixtures: real services located by environment, embedded ones as fallback."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tests import services

_DATA_DIR: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """An app built without OFFSITE_QR_SECRET keeps a generated one in OFFSITE_DATA_DIR
    (default ./.offsite): the tests' go to a temporary directory, not to the checkout,
    where a later demo or ``serve`` would sign with it. Set here, before collection, since
    some modules build an app at import (test_openapi_fuzz's schema); a test sets its own
    as it needs."""
    _DATA_DIR.append(tempfile.mkdtemp(prefix="offsite-test-data-"))
    os.environ["OFFSITE_DATA_DIR"] = _DATA_DIR[0]


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
        _leg.append(f"{backend_of(url)} ({url})")
        yield url
        return
    if services.required():
        pytest.fail(f"PostgreSQL at {url} does not answer and OFFSITE_TEST_REQUIRE_SERVICES=1")
    from offsite.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="offsite-test-pg-") as d:
        pg = EmbeddedPostgres(Path(d), delete_on_stop=True)
        try:
            _leg.append("plain (embedded PostgreSQL)")
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


# -- the two storage backends ---------------------------------------------------------
# The suite runs on one backend, OFFSITE_TEST_DATABASE_URL's (the "leg"): plain
# PostgreSQL by default, TimescaleDB when that URL points at a server with the extension
# preloaded. Tests of TimescaleDB features, and the tests that compare both backends,
# find TimescaleDB at OFFSITE_TEST_TIMESCALE_URL (or use the leg's server when it is
# TimescaleDB) and plain PostgreSQL at OFFSITE_TEST_PLAIN_URL (or the leg's server, or
# the local default). Unset on a laptop, they skip, and the session's last line says the
# TimescaleDB leg was not run; CI (.ci/run) sets both and refuses any skip.
TIMESCALE_ENV = "OFFSITE_TEST_TIMESCALE_URL"
PLAIN_ENV = "OFFSITE_TEST_PLAIN_URL"
_backend_seen: dict[str, str] = {}  # admin URL → "timescaledb" | "plain"


def backend_of(url: str) -> str:
    """ "timescaledb" when the server preloads the extension (every database migrated there
    becomes a hypertable), else "plain"."""
    known = _backend_seen.get(url)
    if known is None:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                """SELECT current_setting('shared_preload_libraries', true) LIKE '%timescaledb%'
                          AND EXISTS (SELECT 1 FROM pg_available_extensions
                                      WHERE name = 'timescaledb')"""
            ).fetchone()
        known = _backend_seen[url] = "timescaledb" if row and row[0] else "plain"
    return known


class Templates:
    """One migrated template database per server, made on first use, dropped at the end.

    On TimescaleDB a template needs care: the extension's launcher starts a job
    scheduler in every database that has the extension, and ``CREATE DATABASE … TEMPLATE``
    refuses a source with anyone connected. Once migrated, the template is marked a
    template that allows no connections (the launcher then leaves it alone) and the
    scheduler already running in it is ended; the clones are ordinary databases with
    schedulers of their own, whose jobs start paused (see ``_make_template``).
    """

    def __init__(self) -> None:
        self._made: dict[str, str] = {}

    def for_server(self, admin_url: str) -> str:
        name = self._made.get(admin_url)
        if name is None:
            name = f"offsite_tpl_{os.getpid()}_{len(self._made)}"
            _make_template(admin_url, name)
            self._made[admin_url] = name
        return name

    def clone(self, admin_url: str, prefix: str = "offsite_t") -> str:
        """A new database cloned from the server's template; returns its URL.

        On TimescaleDB a scheduler the launcher had already decided to start may still
        connect to the template once, briefly (it then sees a template and exits): the
        clone waits that out rather than fail."""
        import time

        template = self.for_server(admin_url)
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
        deadline = time.monotonic() + 30
        with psycopg.connect(admin_url, autocommit=True) as conn:
            while True:
                try:
                    conn.execute(create)
                    break
                except psycopg.errors.ObjectInUse:
                    if time.monotonic() > deadline:
                        raise
                    _disconnect_everyone(conn, template)
                    time.sleep(0.2)
        return _with_dbname(admin_url, name)

    def drop_all(self) -> None:
        for admin_url, name in self._made.items():
            _drop(admin_url, name)
        self._made.clear()


def _make_template(admin_url: str, name: str) -> None:
    from offsite.store.migrate import migrate, timescale_active

    _drop(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    # One transaction (migrate's own become savepoints): the scheduler TimescaleDB starts
    # once the extension is committed must find every job paused already. A job it began
    # before the pause was cut short when the template's sessions were ended, and every
    # clone then inherited it as a crash, which the scheduler holds off for minutes (a
    # test letting the scheduler run that job waited in vain).
    with psycopg.connect(_with_dbname(admin_url, name)) as conn, conn.transaction():
        migrate(conn)
        timescale = timescale_active(conn)
        if timescale:
            # Policies do not run by themselves in test databases: a refresh or a
            # compression landing mid-test at a moment nobody chose would make results
            # depend on timing. Tests of the policies run them with CALL run_job(id) or
            # resume them one at a time (test_timescale.py), and test_timescale.py checks
            # that a migrated database has them scheduled.
            conn.execute(
                "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
            )
    if timescale:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            # Not connectable either: TimescaleDB's loader sends its launcher a RESTART for
            # the template of every CREATE DATABASE … TEMPLATE whose template allows
            # connections, and the scheduler restarted then connects to it (then sees a
            # template and exits) — sometimes just as the clone needs it alone.
            conn.execute(
                sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                    sql.Identifier(name)
                )
            )
            _disconnect_everyone(conn, name)


def _disconnect_everyone(conn: psycopg.Connection, name: str) -> None:
    """End every session in database ``name`` (TimescaleDB's scheduler and its jobs) and
    wait until none is left; the launcher starts no new one in a template."""
    import time

    deadline = time.monotonic() + 30
    while True:
        row = conn.execute(
            """SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE datname = %s AND pid <> pg_backend_pid()""",
            (name,),
        ).fetchone()
        if not (row and row[0]):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"sessions in template database {name} would not end")
        time.sleep(0.1)


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        ident = sql.Identifier(name)
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(ident))
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(ident))


def drop_database(admin_url: str, url: str) -> None:
    """Drop the database ``url`` names, from ``admin_url`` (its sessions are ended)."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def templates() -> Iterator[Templates]:
    t = Templates()
    try:
        yield t
    finally:
        t.drop_all()


@pytest.fixture(scope="session")
def template_db(admin_db_url: str, templates: Templates) -> str:
    """The name of a migrated template database on the leg's server; each test clones
    it (fast, and fully isolated)."""
    return templates.for_server(admin_db_url)


@pytest.fixture
def db_url(admin_db_url: str, templates: Templates) -> Iterator[str]:
    url = templates.clone(admin_db_url)
    try:
        yield url
    finally:
        drop_database(admin_db_url, url)


def _answering(url: str, what: str) -> str:
    if not services.db_answers(url):
        pytest.fail(f"{what} at {url} does not answer")
    return url


@pytest.fixture(scope="session")
def timescale_admin_url(admin_db_url: str) -> str:
    """A server with TimescaleDB preloaded: OFFSITE_TEST_TIMESCALE_URL, or the leg's own."""
    url = os.environ.get(TIMESCALE_ENV)
    if url is None:
        if backend_of(admin_db_url) == "timescaledb":
            return admin_db_url
        _timescale_missing.append(True)
        pytest.skip(f"TimescaleDB leg not run: {TIMESCALE_ENV} is unset")
    _answering(url, "TimescaleDB")
    if backend_of(url) != "timescaledb":
        pytest.fail(f"{TIMESCALE_ENV}={url} is a server without TimescaleDB preloaded")
    return url


@pytest.fixture(scope="session")
def plain_admin_url(admin_db_url: str) -> str:
    """A server without TimescaleDB: OFFSITE_TEST_PLAIN_URL, or the leg's own, or the
    local default."""
    url = os.environ.get(PLAIN_ENV)
    if url is None:
        if backend_of(admin_db_url) == "plain":
            return admin_db_url
        url = services.DEFAULT_DB
    _answering(url, "plain PostgreSQL")
    if backend_of(url) != "plain":
        pytest.fail(f"{url} preloads TimescaleDB; set {PLAIN_ENV} to a plain server")
    return url


@pytest.fixture
def timescale_db_url(timescale_admin_url: str, templates: Templates) -> Iterator[str]:
    """A migrated database of this test's own on TimescaleDB."""
    url = templates.clone(timescale_admin_url)
    try:
        yield url
    finally:
        drop_database(timescale_admin_url, url)


@pytest.fixture
def plain_db_url(plain_admin_url: str, templates: Templates) -> Iterator[str]:
    """A migrated database of this test's own on plain PostgreSQL (monthly partitions)."""
    url = templates.clone(plain_admin_url)
    try:
        yield url
    finally:
        drop_database(plain_admin_url, url)


@pytest.fixture(params=["plain", "timescaledb"])
def backend_db_url(request: pytest.FixtureRequest) -> str:
    """The same test once on each backend: a database of its own on plain PostgreSQL, then
    on TimescaleDB."""
    fixture = "plain_db_url" if request.param == "plain" else "timescale_db_url"
    return str(request.getfixturevalue(fixture))


_timescale_missing: list[bool] = []
_leg: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which backend the leg ran on."""
    if _leg:
        terminalreporter.write_line(f"database backend of this run: {_leg[0]}")


def pytest_unconfigure(config: pytest.Config) -> None:
    """The session's very last line, when TimescaleDB was not there to test."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if _timescale_missing and reporter is not None:
        reporter.write_line(
            f"TimescaleDB leg NOT run: {TIMESCALE_ENV} is unset, so the tests of TimescaleDB "
            "features and of both backends were skipped (CI runs them: .ci/run)",
            yellow=True,
            bold=True,
        )
    if _DATA_DIR:  # the temporary OFFSITE_DATA_DIR of pytest_configure
        shutil.rmtree(_DATA_DIR.pop(), ignore_errors=True)


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

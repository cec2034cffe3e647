"""Embedded services for the fresh-laptop default: PostgreSQL (pgserver) and an MQTT
broker (amqtt), each started by the program itself on a private socket or free port,
never assuming 5432 or 1883 is free.

amqtt speaks MQTT 3.1.1 only; ingest uses 3.1.1 everywhere, so that is enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from offsite.core.errors import EmbeddedError
from offsite.core.secrecy import redact

log = logging.getLogger("offsite.embedded")

# What a server install lacks for the embedded services (they are an extra).
INSTALL_HINT = "pip install 'offsite[embedded]'"


def _importable(module: str) -> bool:
    try:
        with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set"
            warnings.simplefilter("ignore")
            __import__(module)
    except ImportError:
        return False
    return True


def require_embedded(database_url: str | None, mqtt_url: str | None) -> None:
    """Fail before anything starts, saying what to install, when an unset service would
    need an embedded one whose package the extra would have brought."""
    missing = [
        f"{module} (for the {what}; or set {var})"
        for module, what, var, url in (
            ("pgserver", "embedded PostgreSQL", "OFFSITE_DATABASE_URL", database_url),
            ("amqtt", "embedded MQTT broker", "OFFSITE_MQTT_URL", mqtt_url),
        )
        if url is None and not _importable(module)
    ]
    if missing:
        raise EmbeddedError(
            f"the embedded services are not installed: {INSTALL_HINT} "
            f"(missing {', '.join(missing)})"
        )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    """A PostgreSQL server in ``data_dir``, reached over a Unix socket."""

    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False) -> None:
        self.data_dir = data_dir
        self.delete_on_stop = delete_on_stop
        self._server: Any = None

    def start(self) -> str:
        try:
            with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set"
                warnings.simplefilter("ignore")
                import pgserver
        except ImportError as exc:
            raise EmbeddedError(
                f"the embedded PostgreSQL is not installed: {INSTALL_HINT} "
                "(or set OFFSITE_DATABASE_URL)"
            ) from exc
        # pgserver logs every initdb/pg_ctl command and its output at INFO: that buries
        # what `db status`, `users add` or `load-registry` print. Its warnings still show.
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set"
                warnings.simplefilter("ignore")
                self._server = pgserver.get_server(
                    self.data_dir, cleanup_mode="delete" if self.delete_on_stop else "stop"
                )
        except Exception as exc:  # pgserver raises plain exceptions of several kinds
            raise EmbeddedError(
                f"embedded PostgreSQL failed to start in {self.data_dir}: {exc}"
            ) from exc
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.cleanup()
            self._server = None


class EmbeddedBroker:
    """An amqtt broker on 127.0.0.1:<free port>, in its own thread and event loop."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> str:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:
            raise EmbeddedError(
                f"the embedded MQTT broker is not installed: {INSTALL_HINT} "
                "(or set OFFSITE_MQTT_URL)"
            ) from exc
        config = {
            "listeners": {
                "default": {
                    "type": "tcp",
                    "bind": f"{self.host}:{self.port}",
                    "max_connections": 1000,
                }
            },
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._broker = Broker(config, loop=loop)
                loop.run_until_complete(self._broker.start())
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            loop.run_forever()
            loop.close()

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._thread = threading.Thread(target=run, name="offsite-embedded-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise EmbeddedError(
                f"embedded MQTT broker failed to start on {self.url}: {self._error}"
            ) from self._error
        return self.url

    def stop(self) -> None:
        loop, broker = self._loop, self._broker
        if loop is None or broker is None or not loop.is_running():
            return
        fut = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
        with contextlib.suppress(Exception):
            fut.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)


@contextlib.contextmanager
def services(
    database_url: str | None,
    mqtt_url: str | None,
    data_dir: Path,
    *,
    ephemeral: bool = False,
    mqtt_port: int = 0,
) -> Iterator[tuple[str, str, list[str]]]:
    """Yield (database_url, mqtt_url, notes), starting embedded services for what is unset."""
    notes: list[str] = []
    pg: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None
    try:
        if database_url is None:
            pg = EmbeddedPostgres(data_dir / "pg", delete_on_stop=ephemeral)
            database_url = pg.start()
            notes.append(f"embedded PostgreSQL (pgserver) in {data_dir / 'pg'}")
        if mqtt_url is None:
            broker = EmbeddedBroker(mqtt_port)
            mqtt_url = broker.start()
            notes.append(f"embedded MQTT broker (amqtt, MQTT 3.1.1) on {redact(mqtt_url)}")
        yield database_url, mqtt_url, notes
    finally:
        if broker is not None:
            broker.stop()
        if pg is not None:
            pg.stop()

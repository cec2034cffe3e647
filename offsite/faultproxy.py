"""A TCP proxy that can cut a link, for fault injection in tests and the soak run.

Put it between ingest and PostgreSQL (or the broker): ``cut()`` closes every open
connection and refuses new ones, as an outage would; ``restore()`` lets them through
again. Real sockets, real protocol errors — no mocks.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from offsite.embedded import free_port


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, listen_port: int = 0) -> None:
        """``target_host`` may be a directory holding PostgreSQL's Unix socket."""
        self.target = (target_host, target_port)
        self.port = listen_port or free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False
        self._stopping = False
        self.accepted = 0
        self.refused = 0

    def start(self) -> FaultProxy:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(128)
        self._listener = s
        threading.Thread(target=self._accept, name="faultproxy-accept", daemon=True).start()
        return self

    def cut(self) -> None:
        """Drop every connection now and refuse new ones until ``restore``."""
        with self._lock:
            self._cut = True
            conns, self._conns = self._conns, set()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def stop(self) -> None:
        self._stopping = True
        self.cut()
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refused = self._cut
            if refused:
                self.refused += 1
                client.close()
                continue
            try:
                upstream = self._connect_upstream()
            except OSError:
                client.close()
                continue
            self.accepted += 1
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _connect_upstream(self) -> socket.socket:
        host, port = self.target
        if host.startswith("/"):  # PostgreSQL's socket directory (the embedded server)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(f"{host}/.s.PGSQL.{port}")
            return s
        s = socket.create_connection(self.target, timeout=5)
        s.settimeout(None)
        return s

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)


def proxied_db_url(url: str) -> tuple[str, str, int]:
    """(URL template with {port}, target host, target port) to route a database URL
    through a FaultProxy on 127.0.0.1."""
    from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = query.pop("host", [parts.hostname or "127.0.0.1"])[0]
    port = parts.port or 5432
    user = parts.username or ""
    auth = f"{user}:{parts.password}@" if parts.password else (f"{user}@" if user else "")
    template = urlunsplit(
        parts._replace(netloc=f"{auth}127.0.0.1:{{port}}", query=urlencode(query, doseq=True))
    )
    return template, host, port

"""A private PostgreSQL cluster that can be *crashed*: ``pg_ctl stop -m immediate`` (no
checkpoint, clients cut mid-transaction, crash recovery at the next start), which a TCP
proxy cannot imitate. Used by ``offsite soak`` and the integration tests of the spool.

Debian's binaries (``/usr/lib/postgresql/<v>/bin``, or ``OFFSITE_PG_BIN``); run as root,
the cluster belongs to the ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from offsite.core.errors import OffsiteError
from offsite.embedded import free_port


def pg_bin() -> Path | None:
    """Where initdb and pg_ctl are, or None."""
    named = os.environ.get("OFFSITE_PG_BIN")
    candidates = [Path(named)] if named else []
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        candidates += sorted(root.glob("*/bin"), reverse=True)
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(Path(found).parent)
    return next(
        (c for c in candidates if (c / "pg_ctl").exists() and (c / "initdb").exists()), None
    )


class OwnPostgres:
    """``start``, ``crash`` (immediate stop), ``start`` again, ``discard``."""

    def __init__(self, workdir: Path | None = None) -> None:
        binaries = pg_bin()
        if binaries is None:
            raise OffsiteError("no PostgreSQL binaries (initdb, pg_ctl) found")
        self.bin = binaries
        self._as_postgres = os.geteuid() == 0
        # as root, the postgres user must reach the data directory: a folder of its own
        # under the system temp dir (a test's tmp_path is closed to other users)
        if workdir is None or self._as_postgres:
            workdir = Path(tempfile.mkdtemp(prefix="offsite-pg-"))
        self.workdir = workdir
        self.data = self.workdir / "data"
        self.port = free_port()
        self._initialised = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise OffsiteError(f"{args[0]} failed: {(done.stderr or done.stdout).strip()[-800:]}")
        return done

    def _init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.workdir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.workdir}'\nmax_connections = 60\n"
                "shared_buffers = 32MB\n"
            )
        self._initialised = True

    def start(self, timeout: float = 60.0) -> str:
        if not self._initialised:
            self._init()
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.workdir / "pg.log"), "-w",
                  "-t", str(int(timeout)), "start")  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:  # after a crash, recovery may still be running when pg_ctl returns
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return self.url
            except psycopg.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def crash(self) -> None:
        """Stop with ``-m immediate``: what a power cut or an OOM kill does to clients."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", check=False)

    def stop(self) -> None:
        if self._initialised and (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def discard(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        path = self.workdir / "pg.log"
        return path.read_text(errors="replace") if path.exists() else ""

"""The wheel is what is tested: built from the tree, installed into a clean virtual
environment without the dev extras, and run as a non-root user against the real
PostgreSQL and MQTT broker, the way an operator runs it.

The tree's own tests import the source folders through an editable install, which hides
what the wheel leaves out (a resource missing from package-data, a module only the tree
has). So this builds the wheel once per module, installs it once, and drives the
``offsite`` command of that environment: ``--help``, ``db migrate``,
``db load-registry``, ``ingest`` fed by ``simulate``, ``rules``, ``serve`` answering
``/healthz`` and ``eval`` — each against a fresh database of its own.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from offsite.embedded import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# The non-root account the commands run as when the suite runs as root (CI does).
TEST_USER = "offsite-test"
# A command that should finish: generous, because the machine is shared.
RUN_TIMEOUT_S = 300.0
# A long-running command must print its "started" line within this long.
START_TIMEOUT_S = 120.0


# -- the wheel and its environment ----------------------------------------------------------
@dataclass
class Installed:
    """A clean virtual environment holding only the wheel and its runtime dependencies."""

    wheel: Path
    venv: Path
    work: Path  # the user's working directory (and HOME)
    user: str | None  # run as this account (None: the current, non-root, user)

    @property
    def offsite(self) -> str:
        return str(self.venv / "bin" / "offsite")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


def _source_copy(dest: Path) -> Path:
    """Copy what the build reads (pyproject's package folders, README) to ``dest``, so the
    build never leaves build/ or egg-info in the tree, nor picks up stale files from them."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = set(meta["tool"]["setuptools"]["package-dir"].values())
    src = dest / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in folders:
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    return src


def _ensure_user() -> str | None:
    """The account to run as: a system user when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
            check=True,
        )
    return TEST_USER


def _make_venv(venv: Path, user: str | None) -> None:
    """A virtual environment the account can run: from this Python, or from the system's
    when this one lives where the account cannot reach (pyenv under /root)."""
    probe = "import sys, encodings; assert sys.version_info >= (3, 11)"
    for base in (sys.executable, "/usr/bin/python3"):
        shutil.rmtree(venv, ignore_errors=True)
        if subprocess.run([base, "-m", "venv", str(venv)], check=False).returncode:
            continue
        try:
            subprocess.run(
                [str(venv / "bin/python"), "-c", probe],
                check=True,
                capture_output=True,
                cwd="/",
                **({"user": user} if user else {}),  # type: ignore[arg-type]
            )
        except (OSError, subprocess.CalledProcessError):
            continue
        return
    pytest.fail(f"no Python >= 3.11 with venv that {user or 'this user'} can run")


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    base = Path(tempfile.mkdtemp(prefix="offsite-wheel-"))
    base.chmod(0o755)  # the non-root user reaches the venv and its working directory
    try:
        src = _source_copy(base)
        dist = base / "dist"
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
            check=True,
            timeout=RUN_TIMEOUT_S,
        )
        (wheel,) = dist.glob("offsite-*.whl")
        user = _ensure_user()
        venv = base / "venv"
        _make_venv(venv, user)
        subprocess.run(
            [str(venv / "bin/python"), "-m", "pip", "install", "-q", str(wheel)],
            check=True,
            timeout=RUN_TIMEOUT_S * 2,
        )
        work = base / "work"
        work.mkdir()
        shutil.copy2(ROOT / "examples/registry.toml", work / "registry.toml")
        if user is not None:
            shutil.chown(work, user)
            (work / "registry.toml").chmod(0o644)
        yield Installed(wheel, venv, work, user)
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- running the installed command ------------------------------------------------------------
def _env(inst: Installed, **settings: str) -> dict[str, str]:
    """A clean environment: no OFFSITE_* or virtualenv of the test run leaks in."""
    env = {
        "PATH": f"{inst.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(inst.work),
        "LANG": "C.UTF-8",
        "OFFSITE_LOG_FORMAT": "text",
        "OFFSITE_DATA_DIR": str(inst.work / ".offsite"),
    }
    env.update({f"OFFSITE_{k.upper()}": v for k, v in settings.items()})
    return env


def _popen_kwargs(inst: Installed, env: dict[str, str]) -> dict[str, object]:
    kw: dict[str, object] = {"env": env, "cwd": str(inst.work)}
    if inst.user is not None:
        kw.update(user=inst.user, group=inst.user, extra_groups=[])
    return kw


def run(inst: Installed, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """``offsite ARGS`` to completion; output and errors together, for the assertion text."""
    return subprocess.run(
        [inst.offsite, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
        **_popen_kwargs(inst, _env(inst, **settings)),  # type: ignore[arg-type]
    )


@dataclass
class Running:
    """A long-running ``offsite`` command whose output lines are collected as they come."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _q: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_for(self, text: str, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in ln for ln in self.lines):
            try:
                line = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no {text!r} within {timeout:.0f} s:\n{self.output}"
                ) from None
            if line is None:
                raise AssertionError(f"exited before {text!r}:\n{self.output}")
            self.lines.append(line)

    def stop(self, timeout: float = 60.0) -> int:
        """Ctrl-C, as an operator would; the command must stop by itself."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._drain()
            raise AssertionError(f"did not stop on SIGINT:\n{self.output}") from None
        self._drain()
        return rc

    def _drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while (line := self._q.get(timeout=10)) is not None:
                self.lines.append(line)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def start(inst: Installed, *args: str, **settings: str) -> Running:
    proc = subprocess.Popen(
        [inst.offsite, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **_popen_kwargs(inst, _env(inst, **settings)),  # type: ignore[arg-type]
    )
    return Running(proc)


@pytest.fixture
def fresh_db(admin_db_url: str) -> Iterator[str]:
    """An empty database (not the migrated template): the wheel's migrations build it."""
    name = f"offsite_wheel_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(admin_db_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_db_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# -- what the wheel holds ---------------------------------------------------------------------
def test_the_wheel_holds_one_package_with_its_resources(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert tops - dist_info == {"offsite"}, f"generic top-level names: {tops - dist_info}"
    assert "offsite/rules/default_rules.toml" in names
    migrations = [n for n in names if n.startswith("offsite/store/migrations/")]
    assert "offsite/store/migrations/0001_init.sql" in migrations
    assert len(migrations) == len(list((ROOT / "store/migrations").glob("*.sql")))
    static = {n.removeprefix("offsite/api/static/") for n in names if "/static/" in n}
    shipped = {
        str(p.relative_to(ROOT / "api/static"))
        for p in (ROOT / "api/static").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped and shipped <= static, f"static files left out: {shipped - static}"
    # the embedded services are an extra, not what every server installs
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        ln
        for ln in zipfile.ZipFile(installed.wheel).read(meta).decode().splitlines()
        if ln.startswith("Requires-Dist:")
    ]
    assert all("extra ==" in ln for ln in requires if "pgserver" in ln or "amqtt" in ln)


def test_runs_as_a_non_root_user_without_dev_extras(installed: Installed) -> None:
    r = subprocess.run(
        [
            installed.python,
            "-c",
            "import os, importlib.util as u; print(os.geteuid(), "
            "[m for m in ('pytest', 'pgserver', 'amqtt', 'ingest', 'rules', 'api') "
            "if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        check=True,
        **_popen_kwargs(installed, _env(installed)),  # type: ignore[arg-type]
    )
    uid, present = r.stdout.split(" ", 1)
    assert int(uid) != 0
    assert present.strip() == "[]"


# -- the commands -------------------------------------------------------------------------------
def test_help(installed: Installed) -> None:
    r = run(installed, "--help")
    assert r.returncode == 0, r.stdout
    for command in ("demo", "ingest", "rules", "serve", "simulate", "db", "eval", "bench"):
        assert command in r.stdout


def test_db_migrate(installed: Installed, fresh_db: str) -> None:
    r = run(installed, "db", "migrate", database_url=fresh_db)
    assert r.returncode == 0, r.stdout
    latest = max(int(p.name[:4]) for p in (ROOT / "store/migrations").glob("*.sql"))
    assert f"schema at version {latest}" in r.stdout, r.stdout
    assert "applied 0001_init" in r.stdout


def test_db_load_registry(installed: Installed, fresh_db: str) -> None:
    r = run(installed, "db", "load-registry", "registry.toml", database_url=fresh_db)
    assert r.returncode == 0, r.stdout
    assert "registry loaded: 2 enterprises" in r.stdout, r.stdout
    with psycopg.connect(fresh_db) as conn:
        row = conn.execute("SELECT count(*) FROM devices").fetchone()
    assert row is not None and row[0] >= 2


def test_ingest_stores_what_simulate_publishes(
    installed: Installed, fresh_db: str, mqtt_url: str
) -> None:
    topic = f"offsite-wheel/{uuid.uuid4().hex[:10]}/+/telemetry"
    settings = {
        "database_url": fresh_db,
        "mqtt_url": mqtt_url,
        "mqtt_topic": topic,
        "mqtt_client_id": f"offsite-wheel-{uuid.uuid4().hex[:8]}",
    }
    fleet = ("--devices", "3", "--seed", "7", "--rate", "0.5")
    # register the fleet first, so ingest knows the devices from its start
    reg = run(installed, "simulate", *fleet, "--duration", "0", **settings)
    assert reg.returncode == 0, reg.stdout
    ingest = start(installed, "ingest", "--progress", "1", **settings)
    try:
        ingest.wait_for("Ctrl-C to stop")
        pub = run(installed, "simulate", *fleet, "--duration", "4", **settings)
        assert pub.returncode == 0, pub.stdout
        published = int(pub.stdout.split(" readings in ")[0].rsplit(" ", 1)[1])
        assert published > 0, pub.stdout
        deadline = time.monotonic() + 60
        stored = 0
        while time.monotonic() < deadline:
            with psycopg.connect(fresh_db) as conn:
                row = conn.execute("SELECT count(*) FROM readings").fetchone()
            stored = row[0] if row else 0
            if stored >= published:
                break
            time.sleep(0.5)
    finally:
        rc = ingest.stop()
    assert rc == 0, ingest.output
    assert stored == published, f"{stored} of {published} readings stored\n{ingest.output}"
    assert "ingest stopped:" in ingest.output
    assert "0 dead letters" in ingest.output, ingest.output


def test_rules_runs_and_stops_cleanly(installed: Installed, fresh_db: str) -> None:
    rules = start(installed, "rules", "--progress", "1", database_url=fresh_db)
    try:
        rules.wait_for("rule runner: judging")
        rules.wait_for("judged 0")
    finally:
        rc = rules.stop()
    assert rc == 0, rules.output
    assert "rule runner stopped:" in rules.output


def test_serve_answers_healthz(installed: Installed, fresh_db: str) -> None:
    port = free_port()
    api = start(installed, "serve", database_url=fresh_db, http_port=str(port))
    try:
        api.wait_for("API on http://")
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    status, body = r.status, r.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline or api.proc.poll() is not None:
                    raise
                time.sleep(0.3)
    finally:
        rc = api.stop()
    assert status == 200, body
    assert rc == 0, api.output


def test_eval_scores_one_seed(installed: Installed) -> None:
    # one split is enough to prove the installed eval scores (the packaged rules and plant
    # profiles are found); both splits took ~75 CPU-s and outlived the timeout under load
    r = run(installed, "eval", "--seeds", "1", "--split", "tune")
    assert r.returncode == 0, r.stdout
    assert "recall" in r.stdout.lower() and "false alerts" in r.stdout.lower(), r.stdout


def test_demo_without_the_embedded_extra_says_what_to_install(installed: Installed) -> None:
    """The wheel installed without ``[embedded]`` (as a server is): the demo, which would
    start an embedded PostgreSQL and broker, names the extra instead of a traceback."""
    r = run(installed, "demo", "--duration", "1")
    assert r.returncode == 2, r.stdout
    assert "pip install 'offsite[embedded]'" in r.stdout, r.stdout
    assert "Traceback" not in r.stdout

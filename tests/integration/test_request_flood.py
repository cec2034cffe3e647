"""A flood of oversized bodies against a real ``offsite serve`` process: each is refused
with 413 after at most its route's limit (or before a byte is read; an anonymous
upload without a length gets 401 before reading), the server's memory peak hardly
moves, and /healthz keeps answering while it happens.

The probe's numbers before the request guard: one 100 MB login took the server from
171 MB to 859 MB and came back as a 200 MB 422; three at once reached 1.33 GB and
stalled /healthz for 3.75 s.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from offsite.embedded import free_port
from tests.integration.helpers import wait_for
from tests.integration.security_fixtures import build_world

pytestmark = pytest.mark.integration

BODY = 100 * 1024 * 1024  # what each request claims, or streams without a length
CHUNK = b"x" * 65536
FLOODERS = 3  # per route
# the server's peak resident memory may grow by at most this much during the flood
# (it stays near 0 with the guard; each buffered 100 MB body would add several times 100 MB)
RSS_BOUND = 64 * 1024 * 1024


@dataclass
class Sent:
    status: int | None
    bytes_sent: int


def _flood(port: int, path: str, headers: dict[str, str], *, chunked: bool) -> Sent:
    """POST a 100 MB body, streamed from one reused chunk (never built in memory), and
    stop sending as soon as the server answers, as a careful client does."""
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY}")
    framed = f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n" if chunked else CHUNK
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            while sent < BODY:
                readable, _, _ = select.select([s], [], [], 0)
                if readable:  # the answer came before the body was done
                    break
                s.sendall(framed)
                sent += len(CHUNK)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed: read what it said
        answer = b""
        try:
            while b"\r\n" not in answer:
                data = s.recv(4096)
                if not data:
                    break
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    return Sent(status, sent)


def _peak_rss(pid: int) -> int:
    """The process's resident-memory high-water mark (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[int, int, dict[str, str]]]:
    """``offsite serve`` in its own process; yields (port, pid, enterprise headers, case)."""
    w = build_world(db_url)
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "INSERT INTO cases (enterprise_id, title, opened_by) VALUES ('E1', 'c', 'adm') "
            "RETURNING id"
        ).fetchone()
        conn.commit()
    assert row is not None
    port = free_port()
    env = {
        **os.environ,
        "OFFSITE_DATABASE_URL": db_url,
        "OFFSITE_HTTP_PORT": str(port),
        "OFFSITE_QR_SECRET": "q" * 40,
        "OFFSITE_DATA_DIR": str(tmp_path),
        "OFFSITE_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", "from offsite.cli import main; raise SystemExit(main(['serve']))"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: _healthy(port) or proc.poll() is not None,
            timeout=60,
            what="offsite serve answering /healthz",
        )
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        yield port, proc.pid, {**w.headers("enterprise"), "x-case": str(row[0])}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_flood_of_100_mb_bodies_is_refused_in_bounded_memory(
    served: tuple[int, int, dict[str, str]],
) -> None:
    port, pid, ent = served
    case = ent.pop("x-case")
    before = _peak_rss(pid)
    jobs = []
    for i in range(FLOODERS):
        chunked = i % 2 == 1
        jobs.append(("/auth/login", {}, chunked))
        jobs.append((f"/api/cases/{case}/responses", {}, chunked))  # no token
        jobs.append((f"/api/cases/{case}/responses", ent, chunked))
    results: list[Sent | BaseException] = [Sent(None, 0)] * len(jobs)

    def run(k: int) -> None:
        path, headers, chunked = jobs[k]
        try:
            results[k] = _flood(port, path, headers, chunked=chunked)
        except BaseException as exc:  # reported below
            results[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(jobs))]
    health: list[int] = []
    flooding = threading.Event()

    def poll() -> None:  # /healthz, asked all through the flood
        while True:
            health.append(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code)
            if not flooding.is_set():
                return
            time.sleep(0.02)

    flooding.set()
    poller = threading.Thread(target=poll)
    poller.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flooding.clear()
    poller.join()
    after = _peak_rss(pid)

    print(
        f"\nflood: {len(jobs)} × 100 MB bodies; server VmHWM {before / 2**20:.0f} → "
        f"{after / 2**20:.0f} MiB; bytes the clients got to send: "
        f"{sorted(r.bytes_sent for r in results if isinstance(r, Sent))}; "
        f"/healthz answered {len(health)} times"
    )
    for job, r in zip(jobs, results, strict=True):
        assert isinstance(r, Sent), (job, r)
        path, headers, chunked = job
        # without a length, an anonymous upload is refused before a byte is read (401);
        # every other request is too large (413)
        anonymous_upload = chunked and not headers and path.endswith("/responses")
        assert r.status == (401 if anonymous_upload else 413), (job, r)
        # refused at the route's limit (16 MiB for uploads), never read whole
        assert r.bytes_sent < 32 * 1024 * 1024, (job, r)
    assert health and set(health) == {200}
    assert after - before < RSS_BOUND
    assert _healthy(port)


def test_a_client_cannot_pick_its_address_with_x_forwarded_for(
    served: tuple[int, int, dict[str, str]],
) -> None:
    """Logins sprayed from one host, each claiming another address, share that host's
    limit: by default no proxy is believed (uvicorn's own default believes 127.0.0.1)."""
    port, _, _ = served
    codes = [
        httpx.post(
            f"http://127.0.0.1:{port}/auth/login",
            json={"username": f"nobody{i}", "password": "wrong"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
            timeout=30,
        ).status_code
        for i in range(8)
    ]
    assert 429 in codes, codes  # the default burst is 5 attempts
    assert set(codes) <= {401, 429}

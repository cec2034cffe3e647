"""Pieces the benchmarks share: prepared messages, a lean publisher process, latency
samples, percentiles, peak memory.

The publisher speaks just enough MQTT 3.1.1 over a raw socket (CONNECT, QoS 1 PUBLISH,
PUBACK counting) instead of using paho: paho costs ~100 µs of Python per message, and on
a 2-core machine every CPU-second a publisher burns is taken from the subscriber being
measured. The publisher sends at full speed, or paced to a rate for the latency bench.

Latency is measured per *sampled* message, identified on both sides by
``message_key`` (CRC-32 of topic and payload: no clock or id travels in the payload,
which stays exactly what a device sends). Clocks are the same machine's ``time.time``.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
import zlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.synchronize import Event
from typing import Any, Protocol

from offsite.simulators.publisher import parse_mqtt_url, payload_json
from offsite.simulators.scenarios import Fleet

# One message in SAMPLE_EVERY (by key) has its latency recorded.
SAMPLE_EVERY = 8
# QoS 1 messages a publisher leaves unacknowledged at most (pipelining).
WINDOW = 2000
# Messages written to the socket in one go.
CHUNK = 200


class Queue(Protocol):
    def put(self, obj: Any) -> None: ...


def message_key(topic: str | bytes, payload: bytes | bytearray) -> int:
    t = topic.encode() if isinstance(topic, str) else topic
    return (zlib.crc32(t) << 32) | zlib.crc32(payload)


def sampled(key: int) -> bool:
    return key % SAMPLE_EVERY == 0


def build_messages(
    fleet: Fleet,
    ticks: Iterable[datetime],
    topic_template: str,
    publishers: int,
    skip: Collection[str] = (),
) -> list[list[tuple[str, bytes]]]:
    """The fleet's JSON payloads, tick by tick, split among ``publishers`` by device (so
    each device's messages leave in order from one publisher); devices in ``skip`` stay
    silent."""
    index = {d.mn: i for i, d in enumerate(fleet.devices)}
    out: list[list[tuple[str, bytes]]] = [[] for _ in range(publishers)]
    for ts in ticks:
        for mn, values in fleet.tick(ts):
            if mn in skip:
                continue
            out[index[mn] % publishers].append(
                (topic_template.format(mn=mn), payload_json(ts, values))
            )
    return out


def readings_in(messages: Sequence[tuple[str, bytes]]) -> int:
    """Values in the prepared JSON payloads (one per pollutant code, in every record)."""
    n = 0
    for _, payload in messages:
        doc = json.loads(payload)
        n += sum(len(r["values"]) for r in (doc if isinstance(doc, list) else [doc]))
    return n


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _publish_packet(topic: bytes, pid: int, payload: bytes) -> bytes:
    body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", pid) + payload
    return b"\x32" + _varint(len(body)) + body


def _connect(host: str, port: int, client_id: str) -> socket.socket:
    cid = client_id.encode()
    body = (
        b"\x00\x04MQTT\x04\x02\x00\x00"  # 3.1.1, clean session, no keep-alive
        + struct.pack("!H", len(cid))
        + cid
    )
    sock = socket.create_connection((host, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"\x10" + _varint(len(body)) + body)
    ack = sock.recv(4)
    if len(ack) < 4 or ack[0] != 0x20 or ack[3] != 0:
        raise RuntimeError(f"broker refused the publisher: CONNACK {ack!r}")
    return sock


def publish_process(
    url: str,
    messages: list[tuple[str, bytes]],
    client_id: str,
    go: Event,
    out: Queue,
    rate: float | None = None,
) -> None:
    """Publish ``messages`` at QoS 1 once ``go`` is set, as fast as the broker acks them
    (or ``rate`` messages/s), and put a summary with sampled publish times on ``out``."""
    host, port, _user, _password = parse_mqtt_url(url)
    sock = _connect(host, port, client_id)
    go.wait()
    t0 = time.time()
    c0 = os.times()
    samples: list[tuple[int, float]] = []
    acked = 0
    pending = b""
    sent = 0
    while sent < len(messages):
        if rate is not None:
            due = t0 + sent / rate
            now = time.time()
            if due > now:
                time.sleep(due - now)
        chunk = messages[sent : sent + (CHUNK if rate is None else max(1, int(rate * 0.01)))]
        buf = bytearray()
        for i, (topic, payload) in enumerate(chunk):
            buf += _publish_packet(topic.encode(), (sent + i) % 65535 + 1, payload)
        now = time.time()
        sock.sendall(buf)
        for topic, payload in chunk:
            k = message_key(topic, payload)
            if sampled(k):
                samples.append((k, now))
        sent += len(chunk)
        while sent - acked > WINDOW or (sent == len(messages) and acked < sent):
            data = pending + sock.recv(65536)
            if not data:
                raise RuntimeError("broker closed the publisher's connection")
            whole = len(data) // 4 * 4
            if data[:whole:4].strip(b"\x40"):
                raise RuntimeError("unexpected packet from the broker (expected PUBACKs)")
            acked += whole // 4
            pending = data[whole:]
    t_acked = time.time()
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()
    t = os.times()
    out.put(
        {
            "messages": sent,
            "t_first": t0,
            "t_acked": t_acked,
            "samples": samples,
            "cpu_s": t.user + t.system - c0.user - c0.system,
        }
    )


class ProbePublisher:
    """One connection for single messages whose publish time matters (fault injection):
    ``publish`` returns the time the message left, once the broker has acknowledged it."""

    def __init__(self, url: str, client_id: str) -> None:
        host, port, _user, _password = parse_mqtt_url(url)
        self.sock = _connect(host, port, client_id)
        self.pid = 0

    def publish(self, topic: str, payload: bytes) -> float:
        self.pid = self.pid % 65535 + 1
        packet = _publish_packet(topic.encode(), self.pid, payload)
        t = time.time()
        self.sock.sendall(packet)
        ack = b""
        while len(ack) < 4:
            chunk = self.sock.recv(4 - len(ack))
            if not chunk:
                raise RuntimeError("broker closed the probe publisher's connection")
            ack += chunk
        if ack[0] != 0x40:
            raise RuntimeError(f"expected a PUBACK, got {ack!r}")
        return t

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")
        self.sock.close()


@dataclass(frozen=True, slots=True)
class Latency:
    count: int
    p50_ms: float
    p99_ms: float


def latency(published: dict[int, float], arrived: Iterable[tuple[int, float]]) -> Latency:
    """Percentiles of arrival minus publish time over the sampled messages seen on both
    sides (a redelivered message counts at its first arrival)."""
    first: dict[int, float] = {}
    for k, t in arrived:
        if k in published and k not in first:
            first[k] = t
    lat = sorted(t - published[k] for k, t in first.items())
    return Latency(
        len(lat), round(percentile(lat, 50) * 1000, 1), round(percentile(lat, 99) * 1000, 1)
    )


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence (nan when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def peak_rss_mb(pid: int | None = None) -> float:
    """A process's peak resident set (VmHWM), in MB: this one's by default."""
    with open(f"/proc/{pid or 'self'}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")

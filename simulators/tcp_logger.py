"""HJ 212 over TCP, the logger side: a fleet's packets to the gateway, every answer counted.

Field data loggers hold a TCP connection to the platform (several of them often share
one modem's), upload a real-time packet every interval with Flag=5 and wait for the
data response (CN 9014, same QN). A packet left unanswered for ``response_timeout_s``
is sent once more — loggers retry, and the platform's primary key makes the duplicate
harmless — and counted missing if the retry goes unanswered too. ``TcpStats`` is
therefore a measure of the gateway: what it answered, and what it lost.

One thread drives every socket through a selector (as ``publisher.py`` drives paho's
loop): generating ticks, writing, reading answers, resending and reconnecting share one
state without locks, and the fleet (which is not thread-safe) is stepped from one place.
Realtime mode sends each tick on the wall clock, as loggers do whatever is unanswered;
a replay sends device time as fast as answers come back, with at most ``window``
unanswered packets per connection, so it measures the gateway, not the socket buffers.
"""

from __future__ import annotations

import math
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from offsite.ingest.codecs.hj212 import BEIJING, parse_packet
from offsite.ingest.errors import DecodeError
from offsite.ingest.framer import Frame, Framer
from offsite.simulators.clock import LOOP_SLICE_S, realtime_ticks, replay_ticks
from offsite.simulators.errors import PublishError
from offsite.simulators.hj212_device import Hj212Encoder
from offsite.simulators.malformed import check_rate, corrupt, is_malformed
from offsite.simulators.scenarios import Fleet

RESPONSE_TIMEOUT_S = 10.0
# Unanswered packets per connection in a replay (realtime sends regardless, like loggers).
WINDOW = 50
CONNECT_TIMEOUT_S = 10.0
# A lost connection is retried this often, each try waiting at most this long.
RECONNECT_EVERY_S = 1.0
RECONNECT_TIMEOUT_S = 1.0
# A gateway unreachable, or not reading what we write, for this long fails the run.
GIVE_UP_S = 30.0
# Selector slice while waiting: bounds how late a stop request or a timeout is handled.
REPLAY_PROGRESS_EVERY_S = 0.5
DATA_RESPONSE_CN = "9014"
# QN has millisecond resolution: faster ticks would give two packets of a device one QN.
MIN_RATE_S = 0.001

Key = tuple[str, str]  # (MN, QN): what a response names


@dataclass(frozen=True, slots=True)
class TcpStats:
    """What the loggers sent and what the gateway answered.

    ``packets`` counts distinct packets (one per device and tick); ``sent`` also
    counts resends. At the end every packet is either in ``responses`` or in
    ``missing``. ``malformed``: broken copies sent besides the packets, never answered
    (the gateway dead-letters them). ``unmatched``: answers naming no packet still awaited (a second
    answer to a resent packet, a late one, or one that does not parse as 9014).
    """

    packets: int = 0
    readings: int = 0
    malformed: int = 0
    sent: int = 0
    resent: int = 0
    responses: int = 0
    missing: int = 0
    unmatched: int = 0
    reconnects: int = 0
    connections: int = 0
    started_at: datetime | None = None
    elapsed_s: float = 0.0

    @property
    def awaiting(self) -> int:
        """Packets neither answered nor given up on yet."""
        return self.packets - self.responses - self.missing


def run_tcp_loggers(
    fleet: Fleet,
    host: str,
    port: int,
    *,
    duration_s: float | None,
    start: datetime | None = None,
    realtime: bool = True,
    stop: threading.Event | None = None,
    on_progress: Callable[[TcpStats], None] | None = None,
    connections: int | None = None,
    response_timeout_s: float = RESPONSE_TIMEOUT_S,
    window: int = WINDOW,
    tz: tzinfo = BEIJING,
    malformed: float = 0.0,
) -> TcpStats:
    """Run the fleet's loggers against the HJ 212 gateway at ``host:port``.

    One connection per device, or ``connections`` sockets with the devices dealt
    round-robin (loggers behind shared modems). Ticks as in ``publish_fleet``:
    realtime on the wall clock (``start`` ignored), or a replay of device time from
    ``start`` (default ``fleet.start``); ``duration_s=None`` runs until ``stop``.
    After the last tick (or ``stop``) it waits until every packet is answered or
    missing — at most twice ``response_timeout_s``. ``tz`` must be the zone the
    platform reads HJ 212 times in.

    Raises ``PublishError`` (chained) if a connection cannot be opened, or the
    gateway stays unreachable or stops reading for ``GIVE_UP_S``. ``on_progress``
    gets a snapshot after each realtime tick, at most every 0.5 s in a replay, and
    once at the end. ``malformed``: the share of packets also sent with a broken CRC just
    before the good one, unanswered by design (``simulators.malformed``).
    """
    _check_args(fleet, duration_s, connections, response_timeout_s, window)
    check_rate(malformed)
    encoder = Hj212Encoder(fleet.registry, tz=tz)
    n_links = len(fleet.devices) if connections is None else min(connections, len(fleet.devices))
    link_of = {d.mn: i % n_links for i, d in enumerate(fleet.devices)}
    stop = stop or threading.Event()
    started_at = datetime.now(UTC)
    t_wall = time.monotonic()
    loggers = _Loggers(host, port, n_links, response_timeout_s, None if realtime else window)
    last_progress = 0.0
    try:
        ticks = (
            realtime_ticks(fleet.rate_s, duration_s, stop, loggers.pump)
            if realtime
            else replay_ticks(fleet, duration_s, start, stop)
        )
        for ts in ticks:
            qn = encoder.qn(ts)
            for m in fleet.messages(ts):
                packet = encoder.packet(m.mn, m.values, ts, m.flags)
                if is_malformed(malformed, fleet.seed, m.mn, ts):
                    loggers.send_unanswered(link_of[m.mn], corrupt(packet))
                loggers.queue(link_of[m.mn], (m.mn, qn), packet, len(m.values))
            loggers.pump(0.0)
            # A replay moves on only once every packet of this tick is on the wire.
            while not realtime and loggers.backlogged and not stop.is_set():
                loggers.pump(LOOP_SLICE_S)
            now = time.monotonic()
            if on_progress and (realtime or now - last_progress >= REPLAY_PROGRESS_EVERY_S):
                last_progress = now
                on_progress(loggers.stats(started_at, now - t_wall))
        while not loggers.idle:
            loggers.pump(LOOP_SLICE_S)
    finally:
        loggers.close()
    stats = loggers.stats(started_at, time.monotonic() - t_wall)
    if on_progress:
        on_progress(stats)
    return stats


def _check_args(
    fleet: Fleet,
    duration_s: float | None,
    connections: int | None,
    response_timeout_s: float,
    window: int,
) -> None:
    if duration_s is not None and not duration_s >= 0:
        raise PublishError("duration_s must be >= 0 or None")
    if connections is not None and connections < 1:
        raise PublishError("connections must be >= 1 (or None: one per device)")
    if not (math.isfinite(response_timeout_s) and response_timeout_s > 0):
        raise PublishError("response_timeout_s must be a positive number of seconds")
    if window < 1:
        raise PublishError("window must be >= 1")
    if fleet.rate_s < MIN_RATE_S:
        raise PublishError(
            f"HJ 212 QNs have millisecond resolution: rate_s must be >= {MIN_RATE_S} s"
        )


class _Link:
    """One logger-side connection: its socket, unsent bytes, and packets waiting for room."""

    __slots__ = (
        "backlog",
        "down_since",
        "events",
        "framer",
        "inflight",
        "last_try",
        "name",
        "out",
        "sock",
        "stalled_since",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock: socket.socket | None = None
        self.events = 0
        self.out = bytearray()
        self.framer = Framer()
        self.backlog: deque[tuple[Key, bytes]] = deque()
        self.inflight = 0
        self.down_since: float | None = None
        self.last_try = 0.0
        self.stalled_since = 0.0


@dataclass(slots=True)
class _Pending:
    raw: bytes
    link: _Link
    attempt: int


class _Loggers:
    """Every link, the packets awaiting an answer and their deadlines; driven by ``pump``.

    Deadlines sit in one deque in the order they were set: the timeout is the same
    for every packet, so that order is also deadline order and expiry is O(1).
    """

    def __init__(
        self, host: str, port: int, n_links: int, timeout_s: float, window: int | None
    ) -> None:
        self.where = f"{host}:{port}"
        self.host, self.port = host, port
        self.timeout_s = timeout_s
        self.window = window  # None: realtime, no window
        self.sel = selectors.DefaultSelector()
        self.links = [_Link(f"logger-{i}") for i in range(n_links)]
        self.pending: dict[Key, _Pending] = {}
        self.deadlines: deque[tuple[float, Key, int]] = deque()
        self.waiting: set[_Link] = set()  # links with a backlog
        self.down: set[_Link] = set()
        self.packets = self.readings = self.sent = self.resent = self.malformed = 0
        self.responses = self.missing = self.unmatched = self.reconnects = 0
        self._last_stall_check = 0.0
        try:
            for link in self.links:
                self._connect(link, CONNECT_TIMEOUT_S)
        except OSError as exc:
            self.close()
            raise PublishError(
                f"cannot connect to the HJ 212 gateway at {self.where}: {exc}"
            ) from exc

    # -- state ----------------------------------------------------------------------------
    @property
    def backlogged(self) -> bool:
        return bool(self.waiting)

    @property
    def idle(self) -> bool:
        return not self.pending and not self.waiting

    def stats(self, started_at: datetime, elapsed_s: float) -> TcpStats:
        return TcpStats(
            packets=self.packets,
            readings=self.readings,
            malformed=self.malformed,
            sent=self.sent,
            resent=self.resent,
            responses=self.responses,
            missing=self.missing,
            unmatched=self.unmatched,
            reconnects=self.reconnects,
            connections=len(self.links),
            started_at=started_at,
            elapsed_s=elapsed_s,
        )

    # -- sending --------------------------------------------------------------------------
    def queue(self, link_index: int, key: Key, raw: bytes, readings: int) -> None:
        link = self.links[link_index]
        self.packets += 1
        self.readings += readings
        link.backlog.append((key, raw))
        self._fill(link)

    def send_unanswered(self, link_index: int, raw: bytes) -> None:
        """Write bytes that expect no answer (a broken packet): nothing awaits them."""
        self.malformed += 1
        self._write(self.links[link_index], raw)

    def _fill(self, link: _Link) -> None:
        while link.backlog and (self.window is None or link.inflight < self.window):
            key, raw = link.backlog.popleft()
            self.pending[key] = _Pending(raw, link, 1)
            link.inflight += 1
            self.sent += 1
            self._write(link, raw)
            self.deadlines.append((time.monotonic() + self.timeout_s, key, 1))
        if link.backlog:
            self.waiting.add(link)
        else:
            self.waiting.discard(link)

    def _write(self, link: _Link, raw: bytes) -> None:
        """Queue bytes on the link (kept while it is down: flushed after reconnecting)."""
        if not link.out:
            link.stalled_since = time.monotonic()
        link.out += raw
        if link.sock is not None:
            self._flush(link)

    def _flush(self, link: _Link) -> None:
        assert link.sock is not None
        try:
            n = link.sock.send(link.out) if link.out else 0
        except BlockingIOError:
            n = 0
        except OSError:
            self._drop(link)
            return
        if n:
            del link.out[:n]
            link.stalled_since = time.monotonic()
        self._watch(link)

    def _watch(self, link: _Link) -> None:
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if link.out else 0)
        if link.sock is not None and want != link.events:
            self.sel.modify(link.sock, want, link)
            link.events = want

    # -- receiving ------------------------------------------------------------------------
    def _read(self, link: _Link) -> None:
        assert link.sock is not None
        try:
            data = link.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._drop(link)
            return
        if not data:
            self._drop(link)
            return
        for ev in link.framer.feed(data):
            if isinstance(ev, Frame):
                self._answer(ev.raw)
            else:
                self.unmatched += 1

    def _answer(self, raw: bytes) -> None:
        try:
            packet = parse_packet(raw)
        except DecodeError:
            self.unmatched += 1
            return
        p = None
        if packet.cn == DATA_RESPONSE_CN and packet.qn is not None:
            p = self.pending.pop((packet.mn, packet.qn), None)
        if p is None:
            self.unmatched += 1
            return
        self.responses += 1
        p.link.inflight -= 1
        self._fill(p.link)

    # -- the loop -------------------------------------------------------------------------
    def pump(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the sockets, handle them, then timeouts and links."""
        if self.sel.get_map():
            for sk, mask in self.sel.select(timeout_s):
                link: _Link = sk.data
                # a link may have been dropped by an earlier event of this round
                if link.sock is not None and mask & selectors.EVENT_READ:
                    self._read(link)
                if link.sock is not None and mask & selectors.EVENT_WRITE:
                    self._flush(link)
        else:
            time.sleep(timeout_s)
        now = time.monotonic()
        self._expire(now)
        if self.down:
            self._reconnect(now)
        if now - self._last_stall_check >= 1.0:
            self._last_stall_check = now
            self._check_stalls(now)

    def _expire(self, now: float) -> None:
        """Resend a packet unanswered for the timeout once; give up after the second."""
        while self.deadlines and self.deadlines[0][0] <= now:
            _, key, attempt = self.deadlines.popleft()
            p = self.pending.get(key)
            if p is None or p.attempt != attempt:
                continue  # answered meanwhile
            if attempt == 1:
                p.attempt = 2
                self.resent += 1
                self.sent += 1
                self._write(p.link, p.raw)
                self.deadlines.append((time.monotonic() + self.timeout_s, key, 2))
            else:
                del self.pending[key]
                self.missing += 1
                p.link.inflight -= 1
                self._fill(p.link)

    def _check_stalls(self, now: float) -> None:
        for link in self.links:
            if link.sock is not None and link.out and now - link.stalled_since > GIVE_UP_S:
                raise PublishError(
                    f"the HJ 212 gateway at {self.where} has read nothing from "
                    f"{link.name} for {GIVE_UP_S:.0f} s"
                )

    # -- connections ----------------------------------------------------------------------
    def _connect(self, link: _Link, timeout_s: float) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small packets, now
        sock.setblocking(False)
        link.sock = sock
        link.events = selectors.EVENT_READ
        self.sel.register(sock, link.events, link)
        link.down_since = None
        self.down.discard(link)
        if link.out:
            link.stalled_since = time.monotonic()
            self._flush(link)

    def _drop(self, link: _Link) -> None:
        """Forget a dead connection; unanswered packets on it are resent on their timeout."""
        if link.sock is not None:
            self.sel.unregister(link.sock)
            link.sock.close()
            link.sock = None
        link.out.clear()  # may end inside a packet: the next connection starts clean
        link.framer = Framer()
        link.down_since = time.monotonic()
        link.last_try = 0.0
        self.down.add(link)

    def _reconnect(self, now: float) -> None:
        for link in list(self.down):
            if now - link.last_try < RECONNECT_EVERY_S:
                continue
            link.last_try = now
            try:
                self._connect(link, RECONNECT_TIMEOUT_S)
                self.reconnects += 1
            except OSError as exc:
                if link.down_since is not None and now - link.down_since > GIVE_UP_S:
                    raise PublishError(
                        f"lost the HJ 212 gateway at {self.where} for more than {GIVE_UP_S:.0f} s"
                    ) from exc

    def close(self) -> None:
        for link in self.links:
            if link.sock is not None:
                self.sel.unregister(link.sock)
                link.sock.close()
                link.sock = None
        self.sel.close()


# -- one logger in lock step --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Exchange:
    """One packet sent by a lock-step logger, and what came of it."""

    sent: bytes
    answer: bytes | None  # the platform's reply packet, None if none came
    closed: bool = False  # the platform closed the connection instead

    @property
    def answered(self) -> bool:
        return self.answer is not None


class LockstepLogger:
    """A data logger that sends one packet, waits for its answer, and only then sends the
    next — as many field loggers do, the parts of a split packet included. A platform
    that leaves any packet unanswered stalls it: ``run`` stops at the first packet left
    unanswered for ``response_timeout_s`` (and, like a logger, resends it once first).

    ``trickle_s`` writes each packet one byte at a time, that long apart: a slow or
    hostile link, which the gateway must cut at its frame deadline.
    """

    def __init__(
        self, host: str, port: int, *, response_timeout_s: float = RESPONSE_TIMEOUT_S
    ) -> None:
        if not (math.isfinite(response_timeout_s) and response_timeout_s > 0):
            raise PublishError("response_timeout_s must be a positive number of seconds")
        self.where = f"{host}:{port}"
        self.timeout_s = response_timeout_s
        try:
            self.sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            raise PublishError(
                f"cannot connect to the HJ 212 gateway at {self.where}: {exc}"
            ) from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.framer = Framer()
        self.answers: deque[bytes] = deque()
        self.closed = False

    def exchange(self, raw: bytes, *, trickle_s: float = 0.0, resend: bool = True) -> Exchange:
        """Send ``raw`` and wait for the platform's answer to it."""
        for _ in range(2 if resend else 1):  # a logger resends an unanswered packet once
            if not self._send(raw, trickle_s):
                return Exchange(raw, None, closed=True)
            answer = self._await_answer(raw)
            if answer is not None or self.closed:
                return Exchange(raw, answer, closed=self.closed)
        return Exchange(raw, None)

    def run(self, packets: list[bytes], *, trickle_s: float = 0.0) -> list[Exchange]:
        """Send ``packets`` in lock step; stop at the first one left unanswered."""
        out: list[Exchange] = []
        for raw in packets:
            ex = self.exchange(raw, trickle_s=trickle_s)
            out.append(ex)
            if not ex.answered:
                break
        return out

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LockstepLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, raw: bytes, trickle_s: float) -> bool:
        try:
            if trickle_s <= 0:
                self.sock.sendall(raw)
                return True
            for i in range(len(raw)):
                self.sock.sendall(raw[i : i + 1])
                # between bytes: see whether the platform gave up on this connection
                if self._read(trickle_s) and self.closed:
                    return False
            return True
        except OSError:
            self.closed = True
            return False

    def _read(self, timeout_s: float) -> bool:
        """Read what arrives within ``timeout_s``; True if anything happened."""
        self.sock.settimeout(max(timeout_s, 0.001))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            self.closed = True
            return True
        if not data:
            self.closed = True
            return True
        for ev in self.framer.feed(data):
            if isinstance(ev, Frame):
                self.answers.append(ev.raw)
        return True

    def _await_answer(self, raw: bytes) -> bytes | None:
        """The 9014/9013 naming this packet's MN and QN, once it comes."""
        try:
            sent = parse_packet(raw)
        except DecodeError:
            sent = None
        deadline = time.monotonic() + self.timeout_s
        while True:
            while self.answers:
                answer = self.answers.popleft()
                try:
                    p = parse_packet(answer)
                except DecodeError:
                    continue
                if sent is None or (p.mn, p.qn) == (sent.mn, sent.qn):
                    return answer
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self._read(left)

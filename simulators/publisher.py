"""The device side of MQTT: a fleet's readings as JSON or HJ 212 telemetry, QoS 1.

The only simulators module that imports paho-mqtt. One client publishes for
every device (a gateway, as many field loggers sit behind one), and does not
return before the broker has acknowledged every message: a demo or a test that
counts stored readings must be able to trust ``PublishStats``.

The client's network loop runs in the publishing thread (``client.loop()``), not
in paho's background thread: one thread generating, publishing, reading acks and
reconnecting has no cross-thread wake-up per message and no GIL ping-pong with
the generator, and its state (connected, acknowledged counts) needs no locks.
paho's own per-message cost (~5 000 messages/s) is then the limit of a replay.

Payload (the documented format, ``protocol="json"``)::

    {"ts": "2025-03-01T08:00:00+00:00",
     "values": {"a21026": 12.3, "a19001": {"value": 8.1, "flag": "M"}}}

or, with ``protocol="hj212"``, the bytes of the HJ 212 real-time packet a logger would
send over TCP (``simulators.hj212_device``): ingest recognises the ``##`` header.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Protocol
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from offsite.core.readings import FLAGS
from offsite.core.registry import Registry
from offsite.ingest.codecs.hj212 import BEIJING
from offsite.simulators.clock import LOOP_SLICE_S, realtime_ticks, replay_ticks
from offsite.simulators.errors import PublishError
from offsite.simulators.hj212_device import (
    DEFAULT_PASSWORD,
    ST_BY_POINT_KIND,
    Hj212Encoder,
    realtime_packet,
)
from offsite.simulators.malformed import check_rate, corrupt, is_malformed
from offsite.simulators.replay import Record
from offsite.simulators.scenarios import Fleet

# Payload formats a fleet can publish; the first is the default.
PROTOCOLS = ("json", "hj212")


class PayloadEncoder(Protocol):
    """``(mn, ts, values, flags)`` → payload bytes; ``flags`` names only values not flagged N."""

    def __call__(
        self,
        mn: str,
        ts: datetime,
        values: Mapping[str, float],
        flags: Mapping[str, str] | None = None,
        /,
    ) -> bytes: ...


DEFAULT_PORT = 1883
CONNECT_TIMEOUT_S = 10.0
# How long the broker may stay unreachable, or leave messages unacknowledged,
# before publishing fails (paho resends unacknowledged QoS 1 after a reconnect).
ACK_TIMEOUT_S = 30.0
# Replays generate faster than any broker acknowledges; past this many
# unacknowledged messages we wait, so memory stays flat and the broker keeps up.
MAX_PENDING = 2000
# Messages paho keeps on the wire before queueing the rest locally.
INFLIGHT = 100
# Network-loop slice while waiting (ticks, acks, reconnects): bounds how late a
# stop request or a keepalive is handled.
RECONNECT_EVERY_S = 1.0
# Progress callbacks during a replay: at most this often (wall clock).
REPLAY_PROGRESS_EVERY_S = 0.5
# The readings count of a tick entry that is a deliberately broken copy (``malformed``).
MALFORMED = -1


@dataclass(frozen=True, slots=True)
class PublishStats:
    """What was published: messages (one per device and tick) and readings (values);
    ``malformed``: broken copies sent besides them (each one a dead letter for ingest)."""

    messages: int = 0
    readings: int = 0
    malformed: int = 0
    started_at: datetime | None = None
    elapsed_s: float = 0.0


def payload_json(
    ts: datetime, values: Mapping[str, float], flags: Mapping[str, str] | None = None
) -> bytes:
    """Encode one reading set; a pollutant with a flag becomes ``{"value", "flag"}``.

    Non-finite values and naive timestamps are refused here rather than sent,
    because ingest would only dead-letter them.
    """
    if ts.tzinfo is None:
        raise PublishError("payload timestamps must be timezone-aware")
    flags = flags or {}
    out: dict[str, float | dict[str, float | str]] = {}
    for code, value in values.items():
        v = float(value)
        if not math.isfinite(v):
            raise PublishError(f"value for {code} is not finite: {value!r}")
        flag = flags.get(code)
        if flag is None:
            out[code] = v
        elif flag in FLAGS:
            out[code] = {"value": v, "flag": flag}
        else:
            raise PublishError(f"flag {flag!r} for {code} is not an HJ 212 data flag")
    doc = {"ts": ts.isoformat(), "values": out}
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")


def payload_encoder(
    registry: Registry, protocol: str = "json", *, hj212_tz: tzinfo = BEIJING
) -> PayloadEncoder:
    """The function that turns one device tick into its MQTT payload in ``protocol``.

    Chosen once per run (not per message) so the HJ 212 encoder's registry lookups
    are built once; ``hj212_tz`` must be the zone the platform reads HJ 212 times in.
    """
    if protocol == "json":
        return lambda _mn, ts, values, flags=None: payload_json(ts, values, flags)
    if protocol == "hj212":
        encoder = Hj212Encoder(registry, tz=hj212_tz)
        return lambda mn, ts, values, flags=None: encoder.packet(mn, values, ts, flags)
    raise PublishError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")


def parse_mqtt_url(url: str) -> tuple[str, int, str | None, str | None]:
    """``mqtt://user:pass@host:port`` → ``(host, port, username, password)``.

    Credentials are percent-decoded so that passwords with ``@`` or ``:`` work.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise PublishError(f"unusable MQTT URL {url!r}: {exc}") from exc
    if parts.scheme not in ("mqtt", "tcp"):
        raise PublishError(f"MQTT URL must start with mqtt:// (got {url!r})")
    if not parts.hostname:
        raise PublishError(f"MQTT URL {url!r} has no host")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return parts.hostname, port, user, password


def publish_fleet(
    fleet: Fleet,
    mqtt_url: str,
    *,
    duration_s: float | None,
    start: datetime | None = None,
    realtime: bool = True,
    stop: threading.Event | None = None,
    on_progress: Callable[[PublishStats], None] | None = None,
    topic_template: str = "devices/{mn}/telemetry",
    client_id: str = "offsite-sim",
    protocol: str = "json",
    hj212_tz: tzinfo = BEIJING,
    malformed: float = 0.0,
) -> PublishStats:
    """Publish the fleet's ticks until ``duration_s`` is covered or ``stop`` is set.

    realtime: one tick per ``rate_s`` of wall clock, stamped with the current UTC
    time truncated to the tick (``start`` is ignored; build the fleet with
    ``start`` ≈ now so that its faults fall inside the run).
    replay (``realtime=False``): device time ``start`` (default ``fleet.start``),
    ``start + rate_s``, … as fast as the broker acknowledges, so an hour of a
    fleet takes seconds. ``duration_s=None`` runs until ``stop``.

    Returns once every published message is acknowledged (QoS 1), also after a
    stop. Raises ``PublishError`` if the broker cannot be reached, refuses us, or
    stays unreachable/silent for ``ACK_TIMEOUT_S``. ``on_progress`` gets a
    snapshot after each realtime tick, at most every 0.5 s in a replay, and once
    at the end. ``protocol`` picks the payload (``payload_encoder``). ``malformed``: the
    share of messages that are also sent broken, just before the good copy
    (``simulators.malformed``).
    """
    check_rate(malformed)
    host, port, username, password = parse_mqtt_url(mqtt_url)
    encode = payload_encoder(fleet.registry, protocol, hj212_tz=hj212_tz)
    if duration_s is not None and not duration_s >= 0:
        raise PublishError("duration_s must be >= 0 or None")
    try:
        topic_template.format(mn="0" * 24)
    except (KeyError, IndexError, ValueError) as exc:
        raise PublishError(f"topic template {topic_template!r} may only use {{mn}}") from exc
    stop = stop or threading.Event()

    def ticks(session: _Session) -> Iterator[list[tuple[str, bytes, int]]]:
        times = (
            realtime_ticks(fleet.rate_s, duration_s, stop, session.pump)
            if realtime
            else replay_ticks(fleet, duration_s, start, stop)
        )
        for ts in times:
            tick: list[tuple[str, bytes, int]] = []
            for m in fleet.messages(ts):
                topic = topic_template.format(mn=m.mn)
                payload = encode(m.mn, ts, m.values, m.flags)
                if is_malformed(malformed, fleet.seed, m.mn, ts):
                    tick.append((topic, corrupt(payload), MALFORMED))
                tick.append((topic, payload, len(m.values)))
            yield tick

    return _drive(
        _Session(host, port, username, password, client_id),
        ticks,
        stop,
        on_progress,
        every_tick=realtime,
    )


def _drive(
    session: _Session,
    ticks: Callable[[_Session], Iterator[list[tuple[str, bytes, int]]]],
    stop: threading.Event,
    on_progress: Callable[[PublishStats], None] | None,
    *,
    every_tick: bool = False,
) -> PublishStats:
    """Publish each tick's (topic, payload, readings) at QoS 1 with at most MAX_PENDING
    unacknowledged, report progress (after every tick, or every 0.5 s), and return once
    all is acknowledged — also after ``stop`` — with the session closed."""
    t_wall = time.monotonic()
    stats = PublishStats(started_at=datetime.now(UTC))
    last_progress = 0.0
    try:
        for tick in ticks(session):
            for topic, payload, _ in tick:
                session.publish(topic, payload)
            session.wait_acked(MAX_PENDING, stop)
            broken = sum(n == MALFORMED for _, _, n in tick)
            stats = replace(
                stats,
                messages=stats.messages + len(tick) - broken,
                readings=stats.readings + sum(n for _, _, n in tick if n != MALFORMED),
                malformed=stats.malformed + broken,
                elapsed_s=time.monotonic() - t_wall,
            )
            now = time.monotonic()
            if on_progress and (every_tick or now - last_progress >= REPLAY_PROGRESS_EVERY_S):
                last_progress = now
                on_progress(stats)
        session.wait_acked(0, None)
    finally:
        session.close()
    stats = replace(stats, elapsed_s=time.monotonic() - t_wall)
    if on_progress:
        on_progress(stats)
    return stats


def replay_encoder(
    protocol: str, *, password: str = DEFAULT_PASSWORD, st: str = "31", hj212_tz: tzinfo = BEIJING
) -> PayloadEncoder:
    """The payload encoder for a recorded series, which has no fleet registry behind it:
    the HJ 212 packet's password and system code (ST) are given instead."""
    if protocol == "json":
        return lambda _mn, ts, values, flags=None: payload_json(ts, values, flags)
    if protocol == "hj212":
        if st not in ST_BY_POINT_KIND.values():
            raise PublishError(
                f"HJ 212 system code must be one of {sorted(ST_BY_POINT_KIND.values())}, not {st!r}"
            )
        return lambda mn, ts, values, flags=None: realtime_packet(
            mn=mn, pw=password, st=st, values=values, ts=ts, tz=hj212_tz, flags=flags
        )
    raise PublishError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")


def publish_records(
    records: Sequence[Record],
    mqtt_url: str,
    mn: str,
    *,
    speed: float = 0.0,
    encode: PayloadEncoder | None = None,
    stop: threading.Event | None = None,
    on_progress: Callable[[PublishStats], None] | None = None,
    topic_template: str = "devices/{mn}/telemetry",
    client_id: str = "offsite-replay",
) -> PublishStats:
    """Publish a recorded series as device ``mn``, QoS 1, keeping its own timestamps.

    ``speed`` compresses the recording's time: record *i* goes out ``(ts_i − ts_0) /
    speed`` seconds after the first (60: an hour per minute); 0 sends as fast as the
    broker acknowledges. Returns once everything sent is acknowledged, also after
    ``stop``.
    """
    if not (math.isfinite(speed) and speed >= 0):
        raise PublishError(f"speed must be a number >= 0, not {speed!r}")
    encode = encode or replay_encoder("json")
    topic = topic_template.format(mn=mn)
    stop = stop or threading.Event()

    def ticks(session: _Session) -> Iterator[list[tuple[str, bytes, int]]]:
        t_wall = time.monotonic()
        t0 = records[0].ts if records else None
        for rec in records:
            if stop.is_set():
                return
            if speed > 0 and t0 is not None:
                due = t_wall + (rec.ts - t0).total_seconds() / speed
                while not stop.is_set() and (wait := due - time.monotonic()) > 0:
                    session.pump(min(wait, LOOP_SLICE_S))
            yield [(topic, encode(mn, rec.ts, rec.values, rec.flags), len(rec.values))]

    return _drive(_Session(*parse_mqtt_url(mqtt_url), client_id), ticks, stop, on_progress)


def publish_raw(
    mqtt_url: str, topic: str, payload: bytes, *, client_id: str = "offsite-sim-raw"
) -> None:
    """Publish arbitrary bytes once (QoS 1) and wait for the acknowledgement.

    For demos and tests of what ingest does with bad input (malformed JSON,
    unknown devices, naive timestamps), which ``payload_json`` refuses to build.
    """
    session = _Session(*parse_mqtt_url(mqtt_url), client_id)
    try:
        session.publish(topic, bytes(payload))
        session.wait_acked(0, None)
    finally:
        session.close()


class _Session:
    """One paho client driven from the calling thread: connect, publish, pump, reconnect.

    Acknowledgements are counted in ``on_publish`` rather than awaited through
    ``MQTTMessageInfo.wait_for_publish``, which raises at once for a message
    published while the connection was down although paho keeps it and
    delivers it after reconnecting.
    """

    def __init__(
        self, host: str, port: int, username: str | None, password: str | None, client_id: str
    ) -> None:
        self.where = f"{host}:{port}"
        self.sent = 0
        self.acked = 0
        self._up = False
        self._link = False  # a socket is open (connected, or waiting for the CONNACK)
        self._refused: str | None = None
        self._down_since: float | None = None
        self._last_try = 0.0
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        if username is not None:
            c.username_pw_set(username, password)
        c.max_queued_messages_set(0)  # unbounded: backpressure is ours (MAX_PENDING)
        c.max_inflight_messages_set(INFLIGHT)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        self.client = c
        try:
            c.connect(host, port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise PublishError(f"cannot reach the MQTT broker at {self.where}: {exc}") from exc
        self._link = True
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not self._up and self._refused is None and time.monotonic() < deadline:
            c.loop(timeout=LOOP_SLICE_S)
        if not self._up:
            c.disconnect()
            why = self._refused or f"no CONNACK within {CONNECT_TIMEOUT_S:.0f} s"
            raise PublishError(f"MQTT broker at {self.where} did not accept us: {why}")

    def _on_connect(
        self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            self._refused = str(reason)
        else:
            self._up = True
            self._down_since = None

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, _r: object, _p: object
    ) -> None:
        self._mark_down()

    def _on_publish(self, _c: mqtt.Client, _u: object, _mid: int, _r: object, _p: object) -> None:
        self.acked += 1

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        # A lost link is fine here: paho keeps QoS 1 messages and resends them
        # after reconnecting; pump() reconnects or gives up after ACK_TIMEOUT_S.
        if info.rc in (mqtt.MQTT_ERR_NO_CONN, mqtt.MQTT_ERR_CONN_LOST):
            self._mark_down()
        elif info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise PublishError(f"publish to {self.where} failed: {mqtt.error_string(info.rc)}")
        self.sent += 1

    def _mark_down(self) -> None:
        self._up = False
        if self._down_since is None:
            self._down_since = time.monotonic()

    def pump(self, timeout_s: float) -> None:
        """Run the network loop for up to ``timeout_s``, reconnecting when the link is down.

        Gives up with ``PublishError`` once the broker has been gone (or silent
        after a reconnect) for ``ACK_TIMEOUT_S``, or refuses a reconnect.
        """
        if self._link and self.client.loop(timeout=timeout_s) != mqtt.MQTT_ERR_SUCCESS:
            self._link = False
            self._mark_down()
        if self._up:
            return
        if self._refused is not None:
            raise PublishError(f"MQTT broker at {self.where} refused us: {self._refused}")
        now = time.monotonic()
        if self._down_since is not None and now - self._down_since > ACK_TIMEOUT_S:
            raise PublishError(
                f"lost the MQTT broker at {self.where} for more than "
                f"{ACK_TIMEOUT_S:.0f} s ({self.sent - self.acked} unacknowledged)"
            )
        if self._link:
            return  # connected, waiting for the CONNACK
        if now - self._last_try >= RECONNECT_EVERY_S:
            self._last_try = now
            try:
                # On CONNACK paho resends every QoS 1 message not yet acknowledged.
                self.client.reconnect()
                self._link = True
                return
            except (OSError, ValueError):
                pass
        time.sleep(timeout_s)

    def wait_acked(self, max_pending: int, stop: threading.Event | None) -> None:
        """Pump until at most ``max_pending`` are unacknowledged (or ``stop`` is set)."""
        self.pump(0.0)
        deadline = time.monotonic() + ACK_TIMEOUT_S
        while self.sent - self.acked > max_pending:
            if stop is not None and stop.is_set():
                return
            if time.monotonic() > deadline:
                raise PublishError(
                    f"{self.sent - self.acked} message(s) not acknowledged by "
                    f"{self.where} within {ACK_TIMEOUT_S:.0f} s"
                )
            self.pump(LOOP_SLICE_S)

    def close(self) -> None:
        try:
            self.client.disconnect()
            self.client.loop(timeout=0.0)
        except (OSError, ValueError):  # pragma: no cover - closing a dead socket
            pass

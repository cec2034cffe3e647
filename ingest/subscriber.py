"""The MQTT edge: the only module that imports paho.

QoS 1, persistent session, a stable client id, and *manual* acknowledgement: a message
is acknowledged only when ``ack`` is called after its batch committed. If the process
dies first, the broker redelivers it.

Protocol: MQTT 3.1.1 (clean session off) for a plain subscription, because every broker
here speaks it, the embedded one included. A shared subscription
(``$share/<group>/<topic>``, several workers splitting the stream) is MQTT 5's, so with a
share group the client speaks MQTT 5, and keeps the same guarantee with clean start off
and a session that never expires — the MQTT 5 spelling of clean session off.

Backpressure: ``on_message`` puts into a bounded queue and blocks when it is full, so
paho stops reading the socket and the broker holds the backlog — nothing is dropped
here. paho reconnects by itself with backoff; ``on_connect`` resubscribes.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from offsite.core.readings import InboundMessage
from offsite.ingest.errors import BrokerError

log = logging.getLogger("offsite.ingest.mqtt")
# MQTT 5 session expiry meaning "never" (as a 3.1.1 persistent session): the broker's
# own limit (Mosquitto's persistent_client_expiration) still applies.
SESSION_NEVER_EXPIRES = 0xFFFFFFFF


def parse_mqtt_url(url: str) -> tuple[str, int, str | None, str | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise BrokerError(f"not an mqtt://host:port URL: {url!r}")
    return (
        parts.hostname,
        parts.port or 1883,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


class Subscriber:
    def __init__(
        self,
        url: str,
        topic: str,
        client_id: str,
        inbox: queue.Queue[InboundMessage],
        *,
        shared_group: str | None = None,
        keepalive: int = 30,
    ) -> None:
        self.host, self.port, user, password = parse_mqtt_url(url)
        self.topic = f"$share/{shared_group}/{topic}" if shared_group else topic
        self.inbox = inbox
        self.connected = threading.Event()
        self.received = 0
        self.keepalive = keepalive
        self.mqtt5 = bool(shared_group)
        self._stopping = False
        self._paused = False
        self.handing: datetime | None = None  # received_at of a message being enqueued
        if self.mqtt5:
            c = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=True,
            )
        else:
            c = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2,
                client_id=client_id,
                clean_session=False,
                protocol=mqtt.MQTTv311,
                manual_ack=True,
            )
        if user:
            c.username_pw_set(user, password)
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self._client = c

    def start(self, timeout: float = 15.0) -> None:
        """Connect (and keep reconnecting in paho's thread); fail if never connected."""
        try:
            if self.mqtt5:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = SESSION_NEVER_EXPIRES
                # clean_start=False on every connect, the first included (paho's default
                # starts the first one clean, which would discard a restarted worker's
                # session and the messages the broker held for it)
                self._client.connect_async(
                    self.host,
                    self.port,
                    keepalive=self.keepalive,
                    clean_start=False,
                    properties=props,
                )
            else:
                self._client.connect_async(self.host, self.port, keepalive=self.keepalive)
        except (OSError, ValueError) as exc:
            raise BrokerError(f"cannot connect to MQTT broker {self.host}:{self.port}") from exc
        self._client.loop_start()
        if not self.connected.wait(timeout):
            self.stop()
            raise BrokerError(
                f"MQTT broker {self.host}:{self.port} did not accept a "
                f"connection within {timeout:g} s"
            )

    def pause(self) -> None:
        """Take no more messages (those arriving are left unacknowledged for redelivery)."""
        self._paused = True

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def ack(self, msg: InboundMessage) -> None:
        if msg.qos > 0:
            self._client.ack(msg.mid, msg.qos)

    # paho callbacks (paho's network thread) --------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: mqtt.ReasonCode,
        properties: object,
    ) -> None:
        if reason.is_failure:
            log.error("MQTT connection refused: %s", reason)
            return
        # "connected" only once the broker has granted the subscription (SUBACK): until
        # then a message published to the topic is not routed to us, so ``start`` must
        # not return earlier
        client.subscribe(self.topic, qos=1)
        log.info(
            "MQTT connected to %s:%d (session present: %s)",
            self.host,
            self.port,
            flags.session_present,
        )

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[mqtt.ReasonCode],
        properties: object,
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error(
                "MQTT broker refused the subscription to %s: %s",
                self.topic,
                ", ".join(str(r) for r in reasons),
            )
            return
        self.connected.set()
        log.info("MQTT subscribed to %s", self.topic)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason: mqtt.ReasonCode,
        properties: object,
    ) -> None:
        self.connected.clear()
        if not self._stopping:
            log.warning("MQTT disconnected (%s); paho reconnects with backoff", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if self._paused:
            return
        self.received += 1
        # being handed over: the pipeline's "committed through" promise must not pass it
        # (this thread may be descheduled, or blocked on a full inbox). Set before the
        # message is stamped, so it is never later than the stamp.
        self.handing = datetime.now(UTC)
        msg = InboundMessage(
            message.topic, bytes(message.payload), datetime.now(UTC), message.mid, message.qos
        )
        try:
            while True:  # block (backpressure) but never past a shutdown
                try:
                    self.inbox.put(msg, timeout=0.5)
                    return
                except queue.Full:
                    if self._stopping:
                        return  # not acknowledged: the broker redelivers it next session
        finally:
            self.handing = None

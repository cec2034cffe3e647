"""The MQTT edge: the only module that imports paho.

QoS 1, persistent session, a stable client id, and *manual* acknowledgement: a message
is acknowledged only when ``ack`` is called after its batch committed. If the process
dies first, the broker redelivers it.

Protocol: MQTT 3.1.1 (clean session off) for a plain subscription, because every broker
here speaks it, the embedded one included. A shared subscription
(``$share/<group>/<topic>``, several workers splitting the stream) is MQTT 5's, so with a
share group the client speaks MQTT 5, and keeps the same guarantee with clean start off
and a session that never expires — the MQTT 5 spelling of clean session off.

A dead member of a share group: Mosquitto keeps routing the group's messages to a
member's persistent session while it is away, and keeps the messages it had in flight
there, until that member comes back (measured: about half the traffic parked for a
minute). A session that ends with the connection (expiry 0) is no cure on Mosquitto
2.0: the messages it had in flight are dropped, not handed to the others (measured,
and mosquitto issue #2662). So the members watch each other instead: each sets a
retained will ``offsite/members/<group>/<client id>`` = ``gone`` (published by the
broker the moment its connection dies, kill -9 included) and announces ``up`` when
connected. A survivor that hears ``gone`` *adopts* the session: it connects a second
client with the dead member's id and clean start off, so the broker hands it the
unacknowledged messages and the share from then on; their acks go back through that
client after the commit, as usual. When the member returns, the broker gives its
session back (session takeover) and the adopter lets go. EMQX can redispatch by itself
(see deploy/emqx/).

Backpressure: ``on_message`` puts into a bounded queue and blocks when it is full, so
paho stops reading the socket and the broker holds the backlog — nothing is dropped
here. paho reconnects by itself with backoff; ``on_connect`` resubscribes.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
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
MEMBERS = "offsite/members"  # offsite/members/<group>/<client id>: up | gone (retained)


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
        self.client_id = client_id
        self.shared_group = shared_group
        self.user, self.password = user, password
        # sessions of dead share-group members this worker has taken over, by client id
        self.adopted: dict[str, mqtt.Client] = {}
        self._adopt_lock = threading.Lock()
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
        if shared_group:
            # the broker says so when we die, however we die: survivors adopt the session
            c.will_set(self._member_topic(client_id), b"gone", qos=1, retain=True)
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
        if self.shared_group and self.connected.is_set():
            # everything in hand is committed: let a survivor take our share meanwhile,
            # and hand back the sessions we adopted (they were someone else's)
            with self._adopt_lock:
                adopted = dict(self.adopted)
                self.adopted.clear()
            for peer, adopter in adopted.items():
                adopter.disconnect()
                adopter.loop_stop()
                self._client.publish(self._member_topic(peer), b"gone", qos=1, retain=True)
            info = self._client.publish(
                self._member_topic(self.client_id), b"gone", qos=1, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):  # not connected any more
                info.wait_for_publish(2.0)
        self._client.disconnect()
        self._client.loop_stop()

    # share-group members ----------------------------------------------------------------
    def _member_topic(self, client_id: str) -> str:
        return f"{MEMBERS}/{self.shared_group}/{client_id}"

    def _on_member(self, client: mqtt.Client, message: mqtt.MQTTMessage) -> None:
        """A member's state changed: adopt the session of one that is gone."""
        if message.qos > 0:
            client.ack(message.mid, message.qos)
        peer = message.topic.rsplit("/", 1)[-1]
        state = bytes(message.payload)
        if peer == self.client_id or self._stopping:
            return
        if state == b"gone":
            self._adopt(peer)
        elif state == b"up":
            with self._adopt_lock:
                adopter = self.adopted.pop(peer, None)
            if adopter is not None:  # the broker has given the session back already
                log.info("share-group member %s is back; its session returned to it", peer)
                adopter.disconnect()

    def _adopt(self, peer: str) -> None:
        with self._adopt_lock:
            if peer in self.adopted:
                return
            a = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2,
                client_id=peer,
                protocol=mqtt.MQTTv5,
                manual_ack=True,
                reconnect_on_failure=False,  # taken back by its owner: let go, never fight
            )
            self.adopted[peer] = a
        if self.user:
            a.username_pw_set(self.user, self.password)

        def on_connect(
            client: mqtt.Client,
            userdata: object,
            flags: mqtt.ConnectFlags,
            reason: mqtt.ReasonCode,
            properties: object,
        ) -> None:
            if reason.is_failure:
                log.error("could not adopt the session of %s: %s", peer, reason)
                return
            client.subscribe(self.topic, qos=1)
            log.warning(
                "share-group member %s is gone: took over its session (present: %s) so its "
                "unacknowledged messages and its share are stored here until it returns",
                peer,
                flags.session_present,
            )

        def on_disconnect(
            client: mqtt.Client,
            userdata: object,
            flags: object,
            reason: mqtt.ReasonCode,
            properties: object,
        ) -> None:
            with self._adopt_lock:
                if self.adopted.get(peer) is client:
                    del self.adopted[peer]
            if not self._stopping:
                log.info("let go of the session of %s (%s)", peer, reason)

        def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
            if message.topic.startswith(f"{MEMBERS}/"):
                # the adopted session's own subscription to the members: ours answers those
                if message.qos > 0:
                    client.ack(message.mid, message.qos)
                return

            def ack(accepted: bool, mid: int = message.mid, qos: int = message.qos) -> None:
                if qos > 0:
                    client.ack(mid, qos)

            self._enqueue(message, ack)

        a.on_connect = on_connect
        a.on_disconnect = on_disconnect
        a.on_message = on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_NEVER_EXPIRES
        try:
            a.connect_async(
                self.host, self.port, keepalive=self.keepalive, clean_start=False, properties=props
            )
            a.loop_start()
        except (OSError, ValueError) as exc:
            log.error("could not adopt the session of %s: %s", peer, exc)
            with self._adopt_lock:
                self.adopted.pop(peer, None)

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
        if self.shared_group:
            client.subscribe(f"{MEMBERS}/{self.shared_group}/+", qos=1)
            client.publish(self._member_topic(self.client_id), b"up", qos=1, retain=True)
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
        if reasons and all(not r.is_failure for r in reasons) and self.connected.is_set():
            return  # the members topic, granted after the data topic
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
        if self.shared_group and message.topic.startswith(f"{MEMBERS}/"):
            self._on_member(client, message)
            return
        self._enqueue(message, None)

    def _enqueue(self, message: mqtt.MQTTMessage, on_commit: Callable[[bool], None] | None) -> None:
        """Hand a message to the pipeline (blocking while the inbox is full)."""
        if self._paused:
            return
        self.received += 1
        # being handed over: the pipeline's "committed through" promise must not pass it
        # (this thread may be descheduled, or blocked on a full inbox). Set before the
        # message is stamped, so it is never later than the stamp.
        self.handing = datetime.now(UTC)
        msg = InboundMessage(
            message.topic,
            bytes(message.payload),
            datetime.now(UTC),
            message.mid,
            message.qos,
            on_commit=on_commit,
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

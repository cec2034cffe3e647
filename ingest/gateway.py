"""The HJ 212 TCP gateway: data loggers connect, send packets, get answers.

Runs an asyncio server in its own thread. Each connection has a framer; each packet
becomes an ``InboundMessage`` (transport "tcp") in the same inbox as MQTT messages, so
it gets the same validation, batching and commit. The HJ 212 response (data response
9014 / notice response 9013, when the packet's Flag asks for one) is written only after
the packet's batch has committed — the TCP equivalent of acknowledging after commit: a
logger that gets no answer sends again, and the primary key makes that harmless. A
packet that is refused (too old, wrong password…) is answered too, once its dead letter
has committed: 9014 acknowledges receipt and the dead letter is the durable record, and
a logger left unanswered would resend it forever. Only bytes that do not parse as a
packet (no QN or MN to answer) get no answer.

Protection: at most ``max_connections``; a connection idle for ``idle_timeout_s`` is
closed, and so is one whose packet is unfinished ``frame_timeout_s`` after its first
byte (a deadline, not a timeout per read: a packet trickled a byte at a time cannot
hold a connection open); one that sends more than ``max_garbage_bytes`` of noise is cut
off (its noise dead-lettered first). Other connections are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from offsite.core.readings import InboundMessage
from offsite.ingest.codecs import hj212
from offsite.ingest.errors import DecodeError, IngestError
from offsite.ingest.framer import Frame, Framer, Garbage

log = logging.getLogger("offsite.gateway")


@dataclass(slots=True)
class GatewayStats:
    connections: int = 0
    open_connections: int = 0
    packets: int = 0
    replies: int = 0
    garbage_bytes: int = 0
    cut_off: int = 0
    timeouts: int = 0
    refused: int = 0


class Gateway:
    def __init__(
        self,
        inbox: queue.Queue[InboundMessage],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        idle_timeout_s: float = 300.0,
        frame_timeout_s: float = 30.0,
        max_garbage_bytes: int = 16_384,
        max_connections: int = 2000,
    ) -> None:
        self.inbox = inbox
        self.host = host
        self.port = port
        self.idle_timeout_s = idle_timeout_s
        self.frame_timeout_s = frame_timeout_s
        self.max_garbage_bytes = max_garbage_bytes
        self.max_connections = max_connections
        self.stats = GatewayStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self.host, self.port, limit=2**16)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except OSError as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="offsite-gateway", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise IngestError(
                f"HJ 212 gateway cannot listen on {self.host}:{self.port}: {self._error}"
            ) from self._error
        log.info("HJ 212 gateway listening on %s:%d", self.host, self.port)

    def pause(self) -> None:
        """Read no more from any connection; replies still owed are written."""
        self._closing = True

    def stop(self) -> None:
        """Stop accepting and reading; replies still owed are written until the loop ends."""
        self._closing = True
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        async def close() -> None:
            server.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()
            await asyncio.sleep(0)

        with contextlib.suppress(Exception, asyncio.CancelledError):
            asyncio.run_coroutine_threadsafe(close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    # -- connections ----------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = f"tcp/{peer[0]}:{peer[1]}" if peer else "tcp/?"
        if self.stats.open_connections >= self.max_connections or self._closing:
            self.stats.refused += 1
            writer.close()
            return
        self.stats.connections += 1
        self.stats.open_connections += 1
        framer = Framer()
        garbage = 0
        loop = asyncio.get_running_loop()
        frame_deadline = 0.0  # when the packet being received must be complete
        try:
            while not self._closing:
                if framer.buffered:
                    timeout = max(0.0, frame_deadline - loop.time())
                else:
                    timeout = self.idle_timeout_s
                try:
                    data = await asyncio.wait_for(reader.read(65536), timeout)
                except TimeoutError:
                    self.stats.timeouts += 1
                    log.info(
                        "%s: %s; closing",
                        source,
                        f"packet unfinished {self.frame_timeout_s:g} s after its first byte"
                        if framer.buffered
                        else "idle",
                    )
                    events = framer.flush()
                    await self._emit(events, source, writer, loop)
                    return
                if not data:
                    await self._emit(framer.flush(), source, writer, loop)
                    return
                was_buffered = framer.buffered
                events = framer.feed(data)
                # the deadline runs from a packet's first byte: it starts when bytes are
                # left over with none before, or after a whole packet was cut (what is
                # left began in this read); noise cut off ahead of a held header does not
                # restart it
                if framer.buffered and (
                    not was_buffered or any(isinstance(e, Frame) for e in events)
                ):
                    frame_deadline = loop.time() + self.frame_timeout_s
                garbage += sum(len(e.raw) for e in events if isinstance(e, Garbage))
                await self._emit(events, source, writer, loop)
                if garbage > self.max_garbage_bytes:
                    self.stats.cut_off += 1
                    log.warning("%s: %d bytes of noise; connection cut off", source, garbage)
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self.stats.open_connections -= 1
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _emit(
        self,
        events: list[Frame | Garbage],
        source: str,
        writer: asyncio.StreamWriter,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        for ev in events:
            now = datetime.now(UTC)
            if isinstance(ev, Garbage):
                self.stats.garbage_bytes += len(ev.raw)
                msg = InboundMessage(source, ev.raw[:4096], now, transport="tcp", garbage=ev.reason)
            else:
                self.stats.packets += 1
                msg = InboundMessage(
                    source,
                    ev.raw,
                    now,
                    transport="tcp",
                    on_commit=self._replier(ev.raw, writer, loop),
                )
            while True:  # backpressure: stop reading this connection while the inbox is full
                try:
                    self.inbox.put_nowait(msg)
                    break
                except queue.Full:
                    await asyncio.sleep(0.05)

    def _replier(
        self, raw: bytes, writer: asyncio.StreamWriter, loop: asyncio.AbstractEventLoop
    ) -> Callable[[bool], None]:
        try:
            response = hj212.build_response(hj212.parse_packet(raw))
        except DecodeError:
            response = None

        def on_commit(accepted: bool = True) -> None:
            # called once the packet's readings or its dead letter committed: either way
            # it was received and durably recorded, and the logger may move on
            if response is None or writer.is_closing():
                return
            self.stats.replies += 1
            with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
                loop.call_soon_threadsafe(writer.write, response)

        return on_commit

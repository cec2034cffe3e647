"""Cut HJ 212 packets out of a TCP byte stream. Pure: bytes in, frames and garbage out.

A packet runs from a ``##dddd`` header to its ``\\r\\n``. Several packets may arrive in
one read, one packet across several reads, and noise between them; noise is reported
(never silently skipped, except whitespace between packets) so the gateway can
dead-letter it and cut off a connection that sends nothing else. Only ``##`` followed by
four digits starts a packet, so a stray ``#`` in noise cannot swallow the next packet.
A packet whose CRLF is missing is cut where its header's length says, when the next
header starts exactly there; a truncated packet followed by a new header is reported as
garbage up to that header, and the new packet is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_FRAME = 6 + 9999 + 4 + 2
_HEADER = re.compile(rb"##([0-9]{4})")
_CRC = re.compile(rb"[0-9A-Fa-f]{4}")
_PARTIAL_HEADER = re.compile(rb"#(?:#[0-9]{0,3})?\Z")  # a header cut by the read boundary


@dataclass(frozen=True, slots=True)
class Frame:
    raw: bytes


@dataclass(frozen=True, slots=True)
class Garbage:
    raw: bytes
    reason: str


Event = Frame | Garbage


class Framer:
    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        out: list[Event] = []
        buf = self._buf
        while buf:
            m = _HEADER.search(buf)
            if m is None:
                tail = _PARTIAL_HEADER.search(buf[-5:])
                keep = len(tail.group()) if tail else 0
                self._noise(bytes(buf[: len(buf) - keep]), out)
                del buf[: len(buf) - keep]
                break
            if m.start():
                self._noise(bytes(buf[: m.start()]), out)
                del buf[: m.start()]
            cut = self._cut(buf)
            if cut is None:
                if len(buf) > self.max_frame:
                    out.append(
                        Garbage(bytes(buf), f"no CRLF within {self.max_frame} bytes of a ## header")
                    )
                    buf.clear()
                break
            end, is_frame = cut
            piece = bytes(buf[:end])
            out.append(
                Frame(piece)
                if is_frame
                else Garbage(piece, "unfinished packet: a new ## header began before its CRLF")
            )
            del buf[:end]
        return out

    def flush(self) -> list[Event]:
        """At end of stream: whatever is left is an unfinished packet."""
        if not self._buf:
            return []
        rest = bytes(self._buf)
        self._buf.clear()
        if not rest.strip(b"\r\n\t "):
            return []
        return [Garbage(rest, "connection closed inside a packet")]

    @staticmethod
    def _cut(buf: bytearray) -> tuple[int, bool] | None:
        """(end, is a frame) for the packet starting at 0, or None if it is not all here."""
        m = _HEADER.match(buf)
        assert m is not None
        by_length = 6 + int(m.group(1)) + 4
        if buf[by_length : by_length + 2] == b"\r\n" and _CRC.fullmatch(
            buf[by_length - 4 : by_length]
        ):
            return by_length + 2, True  # the header's length ends at CRC + CRLF: trust it
        crlf = buf.find(b"\r\n", 6)
        nxt = _HEADER.search(buf, 6)
        if nxt is not None and (crlf < 0 or nxt.start() < crlf):
            if nxt.start() == by_length:
                return by_length, True  # CRLF missing, length right: still a packet
            return nxt.start(), False
        if crlf >= 0:
            return crlf + 2, True
        return None

    @staticmethod
    def _noise(data: bytes, out: list[Event]) -> None:
        if data.strip(b"\r\n\t "):
            out.append(Garbage(data, "bytes outside any ## … CRLF packet"))

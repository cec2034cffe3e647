"""Cut HJ 212 packets out of a TCP byte stream. Pure: bytes in, frames and garbage out.

A packet runs from ``##`` to its ``\\r\\n``. Several packets may arrive in one read, one
packet across several reads, and noise between them; noise is reported (never silently
skipped) so the gateway can dead-letter it and cut off a connection that sends nothing
else. A packet whose CRLF is missing but whose header length points exactly at the next
``##`` is still cut right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_FRAME = 6 + 9999 + 4 + 2
_LEN_RE = re.compile(rb"##(\d{4})")


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
            start = buf.find(b"##")
            if start < 0:
                # keep a trailing '#' that may begin the next header
                keep = 1 if buf.endswith(b"#") else 0
                noise = bytes(buf[:len(buf) - keep])
                del buf[:len(buf) - keep]
                self._noise(noise, out)
                break
            if start:
                self._noise(bytes(buf[:start]), out)
                del buf[:start]
            end = self._end(buf)
            if end is None:
                if len(buf) > self.max_frame:
                    nxt = buf.find(b"##", 2)
                    cut = nxt if nxt > 0 else len(buf)
                    out.append(Garbage(bytes(buf[:cut]), f"no CRLF within {self.max_frame} "
                                                         "bytes of a ## header"))
                    del buf[:cut]
                    continue
                break
            out.append(Frame(bytes(buf[:end])))
            del buf[:end]
        return out

    def flush(self) -> list[Event]:
        """At end of stream: whatever is left is an unfinished packet."""
        if not self._buf:
            return []
        rest = bytes(self._buf)
        self._buf.clear()
        if rest.strip(b"\r\n\t ") == b"":
            return []
        return [Garbage(rest, "connection closed inside a packet")]

    def _end(self, buf: bytearray) -> int | None:
        """Index just past the packet starting at 0, or None if it is not all here."""
        crlf = buf.find(b"\r\n", 2)
        m = _LEN_RE.match(buf)
        if m:
            by_length = 6 + int(m.group(1)) + 4
            nxt = buf.find(b"##", 2)
            # no CRLF, but the next packet begins exactly where this one's length ends
            if 0 < nxt == by_length and (crlf < 0 or crlf > nxt):
                return by_length
        return crlf + 2 if crlf >= 0 else None

    @staticmethod
    def _noise(data: bytes, out: list[Event]) -> None:
        if data.strip(b"\r\n\t \x00"):
            out.append(Garbage(data, "bytes outside any ## … CRLF packet"))

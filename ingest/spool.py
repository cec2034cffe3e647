"""Ingest's disk buffer: what arrived while the database was away, kept on local disk.

In the manner of Fluent Bit's filesystem buffering and Vector's disk buffers: when a
batch cannot be committed because the database is unavailable, its raw messages are
appended here, fsync'd, and only *then* acknowledged to the broker, so an acknowledged
message never lives only in the broker's memory (a Mosquitto SIGKILL loses everything
accepted since its last autosave). A drainer feeds the spool back through the normal
validate/store path, in order, once the database answers.

Layout: one directory per ingest worker holding ``spool.id`` (a random id naming this
spool in the database), ``lock`` (flock: one process per spool) and numbered segment
files ``<16 digits>.seg``. A segment is a sequence of records::

    u32 body length | u32 CRC-32 of body | body
    body = u8 version | i64 received_at (µs since epoch, UTC) | u8 qos
           | u8 len + transport | u16 len + topic (UTF-8) | payload (the rest)

A position is ``(segment, offset)`` just past a record. How far the spool has been
drained is written *in the same transaction* as the drained readings (table
``spool_marks``), so a kill -9 anywhere replays nothing twice and skips nothing.

A torn tail (kill -9 mid-append, a partial write) fails its length or checksum and is
truncated at open; a damaged record in the middle of a segment is logged and the rest
of that segment skipped (it can only come from the disk itself).

The record codec and the segment bookkeeping are pure functions (tested with
hypothesis); :class:`Spool` is the I/O edge.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from offsite.core.readings import InboundMessage
from offsite.ingest.errors import IngestError

log = logging.getLogger("offsite.ingest.spool")

VERSION = 1
HEADER = struct.Struct("<II")  # body length, CRC-32 of the body
BODY = struct.Struct("<BqB")  # version, received_at µs, qos
MAX_RECORD = 64 * 1024 * 1024  # a length beyond this is garbage, not a record
SEGMENT_SUFFIX = ".seg"
FILL_WARNINGS = (0.5, 0.8, 0.95)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Position = tuple[int, int]  # (segment number, byte offset just past a record)


class SpoolError(IngestError):
    """The spool directory cannot be used (locked by another process, unwritable)."""


# -- pure: records ---------------------------------------------------------------------
def encode_record(msg: InboundMessage) -> bytes:
    """One message as a length-prefixed, checksummed record."""
    topic = msg.topic.encode("utf-8", "surrogateescape")
    transport = msg.transport.encode("ascii")
    if len(topic) > 0xFFFF or len(transport) > 0xFF:
        raise ValueError("topic or transport too long for a spool record")
    micros = (msg.received_at - EPOCH) // timedelta(microseconds=1)
    body = b"".join(
        (
            BODY.pack(VERSION, micros, msg.qos),
            bytes((len(transport),)),
            transport,
            struct.pack("<H", len(topic)),
            topic,
            msg.payload,
        )
    )
    return HEADER.pack(len(body), zlib.crc32(body)) + body


def _decode_body(body: bytes) -> InboundMessage:
    version, micros, qos = BODY.unpack_from(body, 0)
    if version != VERSION:
        raise ValueError(f"unknown spool record version {version}")
    at = BODY.size
    tlen = body[at]
    transport = body[at + 1 : at + 1 + tlen].decode("ascii")
    at += 1 + tlen
    (plen,) = struct.unpack_from("<H", body, at)
    at += 2
    topic = body[at : at + plen].decode("utf-8", "surrogateescape")
    at += plen
    if at > len(body):
        raise ValueError("record body shorter than its fields")
    return InboundMessage(
        topic,
        body[at:],
        EPOCH + timedelta(microseconds=micros),
        0,
        qos,
        transport,
    )


@dataclass(frozen=True, slots=True)
class Decoded:
    """What :func:`decode_records` found: records with their end offsets, where the good
    data ends, and why decoding stopped there (None: a clean end)."""

    records: list[tuple[InboundMessage, int]]
    good_end: int
    problem: str | None


def decode_records(buf: bytes | memoryview, start: int = 0) -> Decoded:
    """Decode records from ``buf[start:]`` up to the first incomplete or damaged one."""
    out: list[tuple[InboundMessage, int]] = []
    at = start
    n = len(buf)
    while at < n:
        if n - at < HEADER.size:
            return Decoded(out, at, "torn header")
        length, crc = HEADER.unpack_from(buf, at)
        if length < BODY.size + 3 or length > MAX_RECORD:
            return Decoded(out, at, f"impossible record length {length}")
        end = at + HEADER.size + length
        if end > n:
            return Decoded(out, at, "torn record")
        body = bytes(buf[at + HEADER.size : end])
        if zlib.crc32(body) != crc:
            return Decoded(out, at, "checksum mismatch")
        try:
            msg = _decode_body(body)
        except (ValueError, struct.error, UnicodeDecodeError, IndexError) as exc:
            return Decoded(out, at, f"undecodable record: {exc}")
        out.append((msg, end))
        at = end
    return Decoded(out, at, None)


# -- pure: segment bookkeeping ---------------------------------------------------------
def segment_name(number: int) -> str:
    return f"{number:016d}{SEGMENT_SUFFIX}"


def segment_number(name: str) -> int | None:
    """The number of a segment file name, None for any other file."""
    stem = name.removesuffix(SEGMENT_SUFFIX)
    if stem == name or len(stem) != 16 or not stem.isdigit():
        return None
    return int(stem)


def releasable(segments: Sequence[int], mark: Position, end: Position) -> list[int]:
    """Segments wholly drained by ``mark``: those before its segment, and all of them
    once everything written (``end``) is drained."""
    if mark >= end:
        return sorted(segments)
    return sorted(s for s in segments if s < mark[0])


def fill_crossed(before: int, after: int, capacity: int) -> float | None:
    """The highest of FILL_WARNINGS crossed going from ``before`` to ``after`` bytes."""
    crossed = [f for f in FILL_WARNINGS if before < f * capacity <= after]
    return max(crossed) if crossed else None


# -- the I/O edge ----------------------------------------------------------------------
@dataclass(slots=True)
class SpoolFigures:
    """Counters for metrics: messages and bytes appended and drained since start."""

    appended: int = 0
    appended_bytes: int = 0
    drained: int = 0
    refused_full: int = 0


class Spool:
    """A bounded, append-only, fsync'd spool of inbound messages in ``directory``.

    ``append`` is called by the writer thread, ``read``/``drained`` by the drainer;
    ``lock`` orders them: a batch is appended to the spool while anything older is
    still in it (``pending``), so the spool drains in arrival order.
    """

    def __init__(
        self, directory: Path, max_bytes: int, *, segment_bytes: int | None = None
    ) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.dir = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(64 * 1024, min(64 * 1024 * 1024, max_bytes // 8))
        self.lock = threading.RLock()
        self.figures = SpoolFigures()
        self.id = ""
        self._sizes: dict[int, int] = {}  # segment → its fsync'd length
        self._mark: Position = (0, 0)
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self.pending_since: datetime | None = None  # oldest undrained message, if known
        self.pending_records = 0

    # -- opening ------------------------------------------------------------------------
    def open(self, wait_s: float = 0.0) -> None:
        """Take the directory (one process; waiting up to ``wait_s`` for another that
        is draining it), repair a torn tail, find the segments."""
        deadline = time.monotonic() + wait_s
        try:
            while True:
                self.dir.mkdir(parents=True, exist_ok=True)
                self._lock_fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise
                    self.close()
                    time.sleep(0.2)
                    continue
                if _same_file(self._lock_fd, self.dir / "lock"):
                    break
                self.close()  # a peer drained this spool and removed it meanwhile: anew
        except BlockingIOError as exc:
            self.close()
            raise SpoolError(f"spool {self.dir} is in use by another process") from exc
        except OSError as exc:
            self.close()
            raise SpoolError(f"spool directory {self.dir} is not usable: {exc}") from exc
        id_file = self.dir / "spool.id"
        if not id_file.exists():
            tmp = self.dir / "spool.id.tmp"
            tmp.write_text(uuid.uuid4().hex)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, id_file)
            self._sync_dir()
        self.id = id_file.read_text().strip()
        numbers = sorted(
            n for n in (segment_number(p.name) for p in self.dir.iterdir()) if n is not None
        )
        for n in numbers:
            self._sizes[n] = (self.dir / segment_name(n)).stat().st_size
        if numbers:
            self._repair(numbers[-1])

    def _repair(self, number: int) -> None:
        """Truncate a torn or damaged tail of the last segment (kill -9 mid-append)."""
        path = self.dir / segment_name(number)
        data = path.read_bytes()
        found = decode_records(data)
        if found.problem is not None:
            log.warning(
                "spool segment %s: %s at byte %d; truncating %d bytes (an append cut short)",
                path.name,
                found.problem,
                found.good_end,
                len(data) - found.good_end,
            )
            with open(path, "rb+") as f:
                f.truncate(found.good_end)
                os.fsync(f.fileno())
        self._sizes[number] = found.good_end

    def resume(self, mark: Position | None) -> None:
        """Start after ``mark`` (read from the database): drop what it covers, count the
        rest (pending records and the oldest of them)."""
        with self.lock:
            first = min(self._sizes, default=1)
            self._mark = mark if mark is not None else (first, 0)
            self._release()
            count = 0
            oldest: datetime | None = None
            pos = self._mark
            while True:
                chunk = self.read(pos, 10_000)
                if not chunk:
                    break
                if oldest is None:
                    oldest = chunk[0][0].received_at
                count += len(chunk)
                pos = chunk[-1][1]
            self.pending_records = count
            self.pending_since = oldest
            if count:
                log.warning(
                    "spool %s holds %d messages (%d bytes) not yet stored; draining them first",
                    self.dir,
                    count,
                    self.bytes,
                )

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- state --------------------------------------------------------------------------
    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())

    @property
    def end(self) -> Position:
        """Just past the last fsync'd record."""
        if not self._sizes:
            return self._mark
        last = max(self._sizes)
        return (last, self._sizes[last])

    @property
    def mark(self) -> Position:
        return self._mark

    @property
    def pending(self) -> bool:
        """Is anything written not yet drained?"""
        return self._mark < self.end

    # -- writing ------------------------------------------------------------------------
    def append(self, msgs: Sequence[InboundMessage]) -> bool:
        """Append and fsync ``msgs``; False (nothing written) if they do not fit."""
        data = b"".join(encode_record(m) for m in msgs)
        with self.lock:
            before = self.bytes
            if before + len(data) > self.max_bytes:
                self.figures.refused_full += 1
                return False
            if not self._sizes:  # all drained and freed: a new segment past the mark
                number = self._mark[0] + 1
                self._open_segment(number)
            else:
                number = max(self._sizes)
                if self._sizes[number] >= self.segment_bytes:
                    number += 1
                    self._open_segment(number)
                elif self._fd is None:
                    self._open_segment(number)
            assert self._fd is not None
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
            self._sizes[number] += len(data)
            if not self.pending_records:
                self.pending_since = msgs[0].received_at if msgs else None
            self.pending_records += len(msgs)
            self.figures.appended += len(msgs)
            self.figures.appended_bytes += len(data)
            level = fill_crossed(before, before + len(data), self.max_bytes)
            if level is not None:
                log.warning(
                    "spool %d%% full (%d of %d bytes): the database has been away a while; "
                    "when it is full, ingest stops acknowledging and the broker holds the rest",
                    round(level * 100),
                    before + len(data),
                    self.max_bytes,
                )
            return True

    def _open_segment(self, number: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = self.dir / segment_name(number)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if number not in self._sizes:
            self._sizes[number] = 0
            self._sync_dir()  # the new file's name is durable before anything relies on it

    # -- reading ------------------------------------------------------------------------
    def read(self, after: Position, max_records: int) -> list[tuple[InboundMessage, Position]]:
        """Up to ``max_records`` records after ``after``, each with its end position,
        never past what has been fsync'd."""
        out: list[tuple[InboundMessage, Position]] = []
        with self.lock:
            sizes = dict(self._sizes)
        segment, offset = after
        for number in sorted(n for n in sizes if n >= segment):
            start = offset if number == segment else 0
            limit = sizes[number]
            if start >= limit:
                continue
            with open(self.dir / segment_name(number), "rb") as f:
                f.seek(start)
                data = f.read(limit - start)
            found = decode_records(data)
            for msg, end in found.records:
                out.append((msg, (number, start + end)))
                if len(out) >= max_records:
                    return out
            if found.problem is not None:
                # only the disk can do this (a torn tail is repaired at open): say so loudly,
                # and go on with the next segment rather than stop ingest for good
                log.error(
                    "spool segment %s damaged at byte %d (%s); skipping its remaining %d bytes",
                    segment_name(number),
                    start + found.good_end,
                    found.problem,
                    limit - start - found.good_end,
                )
                if not out or out[-1][1] != (number, limit):
                    out.append((_SKIP, (number, limit)))
                    if len(out) >= max_records:
                        return out
        return out

    def drained(self, mark: Position, count: int, next_since: datetime | None) -> None:
        """Everything up to ``mark`` is stored (and ``mark`` committed with it): free the
        segments it covers."""
        with self.lock:
            self._mark = max(self._mark, mark)
            self.pending_records = max(0, self.pending_records - count)
            self.figures.drained += count
            self.pending_since = next_since if self.pending else None
            if not self.pending:
                self.pending_records = 0
            self._release()

    def _release(self) -> None:
        gone = releasable(list(self._sizes), self._mark, self.end)
        if not gone:
            return
        if self._fd is not None and max(self._sizes) in gone:
            os.close(self._fd)
            self._fd = None
        for n in gone:
            (self.dir / segment_name(n)).unlink(missing_ok=True)
            del self._sizes[n]
        self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


def orphans(parent: Path, own: str, max_bytes: int) -> list[Spool]:
    """The spools in ``parent`` left by workers that are gone (no process holds their
    lock: a replica replaced under a new name), opened for this worker to drain."""
    found: list[Spool] = []
    if not parent.is_dir():
        return found
    for d in sorted(parent.iterdir()):
        if d.name == own or not d.is_dir() or not (d / "spool.id").exists():
            continue
        sp = Spool(d, max_bytes)
        try:
            sp.open()
        except SpoolError:
            continue  # its worker is alive (or another is draining it)
        found.append(sp)
    return found


def discard(spool: Spool) -> None:
    """Remove a drained orphan spool's directory."""
    if spool.pending:
        raise SpoolError(f"spool {spool.dir} still holds undrained messages")
    shutil.rmtree(spool.dir, ignore_errors=True)
    spool.close()


# stands for the damaged, skipped rest of a segment: carries only a position
_SKIP = InboundMessage("", b"", EPOCH, 0, 0, "skip")


def is_skip(msg: InboundMessage) -> bool:
    return msg is _SKIP

"""Fuzz the HJ 212 path with mutated and random inputs; print figures, fail on a violation.

    python -m offsite.bench.fuzz_hj212 [--seconds 60] [--seed 1] [--max-inputs N]

Inputs are valid packets (data, notices, split parts) mutated byte-wise (the CRC goes
stale, so the header/length/CRC checks are hit), mutated field-wise and framed again (the
CRC is right, so the segment parser and ``to_message`` are reached), splices, truncations
and random bytes. They drive ``parse_packet``, ``to_message``, ``build_response``,
``validate.process`` (over MQTT and TCP), the ``Reassembler`` + ``judge_packets``, and the
``Framer`` (streams of packets and noise cut in random chunks). Invariants:

- ``parse_packet``/``to_message`` raise nothing but ``DecodeError``, whose reason is a
  ``DeadReason`` and whose detail is not empty; a reply built for an accepted packet parses;
- ``process`` never raises; an input it does not accept gets a ``DeadLetter`` with a reason,
  a detail and the raw bytes; a decode error over TCP is dead-lettered with that reason;
- the framer loses no byte: Frame + Garbage bytes + skipped whitespace (and NUL) + still
  buffered == bytes fed, every event a slice of the stream in order; every intact packet
  in a stream comes out as its own Frame;
- every split part handed back is released exactly once (complete, expired or drained).

The inputs include those that tripped bugs found by the first runs (superscript digits in
integer fields, a stray '#' or a truncated packet before a good one). Exit status 1 on
any violation.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from offsite.core.readings import DeadReason, InboundMessage, Outcome
from offsite.core.registry import MN_RE, Device
from offsite.ingest.codecs import hj212
from offsite.ingest.errors import DecodeError
from offsite.ingest.framer import MAX_FRAME, Event, Frame, Framer, Garbage
from offsite.ingest.reassembly import Reassembler
from offsite.ingest.validate import Policy, judge_packets, process

NOW = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
POLICY = Policy()
DEVICES = {
    "010000A8900016F000169DC0": Device("010000A8900016F000169DC0", "P1", password="123456"),
    "88888880000001": Device("88888880000001", "P2"),
    "AB12": Device("AB12", "P3", password="pw", crc_compat=True),
}
PASSWORDS = {"010000A8900016F000169DC0": "123456", "88888880000001": "x", "AB12": "pw"}
MNS = [*DEVICES, "UNKNOWN9", "0123456789ABCDEF01234567"]
CODES = [
    "a21026",
    "a21002",
    "a34013",
    "a19001",
    "a01011",
    "a01012",
    "a01013",
    "a01014",
    "a00000",
    "w00000",
    "w01018",
    "w21003",
    "w21001",
    "w21011",
    "w01001",
    "a24088",
    "02",
    "03",
    "01",
    "S01",
    "S02",
    "B02",
    "B01",
    "011",
    "060",
    "i13001",
    "i13008",
]
DATA_CNS = ["2011", "2051", "2061", "2031", "2041"]
NOTICE_CNS = ["9011", "9012", "9013", "9014", "2081", "1062", "3020", "1011"]
SUFFIXES = [
    "Rtd",
    "Avg",
    "Min",
    "Max",
    "Cou",
    "ZsRtd",
    "ZsAvg",
    "ZsMin",
    "ZsMax",
    "Flag",
    "EFlag",
    "SampleTime",
    "Info",
    "RT",
]
DATA_FLAGS = "NFMSDCTB"
WS = b"\r\n\t "
SKIPPABLE = WS + b"\x00"
# tokens spliced into fields: separators, numbers at the edges, unicode look-alikes
TOKENS = [
    "",
    ";",
    ",",
    "=",
    "&",
    "&&",
    "CP=&&",
    "&&CP=&&",
    ";CP=&&&&",
    "QN=",
    "ST=",
    "CN=",
    "MN=",
    "PW=",
    "Flag=",
    "PNUM=",
    "PNO=",
    "DataTime=",
    "-Rtd",
    "-Avg",
    "-Flag",
    "-",
    "0",
    "00",
    "0000",
    "9999",
    "10000",
    "-1",
    "+1",
    "1e308",
    "1e999",
    "-1e999",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1_000",
    " 1 ",
    "0x10",
    "1,5",
    "١٢",
    "٣",
    "１２",
    "二氧化硫",
    "\r\n",
    "##",
    "#",
    "\x00",
    "\t",
    " ",
    "N",
    "X",
    "n",
    "NN",
    "20260301115900",
    "20260230000000",
    "20261301000000",
    "99999999999999",
    "2026030111590",
    "\ufeff",
    "\u202e",
    "a" * 30,
    "9" * 30,
    "7",
    "6",
    "255",
    "256",
    "3",
    "4",
    "5",
    "2",
    "1",
    "²",
    "³",
    "①",
    "¹",
]  # the last four: str.isdigit() but not int()
REASONS = {r.value for r in DeadReason}
FIELD_RE = re.compile(r"([^;,=&]*)=([^;,&]*)")


@dataclass
class Figures:
    inputs: int = 0
    parse: Counter[str] = field(default_factory=Counter)
    message: Counter[str] = field(default_factory=Counter)
    process: Counter[str] = field(default_factory=Counter)
    framer: Counter[str] = field(default_factory=Counter)
    split: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def violation(self, kind: str, example: object) -> None:
        self.violations[kind] += 1
        self.examples.setdefault(kind, repr(example)[:600])


class Fuzzer:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.tokens = TOKENS
        self.fig = Figures()

    # -- valid inputs ------------------------------------------------------------------------
    def _ts(self) -> datetime:
        r = self.rng.random()
        if r < 0.85:
            return NOW - timedelta(seconds=self.rng.randint(0, 7200))
        if r < 0.95:
            return NOW + timedelta(seconds=self.rng.randint(0, 3600))
        return NOW - timedelta(days=self.rng.randint(20, 400))

    def _pw(self, mn: str) -> str:
        return (
            PASSWORDS.get(mn, "1")
            if self.rng.random() < 0.9
            else self.rng.choice(["", "000000", "123456 ", "PW"])
        )

    def _flag(self) -> int:
        return self.rng.choice([4, 4, 5, 5, 0, 1, 8, 9])

    def data_segment(
        self,
        *,
        split: tuple[int, int] | None = None,
        mn: str | None = None,
        cn: str | None = None,
        ts: datetime | None = None,
    ) -> str:
        rng = self.rng
        mn = mn or rng.choice(MNS)
        cn = cn or rng.choice(DATA_CNS)
        ts = ts or self._ts()
        qn = hj212.qn_of(ts)
        flag = self._flag() | (2 if split else 0)
        head = (
            f"QN={qn};ST={rng.choice(['31', '32', '22', '51'])};CN={cn};PW={self._pw(mn)};"
            f"MN={mn};Flag={flag};"
        )
        if split:
            head += f"PNUM={split[0]};PNO={split[1]};"
        items = [f"DataTime={hj212.data_time(ts)}"]
        for code in rng.sample(CODES, rng.randint(1, 5)):
            fields = []
            for suffix in rng.sample(SUFFIXES[:9], rng.randint(1, 3)):
                fields.append(f"{code}-{suffix}={rng.uniform(-10, 1e4):.{rng.randint(0, 4)}f}")
            if rng.random() < 0.8:
                fields.append(f"{code}-Flag={rng.choice(DATA_FLAGS)}")
            if rng.random() < 0.1:
                fields.append(f"{code}-EFlag=E{rng.randint(0, 99):02d}")
            rng.shuffle(fields)
            items.append(",".join(fields))
        return head + "CP=&&" + ";".join(items) + "&&"

    def notice_segment(self) -> str:
        rng = self.rng
        mn = rng.choice(MNS)
        cn = rng.choice(NOTICE_CNS)
        cp = rng.choice(
            [
                "QnRtn=1",
                "ExeRtn=1",
                "RestartTime=20260301115900",
                "RtdInterval=30",
                "DataTime=20260301115900;i13008-Info=1.02",
                "SystemTime=20260301115900",
                "",
            ]
        )
        return (
            f"QN={hj212.qn_of(self._ts())};ST=91;CN={cn};PW={self._pw(mn)};MN={mn};"
            f"Flag={self._flag()};CP=&&{cp}&&"
        )

    def segment(self) -> str:
        r = self.rng.random()
        if r < 0.75:
            return self.data_segment()
        if r < 0.9:
            return self.notice_segment()
        n = self.rng.randint(2, 4)
        return self.data_segment(split=(n, self.rng.randint(1, n)))

    def packet(self) -> bytes:
        seg = self.segment()
        return hj212.frame(seg, crc="modbus_swapped" if self.rng.random() < 0.05 else "standard")

    # -- mutations ---------------------------------------------------------------------------
    def mutate_text(self, text: str) -> str:
        rng = self.rng
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            op = rng.randrange(7)
            fields = list(FIELD_RE.finditer(text))
            if op <= 1 and fields:  # replace a value (op 0) or a name (op 1)
                m = rng.choice(fields)
                a, b = m.span(2) if op == 0 else m.span(1)
                text = text[:a] + rng.choice(self.tokens) + text[b:]
            elif op == 2:
                i = rng.randint(0, len(text))
                text = text[:i] + rng.choice(self.tokens) + text[i:]
            elif op == 3 and text:
                i = rng.randrange(len(text))
                text = text[:i] + text[i + rng.randint(1, 8) :]
            elif op == 4 and text:
                i = rng.randrange(len(text))
                j = min(len(text), i + rng.randint(1, 40))
                text = text[:j] + text[i:j] + text[j:]
            elif op == 5 and text:
                i = rng.randrange(len(text))
                text = text[:i] + rng.choice(";,=&") + text[i + 1 :]
            elif text:
                i = rng.randrange(len(text))
                text = text[:i] + text[i].swapcase() + text[i + 1 :]
        return text

    def mutate_bytes(self, raw: bytes) -> bytes:
        rng = self.rng
        data = bytearray(raw)
        for _ in range(rng.choice([1, 1, 2, 3])):
            op = rng.randrange(8)
            i = rng.randrange(len(data) + 1)
            if op == 0 and i < len(data):
                data[i] ^= 1 << rng.randrange(8)
            elif op == 1 and i < len(data):
                data[i] = rng.randrange(256)
            elif op == 2:
                data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
            elif op == 3:
                del data[i : i + rng.randint(1, 6)]
            elif op == 4:
                del data[i:]
            elif op == 5 and len(data) > 6:
                data[2:6] = b"%04d" % rng.randint(0, 9999)
            elif op == 6:
                data[i:i] = rng.choice([b"##", b"\r\n", b"#", b" ", b"\x00", b"##0000"])
            else:
                j = rng.randrange(len(data) + 1)
                data[i:i] = data[min(i, j) : max(i, j)]
        return bytes(data)

    def random_bytes(self) -> bytes:
        rng = self.rng
        r = rng.random()
        n = rng.randint(0, 200)
        if r < 0.4:
            return bytes(rng.randrange(256) for _ in range(n))
        if r < 0.7:
            return (
                b"##%04d" % rng.randint(0, 9999)
                + bytes(rng.randrange(32, 127) for _ in range(n))
                + b"\r\n"
            )
        body = "".join(rng.choice(";,=&CPQNST0123456789aAMNFlag-Rtd") for _ in range(n))
        return hj212.frame(body)

    def make_input(self) -> bytes:
        rng = self.rng
        r = rng.random()
        if r < 0.12:
            return self.packet()
        if r < 0.35:
            return self.mutate_bytes(self.packet())
        if r < 0.80:
            text = self.mutate_text(self.segment())
            if len(text.encode("utf-8")) > hj212.MAX_SEGMENT:
                text = text[:2000]
            return hj212.frame(text, crc="modbus_swapped" if rng.random() < 0.05 else "standard")
        if r < 0.90:
            return self.random_bytes()
        a, b = self.packet(), self.packet()
        return a[: rng.randint(0, len(a))] + b[rng.randint(0, len(b)) :]

    # -- checks ------------------------------------------------------------------------------
    def _decode_error(self, where: str, exc: DecodeError, example: bytes) -> str:
        if exc.reason not in REASONS or not exc.detail:
            self.fig.violation(
                f"{where}: DecodeError with reason {exc.reason!r} / empty detail", example
            )
        return exc.reason

    def check_codec(self, payload: bytes) -> tuple[hj212.Packet | None, str | None]:
        """The packet (if accepted) and the DecodeError reason (if refused)."""
        fig = self.fig
        try:
            p = hj212.parse_packet(payload)
        except DecodeError as exc:
            reason = self._decode_error("parse_packet", exc, payload)
            fig.parse[reason] += 1
            return None, reason
        except Exception as exc:
            fig.parse["EXCEPTION"] += 1
            fig.violation(f"parse_packet raised {type(exc).__name__}", (str(exc), payload))
            return None, None
        fig.parse["accepted" if p.crc_variant == "standard" else f"accepted ({p.crc_variant})"] += 1
        if not MN_RE.match(p.mn) or not re.fullmatch(r"\d{4}", p.cn):
            fig.violation("accepted packet with an MN/CN outside the format", payload)
        try:
            resp = hj212.build_response(p)
            if resp is not None:
                back = hj212.parse_packet(resp)
                if back.qn != p.qn or back.mn != p.mn or back.st != "91":
                    fig.violation("reply does not echo QN/MN", payload)
        except Exception as exc:
            fig.violation(
                f"build_response/parse of the reply raised {type(exc).__name__}",
                (str(exc), payload),
            )
        if p.is_split:
            fig.message["split part (not decoded alone)"] += 1
            return p, None
        try:
            msg = hj212.to_message([p], POLICY.hj212_tz)
        except DecodeError as exc:
            fig.message[self._decode_error("to_message", exc, payload)] += 1
        except Exception as exc:
            fig.message["EXCEPTION"] += 1
            fig.violation(f"to_message raised {type(exc).__name__}", (str(exc), payload))
        else:
            fig.message["records" if msg.records else "no records (notice)"] += 1
        return p, None

    def check_outcome(self, out: Outcome, payload: bytes, where: str) -> str:
        fig = self.fig
        if out.dead is not None:
            d = out.dead
            if not isinstance(d.reason, DeadReason) or not d.reason.value or not d.detail:
                fig.violation(f"{where}: dead letter without reason/detail", payload)
            if d.payload != payload:
                fig.violation(f"{where}: dead letter does not keep the raw bytes", payload)
        if out.split is not None and (out.readings or out.dead or out.packets):
            fig.violation(f"{where}: split outcome carrying more", payload)
        if out.dead is None and not out.readings and not out.packets and out.split is None:
            fig.violation(f"{where}: input silently dropped (no dead letter)", payload)
        for r in out.readings:
            if r.mn not in DEVICES:
                fig.violation(f"{where}: reading for an unregistered device", payload)
        if out.split is not None:
            return "split"
        if out.readings and out.dead is not None:
            return f"readings + dead:{out.dead.reason.value}"
        if out.readings:
            return "readings"
        if out.dead is not None:
            return f"dead:{out.dead.reason.value}"
        return "archived (no readings)"

    def check_process(self, payload: bytes) -> Outcome | None:
        rng = self.rng
        parsed, parse_reason = self.check_codec(payload)
        transport = rng.choice(["mqtt", "tcp"])
        if transport == "tcp":
            topic = f"tcp/10.0.0.{rng.randint(1, 254)}:{rng.randint(1024, 65535)}"
        else:
            mn = parsed.mn if parsed is not None and rng.random() < 0.85 else rng.choice(MNS)
            topic = rng.choice([f"devices/{mn}/telemetry"] * 9 + ["devices/x/y"])
        msg = InboundMessage(topic, payload, NOW, transport=transport)
        try:
            out = process(msg, DEVICES, POLICY)
        except Exception as exc:
            self.fig.process["EXCEPTION"] += 1
            self.fig.violation(f"process raised {type(exc).__name__}", (str(exc), payload))
            return None
        self.fig.process[self.check_outcome(out, payload, "process")] += 1
        if (
            transport == "tcp"
            and parse_reason is not None
            and payload.lstrip()[:2] == b"##"
            and len(payload) <= POLICY.max_payload_bytes
            and (out.dead is None or out.dead.reason.value != parse_reason)
        ):
            self.fig.violation("process over TCP disagrees with parse_packet's reason", payload)
        if out.readings and parsed is None:
            self.fig.violation("process stored readings of a packet parse_packet refuses", payload)
        return out

    def one_input(self) -> None:
        self.fig.inputs += 1
        self.check_process(self.make_input())

    # -- framer ------------------------------------------------------------------------------
    def noise(self) -> bytes:
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            return b""
        if r < 0.45:
            return bytes(rng.choice(WS) for _ in range(rng.randint(1, 6)))
        if r < 0.55:
            return b"\x00" * rng.randint(1, 4)
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        if rng.random() < 0.2:
            data += rng.choice([b"#", b"##", b"##0101QN=2026"])  # a stray or cut-off header
        return data

    def one_stream(self) -> None:
        rng = self.rng
        fig = self.fig
        parts: list[bytes] = []
        intact: list[bytes] = []
        for _ in range(rng.randint(1, 6)):
            parts.append(self.noise())
            r = rng.random()
            if r < 0.6:
                p = self.packet()
                intact.append(p)
            elif r < 0.8:
                p = self.mutate_bytes(self.packet())
            else:
                p = self.random_bytes()
            parts.append(p)
        parts.append(self.noise())
        stream = b"".join(parts)
        max_frame = rng.choice([MAX_FRAME, MAX_FRAME, 64, 300])
        f = Framer(max_frame)
        events: list[Event] = []
        pos = 0
        try:
            while pos < len(stream):
                n = rng.choice([1, 2, 7, 64, 500, len(stream)])
                events += f.feed(stream[pos : pos + n])
                pos += n
            self._account(stream, events, f.buffered, "framer (before flush)")
            buffered = f.buffered
            events += f.flush()
        except Exception as exc:
            fig.violation(f"framer raised {type(exc).__name__}", (str(exc), stream))
            return
        fig.framer["streams"] += 1
        fig.framer["bytes fed"] += len(stream)
        fig.framer["buffered at flush"] += buffered
        self._account(stream, events, 0, "framer")
        frames = [e.raw for e in events if isinstance(e, Frame)]
        fig.framer["frames"] += len(frames)
        fig.framer["frame bytes"] += sum(map(len, frames))
        garbage = [e for e in events if isinstance(e, Garbage)]
        fig.framer["garbage events"] += len(garbage)
        fig.framer["garbage bytes"] += sum(len(g.raw) for g in garbage)
        if any(not g.reason for g in garbage):
            fig.violation("framer: garbage without a reason", stream)
        if max_frame == MAX_FRAME:
            missing = [p for p in intact if p not in frames]
            if missing:
                fig.violation("framer: an intact packet did not come out as its own frame", stream)
        for raw in frames:
            self.fig.inputs += 1
            self.check_process(raw)

    def _account(self, stream: bytes, events: list[Event], buffered: int, where: str) -> None:
        fig = self.fig
        pos, ws, nul = 0, 0, 0
        end = len(stream) - buffered
        for e in events:
            k = stream.find(e.raw, pos) if e.raw else -1
            gap = stream[pos:k] if k >= 0 else b"?"
            if k < 0 or gap.strip(SKIPPABLE) != b"" or k + len(e.raw) > end:
                fig.violation(f"{where}: an event is not the next slice of the stream", (stream, e))
                return
            nul += gap.count(b"\x00")
            ws += len(gap) - gap.count(b"\x00")
            pos = k + len(e.raw)
        tail = stream[pos:end]
        if tail.strip(SKIPPABLE) != b"":
            fig.violation(f"{where}: bytes lost (neither framed, reported nor buffered)", stream)
            return
        nul += tail.count(b"\x00")
        ws += len(tail) - tail.count(b"\x00")
        if sum(len(e.raw) for e in events) + ws + nul + buffered != len(stream):
            fig.violation(f"{where}: byte count does not add up", stream)
        if buffered == 0:
            fig.framer["whitespace skipped"] += ws
            fig.framer["NUL skipped"] += nul

    # -- split packets -----------------------------------------------------------------------
    def one_split_set(
        self,
        clock: float,
        reasm: Reassembler[InboundMessage],
        handed: list[InboundMessage],
        out: list[InboundMessage],
    ) -> None:
        rng = self.rng
        n = rng.randint(2, 4)
        mn = rng.choice(list(DEVICES))
        cn = rng.choice(DATA_CNS)
        ts = self._ts()
        pnos = list(range(1, n + 1))
        if rng.random() < 0.2:
            pnos.pop(rng.randrange(n))  # one part never comes
        if rng.random() < 0.2:
            pnos.append(rng.randint(1, n))  # a redelivery
        rng.shuffle(pnos)
        for pno in pnos:
            seg = self.data_segment(split=(n, pno), mn=mn, cn=cn, ts=ts)
            if rng.random() < 0.15:
                seg = self.mutate_text(seg)
            raw = hj212.frame(seg) if len(seg.encode()) <= hj212.MAX_SEGMENT else b"##"
            msg = InboundMessage("tcp/10.0.0.1:1", raw, NOW, transport="tcp")
            self.fig.inputs += 1
            self.check_codec(raw)
            try:
                res = process(msg, DEVICES, POLICY)
            except Exception as exc:
                self.fig.violation(f"process raised {type(exc).__name__}", (str(exc), raw))
                continue
            self.fig.split[self.check_outcome(res, raw, "split part")] += 1
            if res.split is None:
                continue
            handed.append(msg)
            for rel in reasm.add(msg, res.split, clock):
                self._released(rel.items, rel.packets, rel.extra, rel.complete, out)

    def _released(
        self,
        items: list[InboundMessage],
        packets: list[hj212.Packet],
        extra: list[InboundMessage],
        complete: bool,
        out: list[InboundMessage],
    ) -> None:
        out += items + extra
        if not complete:
            self.fig.split["sets expired/evicted"] += 1
            return
        self.fig.split["sets complete"] += 1
        payload = b"".join(m.payload for m in items)
        try:
            res = judge_packets(items, packets, POLICY)
        except Exception as exc:
            self.fig.violation(f"judge_packets raised {type(exc).__name__}", (str(exc), payload))
            return
        self.fig.split["reassembled " + self.check_outcome(res, payload, "judge_packets")] += 1


def run(
    *,
    seconds: float | None = 60.0,
    max_inputs: int | None = None,
    seed: int = 1,
    progress: Callable[[Figures], None] | None = None,
) -> Figures:
    fz = Fuzzer(seed)
    reasm: Reassembler[InboundMessage] = Reassembler(timeout_s=50.0, max_sets=20)
    handed: list[InboundMessage] = []
    released: list[InboundMessage] = []
    deadline = None if seconds is None else time.monotonic() + seconds
    i = 0
    while True:
        if max_inputs is not None and fz.fig.inputs >= max_inputs:
            break
        if deadline is not None and i % 16 == 0 and time.monotonic() >= deadline:
            break
        fz.one_input()
        if i % 8 == 0:
            fz.one_stream()
        if i % 16 == 0:
            fz.one_split_set(float(i), reasm, handed, released)
            for rel in reasm.expired(float(i)):
                fz._released(rel.items, rel.packets, rel.extra, rel.complete, released)
        if progress is not None and i % 5000 == 0:
            progress(fz.fig)
        i += 1
    released += reasm.drain()
    if sorted(map(id, released)) != sorted(map(id, handed)):
        fz.fig.violation(
            "reassembler: a split part was lost or released twice", (len(handed), len(released))
        )
    fz.fig.split["parts handed to the reassembler"] = len(handed)
    return fz.fig


def report(fig: Figures, seconds: float, seed: int) -> str:
    def line(title: str, c: Counter[str]) -> str:
        return f"{title}: " + ", ".join(f"{k} {v}" for k, v in c.most_common())

    rejected = sum(v for k, v in fig.parse.items() if not k.startswith("accepted"))
    out = [
        f"HJ 212 fuzz: seed {seed}, {seconds:.1f} s, {fig.inputs} inputs "
        f"({fig.inputs / max(seconds, 1e-9):.0f}/s), plus {fig.framer['streams']} framer "
        f"streams and {fig.split['parts handed to the reassembler']} split parts held",
        f"parse_packet: {sum(fig.parse.values()) - rejected} accepted, {rejected} rejected",
        "  " + line("by outcome", fig.parse),
        "  " + line("to_message", fig.message),
        "  " + line("process", fig.process),
        "  " + line("split sets", fig.split),
        "  " + line("framer", fig.framer),
    ]
    if fig.violations:
        out.append(f"VIOLATIONS: {sum(fig.violations.values())}")
        for kind, n in fig.violations.most_common():
            out.append(f"  {n} x {kind}\n      e.g. {fig.examples[kind]}")
    else:
        out.append("violations: none")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--max-inputs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.monotonic()
    fig = run(seconds=args.seconds, max_inputs=args.max_inputs, seed=args.seed)
    print(report(fig, time.monotonic() - t0, args.seed))
    sys.exit(1 if fig.violations else 0)


if __name__ == "__main__":
    main()

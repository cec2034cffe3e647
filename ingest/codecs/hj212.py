"""HJ 212 (2017, and 2005-era packets where cheap): parse and build packets. Pure.

A packet is ``##`` + 4-digit decimal length of the data segment + the data segment +
4 hex digits of CRC16 + ``\\r\\n``. The data segment is
``QN=…;ST=..;CN=....;PW=…;MN=…;Flag=..;[PNUM=..;PNO=..;]CP=&&…&&``; inside CP, ``;``
separates items, ``,`` the fields of an item, ``=`` binds a field. Names are
case-sensitive. Times carry no zone: the standard means local (Beijing) time, so the
caller passes the zone.

Each way a packet can be wrong raises ``DecodeError`` with its own reason code, so the
dead-letter store says exactly what was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo

from offsite.core.readings import DataKind
from offsite.ingest.codecs import ParsedMessage, ParsedRecord, ParsedValue
from offsite.ingest.errors import DecodeError

BEIJING = timezone(timedelta(hours=8), "CST")
MAX_SEGMENT = 9999  # the header's 4 digits; the standard's own cap is 1024
STANDARD_SEGMENT = 1024

# reason codes (ingest.models.DeadReason holds them too)
BAD_HEADER = "hj212_bad_header"
LENGTH_MISMATCH = "hj212_length_mismatch"
CRC_MISMATCH = "hj212_crc_mismatch"
MISSING_FIELD = "hj212_missing_field"
MALFORMED_FIELD = "hj212_malformed_field"
UNKNOWN_CN = "hj212_unknown_cn"
BAD_TIMESTAMP = "bad_timestamp"

DATA_CNS: dict[str, DataKind] = {
    "2011": DataKind.RTD,
    "2051": DataKind.MINUTE,
    "2061": DataKind.HOUR,
    "2031": DataKind.DAY,
    "2041": DataKind.DAY,
}
# CNs a device may send up that carry no readings but are understood (kept as packets)
NOTICE_CNS = frozenset(
    {
        "1000",
        "1001",
        "1011",
        "1012",
        "1013",
        "1014",
        "1015",
        "1061",
        "1062",
        "1063",
        "1064",
        "1072",
        "2012",
        "2013",
        "2021",
        "2022",
        "2081",
        "3011",
        "3012",
        "3013",
        "3014",
        "3015",
        "3016",
        "3017",
        "3018",
        "3019",
        "3020",
        "3021",
        "9011",
        "9012",
        "9013",
        "9014",
        "9015",
    }
)
# value suffixes → the stat stored in the readings' kind (primary value: bare kind)
_STATS = {
    "Rtd": "",
    "Avg": "",
    "Min": "min",
    "Max": "max",
    "Cou": "cou",
    "ZsRtd": "zs",
    "ZsAvg": "zs",
    "ZsMin": "zsmin",
    "ZsMax": "zsmax",
    "RT": "rt",
}
_QN_RE = re.compile(r"[0-9]{17}\Z")
_DT_RE = re.compile(r"[0-9]{14}\Z")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_NUMBER_RE = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")
_HEADER_RE = re.compile(rb"##([0-9]{4})")


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet as sent. ``cp`` keeps the items in order, each a list of (name, value)."""

    st: str
    cn: str
    mn: str
    pw: str | None = None
    qn: str | None = None
    flag: int | None = None
    pnum: int | None = None
    pno: int | None = None
    cp: tuple[tuple[tuple[str, str], ...], ...] = ()
    # or a CRC-16/MODBUS, in either byte order field loggers send: "modbus_swapped" (low
    # byte first, e.g. "1086") or "modbus" (high byte first, "8610"); see CRC_VARIANTS
    crc_variant: str = "standard"
    raw: bytes = field(default=b"", compare=False, repr=False)

    @property
    def wants_reply(self) -> bool:
        return self.flag is not None and bool(self.flag & 1)

    @property
    def is_split(self) -> bool:
        return self.flag is not None and bool(self.flag & 2)

    @property
    def version(self) -> int:
        """Flag's V5..V0 bits: 1 = HJ 212-2017, 0 = 2005, 2 = 2025."""
        return 0 if self.flag is None else self.flag >> 2


def _shift8(r: int) -> int:
    for _ in range(8):
        r = (r >> 1) ^ 0xA001 if r & 1 else r >> 1
    return r


# Eight shift/XOR steps of the reflected polynomial 0xA001 on a register r equal
# (r >> 8) ^ _TABLE[r & 0xFF]; one lookup per byte instead of eight steps.
_TABLE = tuple(_shift8(i) for i in range(256))


def crc16_bitwise(data: bytes) -> int:
    """Annex A exactly as written (the reference the table version is tested against)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ byte
        for _ in range(8):
            lsb = crc & 1
            crc >>= 1
            if lsb:
                crc ^= 0xA001
    return crc


def crc16(data: bytes) -> int:
    """HJ 212-2017 Annex A (not CRC-16/MODBUS): test vector b"123456789" → 0x2F80."""
    crc = 0xFFFF
    table = _TABLE
    for byte in data:
        r = (crc >> 8) ^ byte
        crc = (r >> 8) ^ table[r & 0xFF]
    return crc


def crc16_modbus(data: bytes) -> int:
    crc = 0xFFFF
    table = _TABLE
    for byte in data:
        r = crc ^ byte
        crc = (r >> 8) ^ table[r & 0xFF]
    return crc


CRC_VARIANTS = ("standard", "modbus_swapped", "modbus")


def _swap(v: int) -> int:
    return ((v & 0xFF) << 8) | (v >> 8)


def parse_packet(raw: bytes) -> Packet:
    """Parse one whole packet (trailing ``\\r\\n`` optional). Raises DecodeError."""
    data = raw.strip(b"\r\n\t ")
    m = _HEADER_RE.match(data)
    if not m:
        raise DecodeError(BAD_HEADER, "packet does not start with ## and a 4-digit length")
    length = int(m.group(1))
    body = data[6:]
    if len(body) != length + 4:
        raise DecodeError(
            LENGTH_MISMATCH,
            f"header says {length} bytes of data segment, packet carries {len(body) - 4}",
        )
    segment, crc_text = body[:length], body[length:]
    try:
        crc_sent = int(crc_text.decode("ascii"), 16)
        if not re.fullmatch(r"[0-9A-Fa-f]{4}", crc_text.decode("ascii")):
            raise ValueError
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(BAD_HEADER, f"CRC {crc_text!r} is not 4 hex digits") from exc
    crc = crc16(segment)
    variant = "standard"
    if crc_sent != crc:
        modbus = crc16_modbus(segment)
        if crc_sent == _swap(modbus):
            variant = "modbus_swapped"  # low byte first, as MODBUS puts it on the wire
        elif crc_sent == modbus:
            variant = "modbus"  # the register's value, high byte first
        else:
            raise DecodeError(
                CRC_MISMATCH,
                f"CRC {crc_text.decode()} does not match the data segment (expected {crc:04X})",
            )
    try:
        text = segment.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(MALFORMED_FIELD, f"data segment is not UTF-8 (byte {exc.start})") from exc
    bad = _CONTROL_RE.search(text)
    if bad:
        raise DecodeError(
            MALFORMED_FIELD,
            f"control character {bad.group()!r} at {bad.start()} in the data segment",
        )
    return _parse_segment(text, raw, variant)


def _parse_segment(text: str, raw: bytes, variant: str) -> Packet:
    idx = text.find("CP=&&")
    if idx < 0:
        raise DecodeError(MISSING_FIELD, "no CP=&&…&& in the data segment")
    head, cp_text = text[:idx], text[idx + 5 :]
    if not cp_text.endswith("&&"):
        raise DecodeError(MALFORMED_FIELD, "CP does not end with &&")
    cp_text = cp_text[:-2]
    fields: dict[str, str] = {}
    for part in head.split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise DecodeError(MALFORMED_FIELD, f"header field {part!r} is not name=value")
        if key in fields:
            raise DecodeError(MALFORMED_FIELD, f"header field {key} appears twice")
        fields[key] = value
    for required in ("ST", "CN", "MN"):
        if not fields.get(required):
            raise DecodeError(MISSING_FIELD, f"missing header field {required}")
    cn, st, mn = fields["CN"], fields["ST"], fields["MN"]
    if not re.fullmatch(r"[0-9]{4}", cn):
        raise DecodeError(MALFORMED_FIELD, f"CN {cn!r} is not 4 digits")
    if not re.fullmatch(r"[0-9]{2}", st):
        raise DecodeError(MALFORMED_FIELD, f"ST {st!r} is not 2 digits")
    if not re.fullmatch(r"[0-9A-Za-z]{1,24}", mn):
        raise DecodeError(MALFORMED_FIELD, f"MN {mn!r} is not 1–24 letters/digits")
    qn = fields.get("QN")
    if qn is not None and not _QN_RE.match(qn):
        raise DecodeError(MALFORMED_FIELD, f"QN {qn!r} is not YYYYMMDDhhmmsszzz")
    flag = _int_field(fields, "Flag", 0, 255)
    pnum = _int_field(fields, "PNUM", 1, 9999)
    pno = _int_field(fields, "PNO", 1, 9999)
    if flag is not None and flag & 2:
        if pnum is None or pno is None:
            raise DecodeError(MISSING_FIELD, "Flag marks a split packet but PNUM/PNO missing")
        if pno > pnum:
            raise DecodeError(MALFORMED_FIELD, f"PNO {pno} > PNUM {pnum}")
    items = []
    for item in cp_text.split(";") if cp_text else []:
        if not item:
            continue
        pairs = []
        for fld in item.split(","):
            key, sep, value = fld.partition("=")
            if not sep or not key:
                raise DecodeError(MALFORMED_FIELD, f"CP field {fld!r} is not name=value")
            pairs.append((key, value))
        items.append(tuple(pairs))
    return Packet(
        st=st,
        cn=cn,
        mn=mn,
        pw=fields.get("PW"),
        qn=qn,
        flag=flag,
        pnum=pnum,
        pno=pno,
        cp=tuple(items),
        crc_variant=variant,
        raw=raw,
    )


def _int_field(fields: dict[str, str], name: str, lo: int, hi: int) -> int | None:
    v = fields.get(name)
    if v is None:
        return None
    if not re.fullmatch(r"[0-9]{1,4}", v) or not lo <= int(v) <= hi:
        raise DecodeError(MALFORMED_FIELD, f"{name} {v!r} is not an integer in [{lo}, {hi}]")
    return int(v)


def parse_time(text: str, tz: tzinfo, what: str = "DataTime") -> datetime:
    """``YYYYMMDDhhmmss`` (or QN's ``…zzz``) in local time ``tz``."""
    digits = text[:14]
    if not (_DT_RE.match(digits) and (len(text) == 14 or _QN_RE.match(text))):
        raise DecodeError(BAD_TIMESTAMP, f"{what} {text!r} is not YYYYMMDDhhmmss")
    try:
        ts = datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=tz)
    except ValueError as exc:
        raise DecodeError(BAD_TIMESTAMP, f"{what} {text!r} is not a real time") from exc
    if len(text) == 17:
        ts = ts.replace(microsecond=int(text[14:]) * 1000)
    return ts


def to_message(packets: Sequence[Packet], tz: tzinfo = BEIJING) -> ParsedMessage:
    """Readings of a data packet (or of the sub-packets of one split packet, in order).

    Non-data CNs that the standard defines give no records; unknown CNs are refused.
    Each data item is ``<code>-<suffix>=value`` with ``<code>-Flag`` beside it; the
    primary value (Rtd or Avg) is stored under the CN's kind, the other statistics
    under ``<kind>.<stat>`` (``hour.max``, ``rtd.zs``…) so nothing the packet said is
    lost and the rules see only primary series.
    """
    first = packets[0]
    cn = first.cn
    if cn not in DATA_CNS:
        if cn in NOTICE_CNS:
            return ParsedMessage((), first.mn)
        raise DecodeError(UNKNOWN_CN, f"CN {cn} is not a command this platform accepts")
    kind = DATA_CNS[cn]
    data_time: str | None = None
    values: list[tuple[str, str, str]] = []  # code, suffix, value
    flags: dict[str, str] = {}
    for item in (i for p in packets for i in p.cp):
        for key, value in item:
            if key == "DataTime":
                if data_time is not None and value != data_time:
                    raise DecodeError(MALFORMED_FIELD, "several DataTime values in one packet")
                data_time = value
                continue
            code, dash, suffix = key.rpartition("-")
            if not dash or not code:
                continue  # e.g. vendor fields without a code; kept in the raw packet
            if suffix == "Flag":
                flags[code] = value
            elif suffix in _STATS:
                values.append((code, suffix, value))
            # EFlag, SampleTime, Info…: kept in the raw packet
    if data_time is None:
        raise DecodeError(MISSING_FIELD, f"CN {cn} data packet without DataTime")
    ts = parse_time(data_time, tz)
    parsed = []
    for code, suffix, text in values:
        # validation refuses a non-number with the field named; only ASCII decimal
        # notation counts (float() would also take "١٢" or "1_000" or "nan")
        number: object = float(text) if _NUMBER_RE.fullmatch(text) else text
        parsed.append(ParsedValue(code, number, flags.get(code, "N"), kind, _STATS[suffix]))
    if not parsed:
        raise DecodeError(MISSING_FIELD, f"CN {cn} data packet carries no values")
    return ParsedMessage((ParsedRecord(ts, tuple(parsed)),), first.mn)


# -- building ---------------------------------------------------------------------------
def frame(segment: str, *, crc: str = "standard") -> bytes:
    """Wrap a data segment: ``##`` + length + segment + CRC + ``\\r\\n``."""
    data = segment.encode("utf-8")
    if len(data) > MAX_SEGMENT:
        raise ValueError(f"data segment of {len(data)} bytes exceeds {MAX_SEGMENT}")
    if crc not in CRC_VARIANTS:
        raise ValueError(f"unknown CRC variant {crc!r}; one of {', '.join(CRC_VARIANTS)}")
    if crc == "standard":
        value = crc16(data)
    elif crc == "modbus":
        value = crc16_modbus(data)
    else:
        value = _swap(crc16_modbus(data))
    return b"##%04d" % len(data) + data + b"%04X\r\n" % value


def qn_of(ts: datetime, tz: tzinfo = BEIJING) -> str:
    local = ts.astimezone(tz)
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"


def data_time(ts: datetime, tz: tzinfo = BEIJING) -> str:
    return ts.astimezone(tz).strftime("%Y%m%d%H%M%S")


def build_data_packet(
    *,
    mn: str,
    pw: str,
    cn: str,
    ts: datetime,
    st: str = "32",
    values: Iterable[tuple[str, float, str]] = (),
    flag: int = 4,
    qn_time: datetime | None = None,
    tz: tzinfo = BEIJING,
    crc: str = "standard",
    precision: int = 3,
) -> bytes:
    """A data upload: ``values`` are (code, value, data flag); the suffix follows the CN."""
    suffix = "Rtd" if cn == "2011" else "Avg"
    items = [f"DataTime={data_time(ts, tz)}"]
    items += [
        f"{code}-{suffix}={value:.{precision}f},{code}-Flag={flg}" for code, value, flg in values
    ]
    segment = (
        f"QN={qn_of(qn_time or ts, tz)};ST={st};CN={cn};PW={pw};MN={mn};Flag={flag};"
        f"CP=&&{';'.join(items)}&&"
    )
    return frame(segment, crc=crc)


def build_response(request: Packet) -> bytes | None:
    """The platform's answer to a device packet, or None if none is due.

    A reply is due when the packet's Flag asks for one (A bit): data uploads get a data
    response (CN 9014), notices such as a logger restart (2081) a notice response (9013).
    """
    if not request.wants_reply:
        return None
    cn = "9013" if request.cn in ("2081",) else "9014"
    flag = (request.version << 2) if request.flag is not None else 4
    qn = f"QN={request.qn};" if request.qn else ""
    segment = f"{qn}ST=91;CN={cn};PW={request.pw or ''};MN={request.mn};Flag={flag};CP=&&&&"
    return frame(segment)

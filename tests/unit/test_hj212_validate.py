"""offsite.ingest.validate.process for HJ 212 packets, over MQTT and over the TCP gateway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from offsite.core.readings import DataKind, DeadReason, InboundMessage, Outcome, RawPacket, Reading
from offsite.core.registry import Device
from offsite.ingest.codecs.hj212 import BEIJING, build_data_packet, frame, parse_packet
from offsite.ingest.reassembly import Reassembler
from offsite.ingest.validate import Policy, judge_packets, process

NOW = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # 12:00 in Beijing
MN = "010000A8900016F000169DC0"  # password registered
MN_OPEN = "88888880000001"  # no password registered
MN_COMPAT = "AB12"  # password and crc_compat
KNOWN = {
    MN: Device(MN, "P1", password="123456"),
    MN_OPEN: Device(MN_OPEN, "P2"),
    MN_COMPAT: Device(MN_COMPAT, "P3", password="pw", crc_compat=True),
}
PW = {MN: "123456", MN_OPEN: "whatever", MN_COMPAT: "pw", "UNKNOWN1": "1"}
POLICY = Policy()
TCP = "tcp/1.2.3.4:5"
TRANSPORTS = ["mqtt", "tcp"]


def inbound(
    payload: bytes, transport: str, mn: str = MN, *, topic: str | None = None
) -> InboundMessage:
    if topic is None:
        topic = f"devices/{mn}/telemetry" if transport == "mqtt" else TCP
    return InboundMessage(topic, payload, NOW, mid=3, transport=transport)


def data_seg(
    cp: str,
    *,
    mn: str = MN,
    pw: str | None = None,
    cn: str = "2011",
    flag: str = "5",
    extra: str = "",
    qn: str = "20260301115959001",
) -> str:
    pw = PW.get(mn, "1") if pw is None else pw
    return f"QN={qn};ST=31;CN={cn};PW={pw};MN={mn};Flag={flag};{extra}CP=&&{cp}&&"


RTD_CP = (
    "DataTime=20260301115900;a21026-Rtd=25.3,a21026-ZsRtd=30.1,a21026-Flag=N;"
    "a21002-Rtd=41.0,a21002-Flag=M"
)
HOUR_CP = (
    "DataTime=20260301100000;a21026-Avg=25.3,a21026-Min=20.0,a21026-Max=30.5,"
    "a21026-ZsAvg=31.0,a21026-Flag=N;a00000-Avg=1200.5,a00000-Cou=4321000,"
    "a00000-Flag=N"
)
TS_RTD = datetime(2026, 3, 1, 11, 59, tzinfo=BEIJING)
TS_HOUR = datetime(2026, 3, 1, 10, 0, tzinfo=BEIJING)


def run(payload: bytes, transport: str, mn: str = MN, **kw) -> Outcome:
    return process(inbound(payload, transport, mn, **kw), KNOWN, POLICY)


def dead_only(out: Outcome, reason: DeadReason, mn: str | None = MN) -> None:
    assert out.readings == [] and out.split is None and out.packets == []
    assert out.dead is not None
    assert out.dead.reason == reason
    assert out.dead.detail
    assert out.dead.mn == mn
    assert out.dead.received_at == NOW


# -- happy path ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rtd_packet_becomes_readings_and_an_archived_packet(transport):
    raw = frame(data_seg(RTD_CP))
    out = run(raw, transport)
    assert out.dead is None and out.split is None
    assert out.readings == [
        Reading(TS_RTD, MN, "a21026", 25.3, "N", DataKind.RTD, ""),
        Reading(TS_RTD, MN, "a21026", 30.1, "N", DataKind.RTD, "zs"),
        Reading(TS_RTD, MN, "a21002", 41.0, "M", DataKind.RTD, ""),
    ]
    source = f"devices/{MN}/telemetry" if transport == "mqtt" else TCP
    assert out.packets == [
        RawPacket(
            NOW,
            transport,
            source,
            MN,
            "20260301115959001",
            "31",
            "2011",
            5,
            None,
            None,
            raw.decode().strip(),
        )
    ]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_hour_packet_keeps_stats_beside_the_primary_value(transport):
    out = run(frame(data_seg(HOUR_CP, cn="2061")), transport)
    assert out.dead is None
    assert [(r.pollutant, r.value, r.kind, r.stat, r.kind_text) for r in out.readings] == [
        ("a21026", 25.3, DataKind.HOUR, "", "hour"),
        ("a21026", 20.0, DataKind.HOUR, "min", "hour.min"),
        ("a21026", 30.5, DataKind.HOUR, "max", "hour.max"),
        ("a21026", 31.0, DataKind.HOUR, "zs", "hour.zs"),
        ("a00000", 1200.5, DataKind.HOUR, "", "hour"),
        ("a00000", 4321000.0, DataKind.HOUR, "cou", "hour.cou"),
    ]
    assert {r.ts for r in out.readings} == {TS_HOUR}
    assert out.packets[0].cn == "2061"


@pytest.mark.parametrize(("cn", "kind"), [("2051", DataKind.MINUTE), ("2031", DataKind.DAY)])
def test_built_minute_and_day_packets(cn, kind):
    ts = NOW - timedelta(hours=1)
    raw = build_data_packet(mn=MN, pw="123456", cn=cn, ts=ts, values=[("a21026", 1.5, "N")])
    out = run(raw, "tcp")
    assert out.dead is None
    assert out.readings == [Reading(ts.replace(microsecond=0), MN, "a21026", 1.5, "N", kind)]


def test_no_password_registered_accepts_any_pw():
    out = run(frame(data_seg(RTD_CP, mn=MN_OPEN, pw="anything")), "tcp", MN_OPEN)
    assert out.dead is None and len(out.readings) == 3


def test_no_password_registered_accepts_a_packet_without_pw():
    seg = data_seg(RTD_CP, mn=MN_OPEN).replace("PW=whatever;", "")
    assert "PW=" not in seg
    out = run(frame(seg), "mqtt", MN_OPEN)
    assert out.dead is None and len(out.readings) == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("cn", ["9011", "2081", "1062"])
def test_notice_packets_are_archived_without_readings(transport, cn):
    out = run(frame(data_seg("QnRtn=1", cn=cn)), transport)
    assert out.dead is None and out.readings == [] and out.split is None
    assert [p.cn for p in out.packets] == [cn]


def test_leading_whitespace_before_the_header_is_hj212():
    out = run(b"\r\n " + frame(data_seg(RTD_CP)), "tcp")
    assert out.dead is None and len(out.readings) == 3


# -- dead letters ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unknown_device(transport):
    out = run(frame(data_seg(RTD_CP, mn="UNKNOWN1")), transport, "UNKNOWN1")
    dead_only(out, DeadReason.UNKNOWN_DEVICE, "UNKNOWN1")
    assert "UNKNOWN1" in out.dead.detail


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("pw", ["654321", "", "123456 ", "1234567"])
def test_wrong_password(transport, pw):
    out = run(frame(data_seg(RTD_CP, pw=pw)), transport)
    dead_only(out, DeadReason.HJ212_WRONG_PASSWORD)
    assert pw not in out.dead.detail or pw == ""  # the password sent is not echoed


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_missing_password_when_one_is_registered(transport):
    out = run(frame(data_seg(RTD_CP).replace("PW=123456;", "")), transport)
    dead_only(out, DeadReason.HJ212_WRONG_PASSWORD)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_modbus_swapped_crc_refused_by_default(transport):
    raw = frame(data_seg(RTD_CP), crc="modbus_swapped")
    assert parse_packet(raw).crc_variant == "modbus_swapped"
    out = run(raw, transport)
    dead_only(out, DeadReason.HJ212_CRC_MISMATCH)
    assert "MODBUS" in out.dead.detail and "crc_compat" in out.dead.detail
    assert out.dead.payload == raw


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_modbus_swapped_crc_accepted_with_crc_compat(transport):
    raw = frame(data_seg(RTD_CP, mn=MN_COMPAT), crc="modbus_swapped")
    out = run(raw, transport, MN_COMPAT)
    assert out.dead is None and len(out.readings) == 3
    assert out.packets[0].mn == MN_COMPAT


def test_crc_compat_still_refuses_a_wrong_crc():
    raw = frame(data_seg(RTD_CP, mn=MN_COMPAT))
    bad = raw[:-6] + (b"0000" if raw[-6:-2] != b"0000" else b"0001") + b"\r\n"
    dead_only(run(bad, "tcp", MN_COMPAT), DeadReason.HJ212_CRC_MISMATCH, None)


def _bad(kind: str) -> bytes:
    good = frame(data_seg(RTD_CP))
    if kind == "crc":
        return good[:-6] + (b"0000" if good[-6:-2] != b"0000" else b"0001") + b"\r\n"
    if kind == "length":
        return b"##%04d" % (int(good[2:6]) + 1) + good[6:]
    if kind == "header":
        return b"##x" + good[3:]
    if kind == "missing":
        return frame(data_seg(RTD_CP).replace("CN=2011;", ""))
    if kind == "malformed":
        return frame(data_seg(RTD_CP, flag="x"))
    raise AssertionError(kind)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("crc", DeadReason.HJ212_CRC_MISMATCH),
        ("length", DeadReason.HJ212_LENGTH_MISMATCH),
        ("header", DeadReason.HJ212_BAD_HEADER),
        ("missing", DeadReason.HJ212_MISSING_FIELD),
        ("malformed", DeadReason.HJ212_MALFORMED_FIELD),
    ],
)
def test_decode_errors_are_dead_letters_with_the_raw_bytes(transport, kind, reason):
    raw = _bad(kind)
    out = run(raw, transport)
    # over MQTT the topic names the device; over TCP nothing trustworthy does
    dead_only(out, reason, MN if transport == "mqtt" else None)
    assert out.dead.payload == raw
    assert out.dead.topic == (f"devices/{MN}/telemetry" if transport == "mqtt" else TCP)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("seg", "reason"),
    [
        (data_seg(RTD_CP, cn="2099"), DeadReason.HJ212_UNKNOWN_CN),
        (data_seg("a21026-Rtd=1"), DeadReason.HJ212_MISSING_FIELD),
        (data_seg("DataTime=20261399000000;a21026-Rtd=1"), DeadReason.BAD_TIMESTAMP),
        (data_seg("DataTime=20260301115900"), DeadReason.HJ212_MISSING_FIELD),
    ],
)
def test_content_errors_are_dead_letters_naming_the_device(transport, seg, reason):
    raw = frame(seg)
    out = run(raw, transport)
    dead_only(out, reason)
    assert out.dead.payload == raw


def test_mqtt_topic_must_name_the_packet_mn():
    raw = frame(data_seg(RTD_CP))
    out = run(raw, "mqtt", topic=f"devices/{MN_OPEN}/telemetry")
    dead_only(out, DeadReason.DEVICE_MISMATCH, MN_OPEN)
    assert MN in out.dead.detail


def test_mqtt_bad_topic():
    dead_only(
        run(frame(data_seg(RTD_CP)), "mqtt", topic="devices/x/y/z"), DeadReason.BAD_TOPIC, None
    )


def test_tcp_topic_is_not_a_device_topic_and_needs_none():
    out = run(frame(data_seg(RTD_CP)), "tcp", topic="tcp/[::1]:40000")
    assert out.dead is None and out.packets[0].source == "tcp/[::1]:40000"


@pytest.mark.parametrize(
    "payload", [b"hello", b'{"ts": 1, "values": {}}', b"\x00\x01", b"#0101", b""]
)
def test_non_hj212_bytes_on_the_gateway_are_garbage(payload):
    dead_only(run(payload, "tcp"), DeadReason.HJ212_GARBAGE, None)


def test_oversized_hj212_packet():
    raw = frame(data_seg(RTD_CP))
    out = process(inbound(raw, "tcp"), KNOWN, Policy(max_payload_bytes=len(raw) - 1))
    dead_only(out, DeadReason.OVERSIZED, None)


def test_bad_values_are_refused_one_by_one_and_the_rest_kept():
    cp = (
        "DataTime=20260301115900;a21026-Rtd=1.5,a21026-Flag=N;a21002-Rtd=abc;"
        "a34013-Rtd=2,a34013-Flag=X;BAD-Rtd=3;a19001-Rtd=nan"
    )
    out = run(frame(data_seg(cp)), "tcp")
    assert [(r.pollutant, r.value) for r in out.readings] == [("a21026", 1.5)]
    assert out.dead is not None and out.dead.reason == DeadReason.BAD_VALUE
    assert "4 of 5 values refused" in out.dead.detail
    for word in ("abc", "'X'", "BAD", "nan"):
        assert word in out.dead.detail
    assert len(out.packets) == 1  # the packet is archived all the same


@pytest.mark.parametrize(
    ("delta", "reason"),
    [
        (timedelta(minutes=6), DeadReason.FUTURE_TIMESTAMP),
        (timedelta(days=-31), DeadReason.STALE_TIMESTAMP),
    ],
)
def test_timestamps_outside_the_window(delta, reason):
    raw = build_data_packet(
        mn=MN, pw="123456", cn="2011", ts=NOW + delta, values=[("a21026", 1.0, "N")]
    )
    out = run(raw, "tcp")
    assert out.readings == [] and out.dead is not None and out.dead.reason == reason


def test_data_time_is_read_in_the_policy_zone():
    out = process(
        inbound(frame(data_seg(RTD_CP)), "tcp"),
        KNOWN,
        Policy(hj212_tz=UTC, max_future=timedelta(days=1)),
    )
    assert out.readings[0].ts == datetime(2026, 3, 1, 11, 59, tzinfo=UTC)


# -- split packets ---------------------------------------------------------------------------


def split_part(pno: int, pnum: int = 2, cp: str | None = None) -> bytes:
    cp = cp or f"DataTime=20260301100000;a2100{pno}-Avg={pno}.5,a2100{pno}-Flag=N"
    return frame(data_seg(cp, cn="2061", flag="7", extra=f"PNUM={pnum};PNO={pno};"))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_split_part_is_handed_back_to_hold(transport):
    raw = split_part(1)
    out = run(raw, transport)
    assert out.readings == [] and out.dead is None and out.packets == []
    assert out.split == parse_packet(raw)
    assert out.split.raw == raw


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_split_part_is_still_checked_first(transport):
    out = run(
        frame(data_seg("DataTime=20260301100000", pw="no", flag="7", extra="PNUM=2;PNO=1;")),
        transport,
    )
    dead_only(out, DeadReason.HJ212_WRONG_PASSWORD)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reassembled_parts_are_judged_together(transport):
    r: Reassembler[InboundMessage] = Reassembler()
    released = []
    for pno in (2, 1):
        m = inbound(split_part(pno), transport)
        out = process(m, KNOWN, POLICY)
        released += r.add(m, out.split, 0.0)
    (rel,) = released
    out = judge_packets(rel.items, rel.packets, POLICY)
    assert out.dead is None
    assert [(x.pollutant, x.value, x.kind, x.ts) for x in out.readings] == [
        ("a21001", 1.5, DataKind.HOUR, TS_HOUR),
        ("a21002", 2.5, DataKind.HOUR, TS_HOUR),
    ]
    assert [(p.pnum, p.pno, p.transport, p.flag) for p in out.packets] == [
        (2, 1, transport, 7),
        (2, 2, transport, 7),
    ]
    assert out.packets[0].raw == split_part(1).decode().strip()


def test_reassembled_set_that_fails_to_decode_keeps_every_part():
    parts = [
        split_part(1, cp="DataTime=20260301100000;a21001-Avg=1"),
        split_part(2, cp="DataTime=20260301110000;a21002-Avg=2"),
    ]  # DataTimes differ
    msgs = [inbound(p, "tcp") for p in parts]
    out = judge_packets(msgs, [parse_packet(p) for p in parts], POLICY)
    dead_only(out, DeadReason.HJ212_MALFORMED_FIELD)
    assert out.dead.payload == parts[0] + parts[1]


# -- known bug -------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_process_never_raises_on_superscript_flag(transport):
    out = run(frame(data_seg(RTD_CP, flag="²")), transport)
    dead_only(out, DeadReason.HJ212_MALFORMED_FIELD, MN if transport == "mqtt" else None)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_revoked_device_packets_are_dead_lettered_as_revoked(transport):
    """Checked before the password: a revoked logger is refused whatever PW it sends."""
    for pw in ("123456", "wrong"):
        out = process(
            inbound(frame(data_seg(RTD_CP, pw=pw)), transport),
            KNOWN,
            POLICY,
            {MN: "replaced by a new logger"},
        )
        dead_only(out, DeadReason.DEVICE_REVOKED)
        assert "replaced by a new logger" in out.dead.detail


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_password_can_be_required_for_every_device(transport):
    strict = Policy(hj212_require_password=True)
    out = process(inbound(frame(data_seg(RTD_CP, mn=MN_OPEN)), transport, MN_OPEN), KNOWN, strict)
    dead_only(out, DeadReason.HJ212_WRONG_PASSWORD, MN_OPEN)
    assert "no registered password" in out.dead.detail
    # a device with a password is judged as before: right PW accepted, wrong refused
    assert process(inbound(frame(data_seg(RTD_CP)), transport), KNOWN, strict).readings
    wrong = process(inbound(frame(data_seg(RTD_CP, pw="nope")), transport), KNOWN, strict)
    dead_only(wrong, DeadReason.HJ212_WRONG_PASSWORD)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_crc_compat_accepts_both_modbus_byte_orders_and_names_which(transport):
    seg = data_seg(RTD_CP, mn=MN_COMPAT)
    low_first, high_first = frame(seg, crc="modbus_swapped"), frame(seg, crc="modbus")
    # the same segment, the same CRC-16/MODBUS, its two bytes in either order ("1086"/"8610")
    assert low_first[-6:-4] == high_first[-4:-2] and low_first[-4:-2] == high_first[-6:-4]
    for raw, variant in ((low_first, "modbus_swapped"), (high_first, "modbus")):
        out = run(raw, transport, MN_COMPAT)
        assert out.dead is None and len(out.readings) == 3
        assert out.packets[0].crc_variant == variant
    # without the switch, either is refused, and the reason names the order it saw
    refused = run(frame(data_seg(RTD_CP), crc="modbus"), transport)
    dead_only(refused, DeadReason.HJ212_CRC_MISMATCH)
    assert "modbus: high byte first" in refused.dead.detail

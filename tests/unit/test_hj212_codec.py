"""offsite.ingest.codecs.hj212: the standard's samples, hand-written 2017 packets, reason codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from offsite.core.readings import DataKind, DeadReason
from offsite.ingest.codecs import ParsedValue, hj212
from offsite.ingest.codecs.hj212 import (
    BAD_HEADER,
    BAD_TIMESTAMP,
    BEIJING,
    CRC_MISMATCH,
    LENGTH_MISMATCH,
    MALFORMED_FIELD,
    MISSING_FIELD,
    UNKNOWN_CN,
    Packet,
    build_data_packet,
    build_response,
    crc16,
    crc16_modbus,
    frame,
    parse_packet,
    parse_time,
    to_message,
)
from offsite.ingest.errors import DecodeError

# DOMAIN.md "HJ 212" sample packets, verbatim (the CRLF is not part of the printed text)
SAMPLE_1062 = (
    b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;"
    b"MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80"
)
SAMPLE_9011 = (
    b"##0094QN=20231008125115215;ST=22;CN=9011;PW=123456;"
    b"MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=1&&CC01"
)
MN = "010000A8900016F000169DC0"


def reason_of(raw: bytes) -> str:
    with pytest.raises(DecodeError) as ei:
        parse_packet(raw)
    assert ei.value.detail
    return ei.value.reason


def seg(
    cp: str,
    *,
    cn: str = "2011",
    st: str = "31",
    flag: str = "4",
    mn: str = MN,
    pw: str = "123456",
    qn: str = "20240315103000123",
    extra: str = "",
) -> str:
    return f"QN={qn};ST={st};CN={cn};PW={pw};MN={mn};Flag={flag};{extra}CP=&&{cp}&&"


def msg_of(segment: str, tz=BEIJING):
    return to_message([parse_packet(frame(segment))], tz)


# -- CRC ----------------------------------------------------------------------------------


def test_crc16_test_vector():
    assert crc16(b"123456789") == 0x2F80


def test_crc16_is_not_modbus():
    assert crc16_modbus(b"123456789") == 0x4B37  # the CRC-16/MODBUS check value
    assert crc16(b"123456789") != crc16_modbus(b"123456789")


def test_crc16_of_empty_is_the_initial_register():
    assert crc16(b"") == 0xFFFF


@pytest.mark.parametrize(("sample", "crc"), [(SAMPLE_1062, 0x1C80), (SAMPLE_9011, 0xCC01)])
def test_sample_crc_is_crc16_of_the_data_segment(sample, crc):
    length = int(sample[2:6])
    segment = sample[6 : 6 + length]
    assert len(segment) == length
    assert crc16(segment) == crc
    assert sample[6 + length :] == b"%04X" % crc


# -- the DOMAIN.md samples ----------------------------------------------------------------


@pytest.mark.parametrize("tail", [b"", b"\r\n"])
def test_sample_1062_parses_as_printed(tail):
    p = parse_packet(SAMPLE_1062 + tail)
    assert p == Packet(
        st="32",
        cn="1062",
        mn=MN,
        pw="100000",
        qn="20160801085857223",
        flag=5,
        pnum=None,
        pno=None,
        cp=((("RtdInterval", "30"),),),
    )
    assert p.crc_variant == "standard"
    assert p.raw == SAMPLE_1062 + tail
    assert p.wants_reply and not p.is_split and p.version == 1


@pytest.mark.parametrize("tail", [b"", b"\r\n"])
def test_sample_9011_parses_as_printed(tail):
    p = parse_packet(SAMPLE_9011 + tail)
    assert p == Packet(
        st="22",
        cn="9011",
        mn=MN,
        pw="123456",
        qn="20231008125115215",
        flag=4,
        cp=((("QnRtn", "1"),),),
    )
    assert p.crc_variant == "standard"
    assert not p.wants_reply and not p.is_split and p.version == 1


def test_samples_are_notices_without_readings():
    for sample in (SAMPLE_1062, SAMPLE_9011):
        m = to_message([parse_packet(sample)])
        assert m.records == () and m.mn == MN


def test_frame_rebuilds_the_samples_byte_for_byte():
    for sample in (SAMPLE_1062, SAMPLE_9011):
        segment = sample[6:-4].decode()
        assert frame(segment) == sample + b"\r\n"


# -- hand-written 2017 data packets -------------------------------------------------------

RTD = seg(
    "DataTime=20240315103000;a21026-Rtd=25.3,a21026-ZsRtd=30.1,a21026-Flag=N;"
    "a21002-Rtd=41.0,a21002-Flag=M;a19001-Rtd=9.8,a19001-Flag=N;"
    "a34013-Rtd=3.25,a34013-Flag=D,a34013-EFlag=E01,a34013-SampleTime=20240315102955",
    cn="2011",
    flag="5",
)
MINUTE = seg(
    "DataTime=20240315102000;a21026-Min=20.1,a21026-Avg=25.3,a21026-Max=30.2,"
    "a21026-Cou=0.52,a21026-Flag=N;a34013-Avg=3.2,a34013-Flag=F",
    cn="2051",
)
HOUR = seg(
    "DataTime=20240315100000;a21026-Avg=25.3,a21026-ZsAvg=31.0,a21026-ZsMin=28.0,"
    "a21026-ZsMax=33.5,a21026-Flag=N;a00000-Avg=120345.6,a00000-Cou=433244160,"
    "a00000-Flag=N",
    cn="2061",
)
DAY = seg(
    "DataTime=20240314000000;w01018-Avg=35.2,w01018-Min=30.0,w01018-Max=40.1,"
    "w01018-Flag=N;w21003-Avg=1.25,w21003-Flag=C;w00000-Cou=2430.5,w00000-Flag=N",
    cn="2031",
    st="32",
)


def values(segment: str) -> list[ParsedValue]:
    m = msg_of(segment)
    assert m.mn == MN
    assert len(m.records) == 1
    return list(m.records[0].values)


def test_rtd_packet_2011():
    m = msg_of(RTD)
    assert m.records[0].ts == datetime(2024, 3, 15, 10, 30, tzinfo=BEIJING)
    assert m.records[0].ts == datetime(2024, 3, 15, 2, 30, tzinfo=UTC)
    assert m.records[0].ts.utcoffset() == timedelta(hours=8)
    K = DataKind.RTD
    assert list(m.records[0].values) == [
        ParsedValue("a21026", 25.3, "N", K, ""),
        ParsedValue("a21026", 30.1, "N", K, "zs"),
        ParsedValue("a21002", 41.0, "M", K, ""),
        ParsedValue("a19001", 9.8, "N", K, ""),
        ParsedValue("a34013", 3.25, "D", K, ""),  # EFlag / SampleTime kept only in raw
    ]


def test_minute_packet_2051_keeps_min_max_cou_as_stats():
    K = DataKind.MINUTE
    assert values(MINUTE) == [
        ParsedValue("a21026", 20.1, "N", K, "min"),
        ParsedValue("a21026", 25.3, "N", K, ""),
        ParsedValue("a21026", 30.2, "N", K, "max"),
        ParsedValue("a21026", 0.52, "N", K, "cou"),
        ParsedValue("a34013", 3.2, "F", K, ""),
    ]
    assert msg_of(MINUTE).records[0].ts == datetime(2024, 3, 15, 10, 20, tzinfo=BEIJING)


def test_hour_packet_2061_with_converted_values():
    K = DataKind.HOUR
    assert values(HOUR) == [
        ParsedValue("a21026", 25.3, "N", K, ""),
        ParsedValue("a21026", 31.0, "N", K, "zs"),
        ParsedValue("a21026", 28.0, "N", K, "zsmin"),
        ParsedValue("a21026", 33.5, "N", K, "zsmax"),
        ParsedValue("a00000", 120345.6, "N", K, ""),
        ParsedValue("a00000", 433244160.0, "N", K, "cou"),
    ]


def test_day_packet_2031_wastewater():
    K = DataKind.DAY
    assert values(DAY) == [
        ParsedValue("w01018", 35.2, "N", K, ""),
        ParsedValue("w01018", 30.0, "N", K, "min"),
        ParsedValue("w01018", 40.1, "N", K, "max"),
        ParsedValue("w21003", 1.25, "C", K, ""),
        ParsedValue("w00000", 2430.5, "N", K, "cou"),
    ]
    assert msg_of(DAY).records[0].ts == datetime(2024, 3, 14, tzinfo=BEIJING)


def test_values_are_floats():
    for segment in (RTD, MINUTE, HOUR, DAY):
        assert all(type(v.value) is float for v in values(segment))


def test_flag_defaults_to_n_and_applies_to_every_stat_of_its_code():
    vs = values(
        seg("DataTime=20240315103000;a21026-Rtd=1;a21002-Rtd=2,a21002-ZsRtd=3,a21002-Flag=T")
    )
    assert [(v.pollutant, v.flag, v.stat) for v in vs] == [
        ("a21026", "N", ""),
        ("a21002", "T", ""),
        ("a21002", "T", "zs"),
    ]


def test_flag_given_before_its_value_still_applies():
    vs = values(seg("DataTime=20240315103000;a21026-Flag=M,a21026-Rtd=1"))
    assert vs == [ParsedValue("a21026", 1.0, "M", DataKind.RTD, "")]


def test_2005_era_codes_and_flag_0():
    p = parse_packet(
        frame(seg("DataTime=20240315103000;02-Rtd=12.5,02-Flag=N;S01-Rtd=9.1,S01-Flag=N", flag="0"))
    )
    assert p.version == 0 and not p.wants_reply
    vs = to_message([p]).records[0].values
    assert [(v.pollutant, v.value) for v in vs] == [("02", 12.5), ("S01", 9.1)]


def test_daily_run_time_2041():
    vs = values(seg("DataTime=20240314000000;a21026-RT=23.5", cn="2041"))
    assert vs == [ParsedValue("a21026", 23.5, "N", DataKind.DAY, "rt")]


def test_data_time_in_a_given_zone():
    tz = timezone(timedelta(hours=5))
    m = msg_of(RTD, tz)
    assert m.records[0].ts == datetime(2024, 3, 15, 10, 30, tzinfo=tz)


def test_non_number_value_is_passed_on_for_validation_to_refuse():
    vs = values(seg("DataTime=20240315103000;a21026-Rtd=abc,a21026-Flag=N"))
    assert vs == [ParsedValue("a21026", "abc", "N", DataKind.RTD, "")]


def test_fields_without_a_code_are_ignored():
    vs = values(seg("DataTime=20240315103000;Vendor=1;-Rtd=5;a21026-Rtd=1;a21026-Info=x"))
    assert [v.pollutant for v in vs] == ["a21026"]


def test_chinese_text_counts_bytes_in_the_length():
    segment = seg("DataTime=20240315103000;a21026-Rtd=1,a21026-Info=二氧化硫")
    raw = frame(segment)
    assert int(raw[2:6]) == len(segment.encode("utf-8")) > len(segment)
    p = parse_packet(raw)
    assert p.cp[1][1] == ("a21026-Info", "二氧化硫")


@pytest.mark.parametrize("cn", sorted(hj212.NOTICE_CNS))
def test_known_non_data_cns_give_no_records(cn):
    m = msg_of(seg("QnRtn=1", cn=cn))
    assert m.records == () and m.mn == MN


def test_restart_notice_2081():
    m = msg_of(seg("RestartTime=20240315103000", cn="2081", flag="5"))
    assert m.records == ()


@pytest.mark.parametrize("cn", ["2099", "0000", "5011", "9999"])
def test_unknown_cn(cn):
    with pytest.raises(DecodeError) as ei:
        msg_of(seg("DataTime=20240315103000;a21026-Rtd=1", cn=cn))
    assert ei.value.reason == UNKNOWN_CN
    assert cn in ei.value.detail


@pytest.mark.parametrize(
    ("cp", "reason"),
    [
        ("a21026-Rtd=1,a21026-Flag=N", MISSING_FIELD),  # no DataTime
        ("DataTime=20240315103000", MISSING_FIELD),  # no values
        ("DataTime=20240315103000;a21026-Flag=N", MISSING_FIELD),
        ("", MISSING_FIELD),
        ("DataTime=20240315103000;a21026-Rtd=1;DataTime=20240315103100", MALFORMED_FIELD),
        ("DataTime=2024031510300;a21026-Rtd=1", BAD_TIMESTAMP),
        ("DataTime=20241315103000;a21026-Rtd=1", BAD_TIMESTAMP),
        ("DataTime=20240230103000;a21026-Rtd=1", BAD_TIMESTAMP),
        ("DataTime=20240315246000;a21026-Rtd=1", BAD_TIMESTAMP),
        ("DataTime=2024-03-15 10;a21026-Rtd=1", BAD_TIMESTAMP),
    ],
)
def test_to_message_refusals(cp, reason):
    with pytest.raises(DecodeError) as ei:
        msg_of(seg(cp))
    assert ei.value.reason == reason
    assert ei.value.detail


def test_same_data_time_repeated_is_fine():
    m = msg_of(seg("DataTime=20240315103000;a21026-Rtd=1;DataTime=20240315103000"))
    assert len(m.records[0].values) == 1


def test_every_codec_reason_is_a_dead_reason():
    for reason in (
        BAD_HEADER,
        LENGTH_MISMATCH,
        CRC_MISMATCH,
        MISSING_FIELD,
        MALFORMED_FIELD,
        UNKNOWN_CN,
        BAD_TIMESTAMP,
    ):
        assert DeadReason(reason).value == reason


# -- parse_time -----------------------------------------------------------------------------


def test_parse_time():
    assert parse_time("20240315103000", BEIJING) == datetime(2024, 3, 15, 10, 30, tzinfo=BEIJING)
    assert parse_time("20240315103000123", BEIJING) == datetime(
        2024, 3, 15, 10, 30, 0, 123000, tzinfo=BEIJING
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024031510300",
        "202403151030001",
        "2024031510300012",
        "202403151030001234",
        "2024031510300a",
        "20240315103060",
        "20240229250000",
        "20230229000000",
        " 20240315103000",
        "20240315103000\n",
    ],
)
def test_parse_time_refusals(text):
    with pytest.raises(DecodeError) as ei:
        parse_time(text, BEIJING, "QN")
    assert ei.value.reason == BAD_TIMESTAMP


def test_parse_time_leap_day():
    assert parse_time("20240229000000", BEIJING).day == 29


# -- parse_packet reason codes ------------------------------------------------------------

GOOD = frame(RTD)


def test_good_packet_parses_with_leading_and_trailing_whitespace():
    assert parse_packet(b" \r\n" + GOOD + b"\r\n ").cn == "2011"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n",
        b"#",
        b"##",
        b"##01",
        b"#0101QN=",
        b"$$0101",
        b"##01a1QN=",
        b"x##0101QN=",
        b"##\xef\xbc\x91234",
    ],
)
def test_bad_header(raw):
    assert reason_of(raw) == BAD_HEADER


def test_length_mismatch_either_way():
    body = GOOD[6:-2]
    longer = b"##%04d" % (len(body) - 4 + 1) + body
    shorter = b"##%04d" % (len(body) - 4 - 1) + body
    assert reason_of(longer) == LENGTH_MISMATCH
    assert reason_of(shorter) == LENGTH_MISMATCH
    assert reason_of(GOOD[:-3]) == LENGTH_MISMATCH  # one CRC digit lost


def test_crc_mismatch_names_the_expected_crc():
    raw = GOOD[:-6] + (b"0000" if GOOD[-6:-2] != b"0000" else b"0001") + b"\r\n"
    with pytest.raises(DecodeError) as ei:
        parse_packet(raw)
    assert ei.value.reason == CRC_MISMATCH
    assert GOOD[-6:-2].decode() in ei.value.detail


@pytest.mark.parametrize("crc", [b"ZZZZ", b"1C8G", b" 1C8", b"+1C8", b"1_C8", b"\xff\xff12"])
def test_crc_that_is_not_four_hex_digits(crc):
    assert reason_of(GOOD[:-6] + crc + b"\r\n") == BAD_HEADER


def test_lowercase_crc_is_the_same_number():
    raw = GOOD[:-6] + GOOD[-6:-2].lower() + b"\r\n"
    assert parse_packet(raw) == parse_packet(GOOD)


def test_modbus_swapped_crc_is_recognised_as_such():
    p = parse_packet(frame(RTD, crc="modbus_swapped"))
    assert p.crc_variant == "modbus_swapped"
    assert p == Packet(
        **{
            **{f: getattr(p, f) for f in Packet.__dataclass_fields__},
            "crc_variant": "modbus_swapped",
        }
    )
    assert parse_packet(frame(RTD)).crc_variant == "standard"
    data = RTD.encode()
    m = crc16_modbus(data)
    assert frame(RTD, crc="modbus_swapped")[-6:-2] == b"%02X%02X" % (m & 0xFF, m >> 8)


def test_unswapped_modbus_crc_is_recognised_too():
    """Field loggers send CRC-16/MODBUS in both byte orders; the high-byte-first one
    was once refused as a plain mismatch."""
    data = RTD.encode()
    raw = b"##%04d" % len(data) + data + b"%04X" % crc16_modbus(data)
    assert raw + b"\r\n" == frame(RTD, crc="modbus")
    assert parse_packet(raw).crc_variant == "modbus"
    with pytest.raises(ValueError, match="unknown CRC variant"):
        frame(RTD, crc="crc32")


@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        ("QN=20240315103000123;ST=31;CN=2011;MN=AB;Flag=4", MISSING_FIELD),  # no CP
        ("QN=20240315103000123;ST=31;CN=2011;MN=AB;Flag=4;CP=&&", MALFORMED_FIELD),
        ("QN=20240315103000123;ST=31;CN=2011;MN=AB;Flag=4;CP=&&a=1&", MALFORMED_FIELD),
        ("QN=20240315103000123;CN=2011;MN=AB;Flag=4;CP=&&&&", MISSING_FIELD),  # no ST
        ("QN=20240315103000123;ST=31;MN=AB;Flag=4;CP=&&&&", MISSING_FIELD),  # no CN
        ("QN=20240315103000123;ST=31;CN=2011;Flag=4;CP=&&&&", MISSING_FIELD),  # no MN
        ("ST=31;CN=2011;MN=;CP=&&&&", MISSING_FIELD),  # empty MN
        ("ST=31;CN=201;MN=AB;CP=&&&&", MALFORMED_FIELD),
        ("ST=31;CN=20a1;MN=AB;CP=&&&&", MALFORMED_FIELD),
        ("ST=3;CN=2011;MN=AB;CP=&&&&", MALFORMED_FIELD),
        ("ST=311;CN=2011;MN=AB;CP=&&&&", MALFORMED_FIELD),
        ("ST=31;CN=2011;MN=" + "A" * 25 + ";CP=&&&&", MALFORMED_FIELD),
        ("ST=31;CN=2011;MN=AB-1;CP=&&&&", MALFORMED_FIELD),
        ("QN=2024031510300012;ST=31;CN=2011;MN=AB;CP=&&&&", MALFORMED_FIELD),
        ("QN=2024031510300012x;ST=31;CN=2011;MN=AB;CP=&&&&", MALFORMED_FIELD),
        ("ST=31;CN=2011;MN=AB;Flag=x;CP=&&&&", MALFORMED_FIELD),
        ("ST=31;CN=2011;MN=AB;Flag=256;CP=&&&&", MALFORMED_FIELD),
        ("ST=31;CN=2011;MN=AB;Flag=-1;CP=&&&&", MALFORMED_FIELD),
        ("ST=31;CN=2011;MN=AB;Flag=;CP=&&&&", MALFORMED_FIELD),
        ("ST=31;CN=2011;MN=AB;Flag=6;CP=&&&&", MISSING_FIELD),  # split, no PNUM/PNO
        ("ST=31;CN=2011;MN=AB;Flag=6;PNUM=2;CP=&&&&", MISSING_FIELD),
        ("ST=31;CN=2011;MN=AB;Flag=6;PNUM=2;PNO=3;CP=&&&&", MALFORMED_FIELD),
        ("ST=31;CN=2011;MN=AB;Flag=6;PNUM=0;PNO=0;CP=&&&&", MALFORMED_FIELD),
        ("ST=31;CN=2011;MN=AB;Flag=6;PNUM=2;PNO=x;CP=&&&&", MALFORMED_FIELD),
        ("ST=31;ST=32;CN=2011;MN=AB;CP=&&&&", MALFORMED_FIELD),  # twice
        ("ST=31;CN=2011;MN=AB;junk;CP=&&&&", MALFORMED_FIELD),
        ("ST=31;CN=2011;MN=AB;=1;CP=&&&&", MALFORMED_FIELD),
        ("ST=31;CN=2011;MN=AB;CP=&&a21026-Rtd=1,a21026-Flag&&", MALFORMED_FIELD),
        ("ST=31;CN=2011;MN=AB;CP=&&a21026-Rtd=1,,a21026-Flag=N&&", MALFORMED_FIELD),
        ("ST=31;CN=2011;MN=AB;CP=&&=1&&", MALFORMED_FIELD),
    ],
)
def test_segment_refusals(segment, reason):
    assert reason_of(frame(segment)) == reason


def test_names_are_case_sensitive():
    assert reason_of(frame("st=31;CN=2011;MN=AB;CP=&&&&")) == MISSING_FIELD
    assert reason_of(frame("ST=31;CN=2011;MN=AB;cp=&&&&")) == MISSING_FIELD


def test_segment_that_is_not_utf8():
    data = b"ST=31;CN=2011;MN=AB;CP=&&a=\xff&&"
    raw = b"##%04d" % len(data) + data + b"%04X" % crc16(data)
    assert reason_of(raw) == MALFORMED_FIELD


def test_minimal_packet_and_optional_fields():
    p = parse_packet(frame("ST=31;CN=2011;MN=AB;CP=&&&&"))
    assert (p.qn, p.pw, p.flag, p.pnum, p.pno, p.cp) == (None, None, None, None, None, ())
    assert not p.wants_reply and not p.is_split and p.version == 0


def test_empty_items_in_cp_are_skipped_and_values_may_be_empty_or_contain_equals():
    p = parse_packet(frame("ST=31;CN=2011;MN=AB;CP=&&;a=1;;b=,c=x=y;&&"))
    assert p.cp == ((("a", "1"),), (("b", ""), ("c", "x=y")))


def test_split_packet_fields():
    p = parse_packet(
        frame(seg("DataTime=20240315103000;a21026-Rtd=1", flag="7", extra="PNUM=3;PNO=2;"))
    )
    assert (p.pnum, p.pno, p.flag) == (3, 2, 7)
    assert p.is_split and p.wants_reply and p.version == 1


# -- Packet properties ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "reply", "split", "version"),
    [
        (None, False, False, 0),
        (0, False, False, 0),
        (1, True, False, 0),
        (4, False, False, 1),
        (5, True, False, 1),
        (6, False, True, 1),
        (7, True, True, 1),
        (8, False, False, 2),
        (9, True, False, 2),
        (255, True, True, 63),
    ],
)
def test_flag_bits(flag, reply, split, version):
    p = Packet(st="31", cn="2011", mn="AB", flag=flag)
    assert (p.wants_reply, p.is_split, p.version) == (reply, split, version)


# -- building ---------------------------------------------------------------------------------


def test_frame_layout():
    raw = frame("ST=31;CN=2011;MN=AB;CP=&&&&")
    assert raw.startswith(b"##0027ST=31;")
    assert raw.endswith(b"&&" + b"%04X" % crc16(b"ST=31;CN=2011;MN=AB;CP=&&&&") + b"\r\n")


def test_frame_refuses_a_segment_beyond_four_digits():
    frame("x" * 9999)
    with pytest.raises(ValueError, match="exceeds"):
        frame("x" * 10000)
    with pytest.raises(ValueError):
        frame("二" * 3334)  # 10002 bytes


@pytest.mark.parametrize(
    ("cn", "suffix"), [("2011", "Rtd"), ("2051", "Avg"), ("2061", "Avg"), ("2031", "Avg")]
)
def test_build_data_packet(cn, suffix):
    ts = datetime(2024, 3, 15, 2, 30, 5, 678000, tzinfo=UTC)
    raw = build_data_packet(
        mn="AB12", pw="pw", cn=cn, ts=ts, values=[("a21026", 12.3456, "N"), ("a21002", -1.0, "M")]
    )
    p = parse_packet(raw)
    assert (p.mn, p.pw, p.cn, p.st, p.flag, p.qn) == (
        "AB12",
        "pw",
        cn,
        "32",
        4,
        "20240315103005678",
    )
    assert p.cp == (
        (("DataTime", "20240315103005"),),
        ((f"a21026-{suffix}", "12.346"), ("a21026-Flag", "N")),
        ((f"a21002-{suffix}", "-1.000"), ("a21002-Flag", "M")),
    )
    m = to_message([p])
    assert m.records[0].ts == ts.replace(microsecond=0)


def test_build_data_packet_qn_time_precision_and_modbus():
    ts = datetime(2024, 3, 15, 10, 30, tzinfo=BEIJING)
    raw = build_data_packet(
        mn="AB",
        pw="1",
        cn="2061",
        ts=ts,
        qn_time=ts + timedelta(hours=1),
        values=[("a21026", 1.25, "N")],
        precision=1,
        crc="modbus_swapped",
        st="31",
        flag=5,
    )
    p = parse_packet(raw)
    assert p.crc_variant == "modbus_swapped"
    assert p.qn == "20240315113000000" and p.st == "31" and p.flag == 5
    assert p.cp[1][0] == ("a21026-Avg", "1.2")


# -- responses --------------------------------------------------------------------------------


def data_packet(flag: int, cn: str = "2011") -> Packet:
    return parse_packet(
        frame(
            seg(
                "DataTime=20240315103000;a21026-Rtd=1",
                cn=cn,
                flag=str(flag),
                extra="PNUM=2;PNO=1;" if flag & 2 else "",
            )
        )
    )


@pytest.mark.parametrize("cn", ["2011", "2051", "2061", "2031"])
def test_data_upload_wanting_a_reply_gets_9014(cn):
    req = data_packet(5, cn)
    raw = build_response(req)
    assert raw is not None
    resp = parse_packet(raw)
    assert resp.crc_variant == "standard"
    assert (resp.cn, resp.st, resp.qn, resp.mn, resp.pw) == ("9014", "91", req.qn, MN, "123456")
    assert resp.flag == 4 and not resp.wants_reply and not resp.is_split
    assert resp.cp == ()
    assert raw.endswith(b"CP=&&&&" + raw[-6:])


def test_split_part_reply_clears_the_split_bit():
    resp = parse_packet(build_response(data_packet(7)))
    assert resp.flag == 4 and resp.cn == "9014"


def test_restart_notice_gets_9013():
    req = parse_packet(frame(seg("RestartTime=20240315103000", cn="2081", flag="5")))
    resp = parse_packet(build_response(req))
    assert (resp.cn, resp.st, resp.qn) == ("9013", "91", req.qn)


@pytest.mark.parametrize("flag", [4, 6, 0])
def test_no_reply_when_none_is_asked_for(flag):
    assert build_response(data_packet(flag)) is None
    assert build_response(parse_packet(SAMPLE_9011)) is None


def test_no_reply_without_flag():
    assert build_response(parse_packet(frame("ST=31;CN=2011;MN=AB;CP=&&&&"))) is None


def test_reply_without_qn_or_pw():
    resp = parse_packet(build_response(parse_packet(frame("ST=31;CN=2011;MN=AB;Flag=5;CP=&&&&"))))
    assert resp.qn is None and resp.pw == "" and resp.mn == "AB"


def test_2005_reply_keeps_version_0():
    resp = parse_packet(build_response(data_packet(1)))
    assert resp.flag == 0 and resp.version == 0


# -- known bugs -----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["Flag=²", "Flag=①", "PNUM=²;PNO=1;Flag=6", "PNO=³"])
def test_superscript_digits_in_int_fields_are_a_decode_error(field):
    raw = frame(f"ST=31;CN=2011;MN=AB;{field};CP=&&&&")
    try:
        parse_packet(raw)
    except DecodeError as exc:
        assert exc.reason == MALFORMED_FIELD
    else:
        pytest.fail("accepted")


@pytest.mark.parametrize(
    "segment",
    [
        "ST=٣١;CN=2011;MN=AB;CP=&&&&",
        "QN=٢٠٢٤٠٣١٥١٠٣٠٠٠١٢٣;ST=31;CN=2011;MN=AB;CP=&&&&",
        "ST=31;CN=2011;MN=AB;Flag=٤;CP=&&&&",
    ],
)
def test_non_ascii_digits_in_header_fields_are_malformed(segment):
    assert reason_of(frame(segment)) == MALFORMED_FIELD

"""Property tests for the HJ 212 codec: build → parse round trips, framing, corruption."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from offsite.core.readings import FLAGS, DataKind, DeadReason
from offsite.ingest.codecs.hj212 import (
    BAD_HEADER,
    BEIJING,
    CRC_MISMATCH,
    LENGTH_MISMATCH,
    Packet,
    build_data_packet,
    frame,
    parse_packet,
    to_message,
)
from offsite.ingest.errors import DecodeError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KINDS = {"2011": DataKind.RTD, "2051": DataKind.MINUTE, "2061": DataKind.HOUR, "2031": DataKind.DAY}
CONTENT = ("st", "cn", "mn", "pw", "qn", "flag", "pnum", "pno", "cp")

mns = st.text(string.ascii_letters + string.digits, min_size=1, max_size=24)
# PW: printable ASCII without ';' (ends a header field) and '&' (could forge "CP=&&")
pws = st.text(alphabet=sorted(set(string.printable[:94]) - set(";&")), min_size=0, max_size=12)
codes = st.builds("{}{:05d}".format, st.sampled_from("aw"), st.integers(0, 99999))
zones = st.sampled_from(
    [UTC, BEIJING, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
)
stamps = st.builds(
    lambda dt, tz: dt.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30)),
    zones,
)
readings = st.lists(
    st.tuples(codes, st.floats(-1e9, 1e9, allow_nan=False), st.sampled_from(sorted(FLAGS))),
    min_size=1,
    max_size=8,
    unique_by=lambda t: t[0],
)


@st.composite
def data_packets(draw):
    kw = {
        "mn": draw(mns),
        "pw": draw(pws),
        "cn": draw(st.sampled_from(sorted(KINDS))),
        "ts": draw(stamps),
        "values": draw(readings),
        "precision": draw(st.integers(0, 6)),
        "st": draw(st.sampled_from(["31", "32", "51", "52", "22"])),
        "flag": draw(st.sampled_from([0, 1, 4, 5, 8, 9])),
    }
    return kw, build_data_packet(**kw)


@SETTINGS
@given(data_packets(), zones)
def test_build_parse_round_trip(case, tz):
    kw, raw = case
    p = parse_packet(raw)
    assert p.crc_variant == "standard"
    assert (p.mn, p.pw, p.cn, p.st, p.flag) == (kw["mn"], kw["pw"], kw["cn"], kw["st"], kw["flag"])
    assert p.qn is not None and len(p.qn) == 17
    m = to_message([p], tz)
    assert m.mn == kw["mn"]
    (rec,) = m.records
    # DataTime is Beijing wall time (build's default), read back as wall time in ``tz``
    assert rec.ts.tzinfo is tz
    assert rec.ts.replace(tzinfo=None) == kw["ts"].astimezone(BEIJING).replace(
        tzinfo=None, microsecond=0
    )
    if tz is BEIJING:
        assert rec.ts == kw["ts"].replace(microsecond=0)
    prec = kw["precision"]
    assert [(v.pollutant, v.value, v.flag, v.kind, v.stat) for v in rec.values] == [
        (code, float(f"{value:.{prec}f}"), flag, KINDS[kw["cn"]], "")
        for code, value, flag in kw["values"]
    ]


@SETTINGS
@given(data_packets())
def test_modbus_variant_round_trips_the_same_content(case):
    kw, raw = case
    std = parse_packet(raw)
    for variant in ("modbus_swapped", "modbus"):  # both byte orders loggers send
        raw_mod = build_data_packet(**{**kw, "crc": variant, "qn_time": None})
        mod = parse_packet(raw_mod)
        crc = raw_mod[-6:-2]
        # a CRC whose two bytes are equal reads the same in either order
        assert mod.crc_variant == (variant if crc[:2] != crc[2:] else "modbus_swapped")
        assert [getattr(mod, f) for f in CONTENT] == [getattr(std, f) for f in CONTENT]


# any printable text, Chinese included; surrogates cannot be encoded and are excluded
segments = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(list(";,=&#\r\n\t ")),
    max_size=400,
)


@SETTINGS
@given(segments)
def test_frame_passes_length_and_crc_checks(text):
    raw = frame(text)
    assert int(raw[2:6]) == len(text.encode("utf-8"))
    try:
        p = parse_packet(raw)
    except DecodeError as exc:
        assert exc.reason not in (BAD_HEADER, LENGTH_MISMATCH, CRC_MISMATCH), exc
        assert DeadReason(exc.reason) and exc.detail
    else:
        assert p.crc_variant == "standard"


fields = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=";,=&"),
    min_size=1,
    max_size=20,
)


@SETTINGS
@given(
    mns,
    st.lists(st.lists(st.tuples(fields, fields | st.just("")), min_size=1, max_size=4), max_size=5),
)
def test_frame_of_well_formed_segment_gives_back_the_fields(mn, items):
    cp = ";".join(",".join(f"{k}={v}" for k, v in item) for item in items)
    p = parse_packet(frame(f"ST=32;CN=2011;MN={mn};CP=&&{cp}&&"))
    assert p.mn == mn
    assert p.cp == tuple(tuple(item) for item in items)


def _valid_packet() -> bytes:
    return build_data_packet(
        mn="010000A8900016F000169DC0",
        pw="123456",
        cn="2061",
        ts=datetime(2024, 3, 15, 10, tzinfo=BEIJING),
        flag=5,
        values=[("a21026", 12.5, "N"), ("a21002", 40.25, "M")],
    )


@SETTINGS
@given(data_packets(), st.data())
def test_single_byte_corruption_of_segment_or_crc_is_never_accepted_as_other_content(case, data):
    _, raw = case
    good = parse_packet(raw)
    end = len(raw) - 2  # segment and CRC: raw[6:end]
    i = data.draw(st.integers(6, end - 1), label="index")
    b = data.draw(st.integers(0, 255).filter(lambda x: x != raw[i]), label="byte")
    bad = raw[:i] + bytes([b]) + raw[i + 1 :]
    try:
        p = parse_packet(bad)
    except DecodeError as exc:
        assert DeadReason(exc.reason) and exc.detail
        return
    # accepted: only a case change of a CRC hex digit keeps the same packet; a 2^-16
    # collision with the swapped-MODBUS CRC is flagged as such (validate refuses it)
    assert [getattr(p, f) for f in CONTENT] == [getattr(good, f) for f in CONTENT] or (
        p.crc_variant == "modbus_swapped"
    )
    if p.crc_variant == "standard":
        assert i >= end - 4 and chr(b).lower() == chr(raw[i]).lower()


@settings(max_examples=300, deadline=None)
@given(st.integers(6, len(_valid_packet()) - 3), st.integers(0, 255))
def test_single_byte_corruption_of_the_data_segment_is_a_crc_mismatch(i, b):
    raw = _valid_packet()
    assume(raw[i] != b)
    bad = raw[:i] + bytes([b]) + raw[i + 1 :]
    try:
        parse_packet(bad)
    except DecodeError as exc:
        if i < len(raw) - 6:
            # a changed data byte always changes the CRC (whitespace at the edge aside)
            assert exc.reason == CRC_MISMATCH
        return
    assert i >= len(raw) - 6  # only a CRC digit's case may change


@SETTINGS
@given(data_packets(), st.data())
def test_truncation_and_extension_are_refused(case, data):
    _, raw = case
    cut = data.draw(st.integers(0, len(raw) - 3))
    try:
        parse_packet(raw[:cut])
    except DecodeError as exc:
        assert exc.reason in (BAD_HEADER, LENGTH_MISMATCH)
    else:
        raise AssertionError("truncated packet accepted")
    extra = data.draw(
        st.binary(min_size=1, max_size=8).filter(lambda x: x.strip(b"\r\n\t ") != b"")
    )
    try:
        parse_packet(raw[:-2] + extra)
    except DecodeError as exc:
        assert exc.reason in (LENGTH_MISMATCH, BAD_HEADER)
    else:
        raise AssertionError("extended packet accepted")


def test_packet_equality_ignores_raw_only():
    a = parse_packet(_valid_packet())
    b = parse_packet(b"  " + _valid_packet())
    assert a == b and a.raw != b.raw
    assert a != Packet(**{**{f: getattr(a, f) for f in CONTENT}, "crc_variant": "modbus_swapped"})

"""JSON telemetry codec and format detection: bytes → ParsedMessage, or DecodeError."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from offsite.core.readings import DeadReason
from offsite.ingest.codecs import ParsedMessage, ParsedValue
from offsite.ingest.codecs.json_codec import MAX_RECORDS, decode_json, parse_timestamp
from offsite.ingest.errors import DecodeError
from offsite.ingest.validate import is_hj212

TS = "2026-11-26T08:00:00+08:00"
TS_UTC = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)


def enc(doc: object) -> bytes:
    return json.dumps(doc).encode()


def reason_of(payload: bytes) -> str:
    with pytest.raises(DecodeError) as info:
        decode_json(payload)
    return info.value.reason


# -- timestamps -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-26T00:00:00Z",
        "2026-11-26T00:00:00z",
        "2026-11-26T08:00:00+08:00",
        "2026-11-25T19:00:00-05:00",
        " 2026-11-26T00:00:00+00:00 ",
    ],
)
def test_parse_timestamp_zoned_forms_are_the_same_instant(raw):
    ts = parse_timestamp(raw)
    assert ts.tzinfo is not None
    assert ts == TS_UTC


def test_parse_timestamp_keeps_the_given_offset():
    ts = parse_timestamp(TS)
    assert ts.utcoffset() == timedelta(hours=8)
    assert ts.hour == 8


@pytest.mark.parametrize("raw", ["2026-11-26T08:00:00", "2026-11-26"])
def test_parse_timestamp_naive_is_refused(raw):
    with pytest.raises(DecodeError) as info:
        parse_timestamp(raw)
    assert info.value.reason == DeadReason.BAD_TIMESTAMP
    assert "time zone" in info.value.detail


@pytest.mark.parametrize("raw", [1764115200, 1764115200.0, None, ["2026"], {"t": 1}, True])
def test_parse_timestamp_not_a_string_is_refused(raw):
    with pytest.raises(DecodeError) as info:
        parse_timestamp(raw)
    assert info.value.reason == DeadReason.BAD_TIMESTAMP


@pytest.mark.parametrize(
    "raw", ["", "Z", "yesterday", "2026-13-01T00:00:00Z", "2026-11-26T25:00:00Z"]
)
def test_parse_timestamp_garbage_is_refused(raw):
    with pytest.raises(DecodeError) as info:
        parse_timestamp(raw)
    assert info.value.reason == DeadReason.BAD_TIMESTAMP


# -- shapes -----------------------------------------------------------------------------


def test_single_object_with_number_and_object_values():
    msg = decode_json(
        enc(
            {
                "ts": TS,
                "mn": "MN1",
                "values": {"a21026": 12.3, "a19001": {"value": 8.1, "flag": "M"}},
            }
        )
    )
    assert isinstance(msg, ParsedMessage)
    assert msg.mn == "MN1"
    assert len(msg.records) == 1
    rec = msg.records[0]
    assert rec.ts == TS_UTC
    assert rec.values == (ParsedValue("a21026", 12.3, "N"), ParsedValue("a19001", 8.1, "M"))


def test_object_value_without_flag_defaults_to_n():
    msg = decode_json(enc({"ts": TS, "values": {"a21026": {"value": 5}}}))
    assert msg.records[0].values[0].flag == "N"
    assert msg.records[0].values[0].value == 5


def test_values_pass_through_unjudged():
    # The codec does not judge content: strings, bools, nulls and odd flags reach validate.
    msg = decode_json(
        enc({"ts": TS, "values": {"x": "12", "a21002": True, "a21026": {"value": None, "flag": 7}}})
    )
    vals = msg.records[0].values
    assert [(v.pollutant, v.value, v.flag) for v in vals] == [
        ("x", "12", "N"),
        ("a21002", True, "N"),
        ("a21026", None, 7),
    ]


def test_array_batch_keeps_record_order():
    doc = [{"ts": f"2026-11-26T00:0{i}:00Z", "values": {"a21026": i}} for i in range(3)]
    msg = decode_json(enc(doc))
    assert [r.ts.minute for r in msg.records] == [0, 1, 2]
    assert [r.values[0].value for r in msg.records] == [0, 1, 2]
    assert msg.mn is None


def test_batch_with_one_mn_on_some_records_names_that_device():
    doc = [{"ts": TS, "mn": "MN1", "values": {"a21026": 1}}, {"ts": TS, "values": {"a21026": 2}}]
    assert decode_json(enc(doc)).mn == "MN1"


def test_batch_with_several_devices_is_a_mismatch():
    doc = [
        {"ts": TS, "mn": "MN1", "values": {"a21026": 1}},
        {"ts": TS, "mn": "MN2", "values": {"a21026": 2}},
    ]
    with pytest.raises(DecodeError) as info:
        decode_json(enc(doc))
    assert info.value.reason == DeadReason.DEVICE_MISMATCH
    assert "MN1" in info.value.detail and "MN2" in info.value.detail


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_come_through_as_floats(literal):
    payload = f'{{"ts": "{TS}", "values": {{"a21026": {literal}, "a21002": 1.5}}}}'.encode()
    vals = decode_json(payload).records[0].values
    v = vals[0].value
    assert isinstance(v, float) and not math.isfinite(v)
    assert math.isnan(v) == (literal == "NaN")
    assert vals[1].value == 1.5


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload", [b"{", b"", b"{'ts': 1}", b"not json", b'{"ts":1,}', b"[" * 100_000]
)
def test_malformed_json(payload):
    assert reason_of(payload) == DeadReason.MALFORMED_JSON


@pytest.mark.parametrize("payload", [b"\xff\xfe{}", b'{"ts": "\xc3\x28"}', "{}".encode("utf-16")])
def test_not_utf8(payload):
    assert reason_of(payload) == DeadReason.NOT_UTF8


def test_empty_batch():
    assert reason_of(b"[]") == DeadReason.SCHEMA


def test_batch_over_max_records():
    doc = [{"ts": TS, "values": {"a21026": 1}}] * (MAX_RECORDS + 1)
    assert reason_of(enc(doc)) == DeadReason.SCHEMA


@pytest.mark.parametrize(
    "doc",
    [
        {"values": {"a21026": 1}},  # missing ts
        {"ts": TS},  # missing values
        {"ts": TS, "values": {}},  # empty values
        {"ts": TS, "values": [1, 2]},  # values not an object
        {"ts": TS, "values": {"a21026": {"flag": "N"}}},  # object value without 'value'
        {"ts": TS, "mn": 42, "values": {"a21026": 1}},  # mn not a string
        [{"ts": TS, "values": {"a21026": 1}}, 5],  # record not an object
        5,
        "text",
        None,
    ],
)
def test_schema_errors(doc):
    assert reason_of(enc(doc)) == DeadReason.SCHEMA


def test_schema_error_names_the_record_in_a_batch():
    doc = [{"ts": TS, "values": {"a21026": 1}}, {"ts": TS}]
    with pytest.raises(DecodeError) as info:
        decode_json(enc(doc))
    assert info.value.detail.startswith("record 1:")


@pytest.mark.parametrize("ts", ["2026-11-26T08:00:00", 1764115200, None])
def test_bad_timestamp_in_a_record(ts):
    assert reason_of(enc({"ts": ts, "values": {"a21026": 1}})) == DeadReason.BAD_TIMESTAMP


def test_decode_error_reason_is_a_dead_reason():
    with pytest.raises(DecodeError) as info:
        decode_json(b"{")
    assert DeadReason(info.value.reason) is DeadReason.MALFORMED_JSON
    assert str(info.value).startswith("malformed_json: ")


# -- detection --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload,hj",
    [
        (b"##0101QN=20260101000000000;ST=22;", True),
        (b"  \r\n##0101QN=...", True),
        (b"#{}", False),
        (b'{"ts": 1}', False),
        (b"", False),
    ],
)
def test_hj212_payloads_are_recognised_by_their_header(payload, hj):
    assert is_hj212(payload) is hj


def test_non_utc_offsets_are_preserved_through_records():
    msg = decode_json(enc({"ts": "2026-11-26T08:00:00+05:30", "values": {"a21026": 1}}))
    assert msg.records[0].ts.tzinfo == timezone(timedelta(hours=5, minutes=30))


def test_integer_literal_too_long_is_a_decode_error_not_a_crash():
    payload = b'{"ts": "2026-11-26T00:00:00Z", "values": {"a21026": 1' + b"0" * 5000 + b"}}"
    assert reason_of(payload) == DeadReason.MALFORMED_JSON


def test_one_decoder_for_every_message_decodes_as_json_loads():
    """The module's shared decoder (not a new one per message) reads what json.loads
    reads, NaN and Infinity included, and refuses a byte order mark as it did."""
    doc = {"ts": "2026-11-26T08:00:00Z", "values": {"a21026": 1.5, "a19001": {"value": 2}}}
    for _ in range(2):
        parsed = decode_json(json.dumps(doc).encode())
        assert [v.value for v in parsed.records[0].values] == [1.5, 2]
    nan = decode_json(b'{"ts": "2026-11-26T08:00:00Z", "values": {"a21026": -Infinity}}')
    assert nan.records[0].values[0].value == -math.inf
    with pytest.raises(DecodeError) as err:
        decode_json("\ufeff".encode() + json.dumps(doc).encode())
    assert err.value.reason is DeadReason.MALFORMED_JSON
    assert "BOM" in err.value.detail

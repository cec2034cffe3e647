"""offsite.ingest.validate: judge a decoded message against the registry and the clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offsite.core.readings import DeadReason, InboundMessage, Outcome, Reading
from offsite.ingest import validate
from offsite.ingest.validate import Policy, policy_topic, process, topic_device

NOW = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
MN = "010000A8900016F000169DC0"
TOPIC = f"devices/{MN}/telemetry"
KNOWN = frozenset({MN, "MN2"})
POLICY = Policy()


def iso(dt: datetime) -> str:
    return dt.isoformat()


def msg(doc: object = None, *, topic: str = TOPIC, payload: bytes | None = None) -> InboundMessage:
    if payload is None:
        payload = json.dumps(doc).encode()
    return InboundMessage(topic, payload, NOW, mid=7)


def rec(values: dict, ts: datetime = NOW, **extra) -> dict:
    return {"ts": iso(ts), "values": values, **extra}


def run(m: InboundMessage, known=KNOWN, policy: Policy = POLICY) -> Outcome:
    return process(m, known, policy)


def dead_only(out: Outcome, reason: DeadReason) -> None:
    assert out.readings == []
    assert out.dead is not None
    assert out.dead.reason == reason


# -- topics ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "mn"),
    [
        (TOPIC, MN),
        ("devices/A/telemetry", "A"),
        ("devices/abc123/telemetry", "abc123"),
        ("devices//telemetry", None),
        ("devices/MN1/status", None),
        ("sensors/MN1/telemetry", None),
        ("devices/MN1/telemetry/extra", None),
        ("devices/MN-1/telemetry", None),
        ("devices/" + "A" * 25 + "/telemetry", None),
        ("devices/MN1", None),
        ("", None),
    ],
)
def test_topic_device(topic, mn):
    assert topic_device(topic, POLICY) == mn


def test_topic_device_follows_policy_prefix_and_suffix():
    pol = Policy(topic_prefix="plant", topic_suffix="data")
    assert topic_device("plant/MN1/data", pol) == "MN1"
    assert topic_device("devices/MN1/telemetry", pol) is None


def test_topic_device_with_multi_level_prefix_and_suffix():
    pol = Policy(topic_prefix="site/a", topic_suffix="up/data")
    assert topic_device("site/a/MN1/up/data", pol) == "MN1"
    assert topic_device("site/a/x/MN1/up/data", pol) is None
    assert topic_device("site/b/MN1/up/data", pol) is None


@pytest.mark.parametrize(
    ("sub", "parts"),
    [
        ("devices/+/telemetry", ("devices", "telemetry")),
        ("site/a/+/up/data", ("site/a", "up/data")),
    ],
)
def test_policy_topic_splits_around_the_plus(sub, parts):
    assert policy_topic(sub) == parts
    prefix, suffix = parts
    assert (
        topic_device(sub.replace("+", "MN1"), Policy(topic_prefix=prefix, topic_suffix=suffix))
        == "MN1"
    )


@pytest.mark.parametrize(
    "sub",
    [
        "devices/#",
        "+/telemetry",
        "devices/+",
        "devices/+/+/x",
        "devices/mn/telemetry",
        "devices/+/#",
    ],
)
def test_policy_topic_refuses_subscriptions_without_one_inner_plus(sub):
    with pytest.raises(ValueError):
        policy_topic(sub)


def test_topic_device_refuses_trailing_newline_in_mn():
    assert topic_device("devices/MN1\n/telemetry", POLICY) is None


# -- whole-message refusals -------------------------------------------------------------


def test_good_message_becomes_readings_with_topic_mn():
    out = run(msg(rec({"a21026": 12.3, "a21002": {"value": 40, "flag": "M"}})))
    assert out.dead is None
    assert out.readings == [
        Reading(NOW, MN, "a21026", 12.3, "N"),
        Reading(NOW, MN, "a21002", 40.0, "M"),
    ]
    assert all(type(r.value) is float for r in out.readings)


def test_payload_mn_matching_topic_is_accepted():
    out = run(msg(rec({"a21026": 1}, mn=MN)))
    assert out.dead is None and [r.mn for r in out.readings] == [MN]


def test_oversized_checked_first_and_keeps_mn():
    pol = Policy(max_payload_bytes=10)
    out = run(msg(payload=b"x" * 11), policy=pol)
    dead_only(out, DeadReason.OVERSIZED)
    assert out.dead.mn == MN
    assert "11 bytes" in out.dead.detail


def test_payload_at_the_size_limit_is_not_oversized():
    payload = json.dumps(rec({"a21026": 1})).encode()
    out = run(msg(payload=payload), policy=Policy(max_payload_bytes=len(payload)))
    assert out.dead is None and len(out.readings) == 1


def test_oversized_on_a_bad_topic_is_oversized_without_mn():
    out = run(msg(payload=b"x" * 11, topic="nope"), policy=Policy(max_payload_bytes=10))
    dead_only(out, DeadReason.OVERSIZED)
    assert out.dead.mn is None


def test_bad_topic():
    out = run(msg(rec({"a21026": 1}), topic="devices/MN1/status"))
    dead_only(out, DeadReason.BAD_TOPIC)
    assert out.dead.mn is None
    assert "devices/MN1/status" in out.dead.detail


def test_unknown_device():
    out = run(msg(rec({"a21026": 1}), topic="devices/MN9/telemetry"))
    dead_only(out, DeadReason.UNKNOWN_DEVICE)
    assert out.dead.mn == "MN9"


def test_device_mismatch_between_payload_and_topic():
    out = run(msg(rec({"a21026": 1}, mn="MN2")))
    dead_only(out, DeadReason.DEVICE_MISMATCH)
    assert out.dead.mn == MN
    assert "MN2" in out.dead.detail


def test_device_mismatch_inside_a_batch():
    out = run(msg([rec({"a21026": 1}, mn=MN), rec({"a21026": 2}, mn="MN2")]))
    dead_only(out, DeadReason.DEVICE_MISMATCH)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", DeadReason.MALFORMED_JSON),
        (b"\xff\xfe\x00", DeadReason.NOT_UTF8),
        (b"[]", DeadReason.SCHEMA),
        (b'{"ts": "2026-11-26T00:00:00Z"}', DeadReason.SCHEMA),
        (b"##0101QN=20260101;CN=2011;", DeadReason.HJ212_LENGTH_MISMATCH),
        (b'{"ts": "2026-11-26T00:00:00", "values": {"a21026": 1}}', DeadReason.BAD_TIMESTAMP),
        (b'{"ts": 1764115200, "values": {"a21026": 1}}', DeadReason.BAD_TIMESTAMP),
    ],
)
def test_decode_errors_become_dead_letters(payload, reason):
    out = run(msg(payload=payload))
    dead_only(out, reason)
    assert out.dead.mn == MN


@pytest.mark.parametrize(
    "reason",
    [DeadReason.OVERSIZED, DeadReason.BAD_TOPIC, DeadReason.MALFORMED_JSON, DeadReason.BAD_VALUE],
)
def test_raw_payload_kept_byte_for_byte(reason):
    raw = b'{"ts": "2026-11-26T00:00:00Z",\r\n "values": {"a21026": NaN}}  \x00'
    topic, pol = TOPIC, POLICY
    if reason == DeadReason.OVERSIZED:
        pol = Policy(max_payload_bytes=8)
    elif reason == DeadReason.BAD_TOPIC:
        topic = "elsewhere"
    elif reason == DeadReason.BAD_VALUE:
        raw = b'{"ts": "2026-11-26T00:00:00Z",\r\n "values": {"a21026": NaN, "a21002": 1}}'
    m = InboundMessage(topic, raw, NOW)
    out = process(m, KNOWN, pol)
    assert out.dead is not None
    assert out.dead.reason == reason
    assert out.dead.payload == raw
    assert out.dead.topic == topic
    assert out.dead.received_at == NOW


# -- timestamps -------------------------------------------------------------------------


def test_future_timestamp_beyond_tolerance():
    out = run(msg(rec({"a21026": 1}, ts=NOW + timedelta(minutes=5, seconds=1))))
    dead_only(out, DeadReason.FUTURE_TIMESTAMP)


def test_future_timestamp_within_tolerance_is_accepted():
    out = run(msg(rec({"a21026": 1}, ts=NOW + timedelta(minutes=5))))
    assert out.dead is None and len(out.readings) == 1


def test_stale_timestamp_beyond_backfill_window():
    out = run(msg(rec({"a21026": 1}, ts=NOW - timedelta(days=30, seconds=1))))
    dead_only(out, DeadReason.STALE_TIMESTAMP)
    assert "30-day" in out.dead.detail


def test_old_timestamp_inside_backfill_window_is_accepted():
    out = run(msg(rec({"a21026": 1}, ts=NOW - timedelta(days=29))))
    assert out.dead is None and len(out.readings) == 1


def test_timezone_offsets_are_compared_as_instants():
    # 08:04 at +08:00 is 00:04 UTC: 4 minutes ahead, within tolerance.
    out = run(msg(payload=b'{"ts": "2026-11-26T08:04:00+08:00", "values": {"a21026": 1}}'))
    assert out.dead is None
    assert out.readings[0].ts == NOW + timedelta(minutes=4)
    # 08:06 at +00:00 would be hours ahead.
    out = run(msg(payload=b'{"ts": "2026-11-26T08:06:00+00:00", "values": {"a21026": 1}}'))
    dead_only(out, DeadReason.FUTURE_TIMESTAMP)


def test_policy_max_future_and_max_age_are_honoured():
    pol = Policy(max_future=timedelta(0), max_age=timedelta(hours=1))
    dead_only(
        run(msg(rec({"a21026": 1}, ts=NOW + timedelta(seconds=1))), policy=pol),
        DeadReason.FUTURE_TIMESTAMP,
    )
    dead_only(
        run(msg(rec({"a21026": 1}, ts=NOW - timedelta(hours=2))), policy=pol),
        DeadReason.STALE_TIMESTAMP,
    )


# -- per-value refusals -----------------------------------------------------------------


@pytest.mark.parametrize("code", ["SO2", "a2102", "a210266", "A21026", "", "a21026 ", "1"])
def test_bad_pollutant(code):
    out = run(msg(rec({code: 1})))
    dead_only(out, DeadReason.BAD_POLLUTANT)


@pytest.mark.parametrize("code", ["a21026", "a34013", "01", "B02", "001"])
def test_good_pollutant_codes(code):
    out = run(msg(rec({code: 1})))
    assert out.dead is None and out.readings[0].pollutant == code


def test_well_formed_codes_are_remembered_up_to_a_bound_and_bad_ones_never(monkeypatch):
    monkeypatch.setattr(validate, "_GOOD_CODES", set())
    monkeypatch.setattr(validate, "_GOOD_CODES_MAX", 3)
    for i in range(6):  # more well-formed codes than the bound: all still accepted
        out = run(msg(rec({f"a{i:05d}": 1})))
        assert out.dead is None and out.readings[0].pollutant == f"a{i:05d}"
    assert {"a00000", "a00001", "a00002"} == validate._GOOD_CODES
    for _ in range(2):  # a refused code is refused again, not remembered
        dead_only(run(msg(rec({"a2102": 1}))), DeadReason.BAD_POLLUTANT)
    assert "a2102" not in validate._GOOD_CODES


def test_pollutant_code_with_trailing_newline_is_refused():
    out = run(msg(rec({"a21026\n": 1})))
    dead_only(out, DeadReason.BAD_POLLUTANT)


@pytest.mark.parametrize(
    "literal",
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "true",
        "false",
        '"12.3"',
        "null",
        "[1]",
        '{"value": "1"}',
        '{"value": null}',
        "1e400",
    ],
)
def test_bad_value(literal):
    payload = f'{{"ts": "2026-11-26T00:00:00Z", "values": {{"a21026": {literal}}}}}'.encode()
    out = run(msg(payload=payload))
    dead_only(out, DeadReason.BAD_VALUE)
    assert out.dead.detail.startswith("a21026: ")


def test_huge_integer_value_is_bad_value_not_a_crash():
    payload = b'{"ts": "2026-11-26T00:00:00Z", "values": {"a21026": 1' + b"0" * 400 + b"}}"
    out = run(msg(payload=payload))
    dead_only(out, DeadReason.BAD_VALUE)


@pytest.mark.parametrize("flag", ["n", "X", "", "NN", None, 1, True])
def test_bad_flag(flag):
    out = run(msg(rec({"a21026": {"value": 1.0, "flag": flag}})))
    dead_only(out, DeadReason.BAD_FLAG)


@pytest.mark.parametrize("flag", list("NFMSDCTB"))
def test_every_hj212_flag_is_accepted(flag):
    out = run(msg(rec({"a21026": {"value": 1.0, "flag": flag}})))
    assert out.dead is None and out.readings[0].flag == flag


def test_integer_values_become_floats():
    out = run(msg(rec({"a21026": 7})))
    assert out.readings[0].value == 7.0 and isinstance(out.readings[0].value, float)


# -- partial acceptance -----------------------------------------------------------------


def test_partial_acceptance_keeps_good_values_and_names_the_refused_ones():
    payload = (
        b'{"ts": "2026-11-26T00:00:00Z", "values": {"a21026": 1.5, "a21002": NaN, '
        b'"SO2": 3, "a34013": {"value": 2, "flag": "Q"}, "a19001": 8}}'
    )
    out = run(msg(payload=payload))
    assert [(r.pollutant, r.value) for r in out.readings] == [("a21026", 1.5), ("a19001", 8.0)]
    assert all(r.mn == MN for r in out.readings)
    d = out.dead
    assert d is not None
    assert d.reason == DeadReason.BAD_VALUE  # the first problem
    assert d.detail.startswith("3 of 5 values refused, the rest stored: ")
    assert "a21002" in d.detail and "'SO2'" in d.detail and "a34013" in d.detail
    assert "a21026" not in d.detail and "a19001" not in d.detail
    assert d.payload == payload
    assert d.mn == MN


def test_partial_acceptance_across_records():
    doc = [
        rec({"a21026": 1}, ts=NOW - timedelta(minutes=1)),
        rec({"a21026": 2}, ts=NOW + timedelta(hours=1)),
        rec({"a21026": 3}, ts=NOW),
    ]
    out = run(msg(doc))
    assert [r.value for r in out.readings] == [1.0, 3.0]
    assert out.dead.reason == DeadReason.FUTURE_TIMESTAMP
    assert out.dead.detail.startswith("1 of 3 values refused")


def test_refused_count_counts_every_value_of_a_refused_record():
    doc = [rec({"a21026": 1}), rec({"a21026": 2, "a21002": 3}, ts=NOW + timedelta(hours=1))]
    out = run(msg(doc))
    assert len(out.readings) == 1
    assert out.dead.detail.startswith("2 of 3 values refused")


def test_all_values_refused_has_no_partial_prefix():
    out = run(msg(rec({"a21026": True, "a21002": "x"})))
    dead_only(out, DeadReason.BAD_VALUE)
    assert "refused, the rest stored" not in out.dead.detail
    assert "; " in out.dead.detail


def test_detail_is_capped_at_twenty_problems():
    out = run(msg(rec({f"a{i:05d}": True for i in range(25)} | {"a99999": 1})))
    assert len(out.readings) == 1
    assert out.dead.detail.startswith("25 of 26 values refused")
    assert out.dead.detail.endswith("… 5 more")
    assert out.dead.detail.count("is not a number") == 20


# -- never raises -----------------------------------------------------------------------

_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**300), max_value=10**300),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.fixed_dictionaries({"value": st.floats(), "flag": st.text(max_size=2)}),
)
_docs = st.fixed_dictionaries(
    {
        "ts": st.one_of(
            st.datetimes(
                min_value=datetime(2000, 1, 1),
                max_value=datetime(2100, 1, 1),
                timezones=st.just(UTC),
            ).map(iso),
            st.text(max_size=30),
            st.integers(),
        ),
        "values": st.dictionaries(st.text(max_size=8), _values, max_size=4),
    },
    optional={"mn": st.sampled_from([MN, "MN2", "", "x y"])},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.one_of(_docs, st.lists(_docs, max_size=3)))
def test_process_never_raises_on_json_documents(doc):
    out = run(msg(payload=json.dumps(doc).encode()))
    assert isinstance(out, Outcome)
    assert out.readings or out.dead is not None
    assert all(r.mn == MN for r in out.readings)


@settings(max_examples=150, deadline=None)
@given(payload=st.binary(max_size=200), topic=st.sampled_from([TOPIC, "x", "devices/Q/telemetry"]))
def test_process_never_raises_on_arbitrary_bytes(payload, topic):
    out = run(InboundMessage(topic, payload, NOW))
    assert out.readings or (out.dead is not None and out.dead.payload == payload)


# -- revoked devices ------------------------------------------------------------------------


def test_revoked_device_is_dead_lettered_with_its_own_reason_and_the_revocation_note():
    out = process(msg(rec({"a21026": 1.0})), KNOWN - {MN}, POLICY, {MN: "logger stolen"})
    dead_only(out, DeadReason.DEVICE_REVOKED)
    assert out.dead is not None and out.dead.mn == MN
    assert "logger stolen" in out.dead.detail
    # the raw payload is kept as evidence
    assert out.dead.payload == msg(rec({"a21026": 1.0})).payload


def test_revocation_wins_even_if_a_stale_registry_still_lists_the_device():
    out = process(msg(rec({"a21026": 1.0})), KNOWN, POLICY, {MN: "decommissioned"})
    dead_only(out, DeadReason.DEVICE_REVOKED)


def test_topic_and_payload_disagreeing_on_the_device_is_refused_before_storing():
    out = run(msg(rec({"a21026": 1.0}, mn="MN2")))
    dead_only(out, DeadReason.DEVICE_MISMATCH)

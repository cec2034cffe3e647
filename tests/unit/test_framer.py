"""offsite.ingest.framer: cutting HJ 212 packets out of a TCP byte stream."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offsite.ingest.codecs.hj212 import BEIJING, build_data_packet, frame, parse_packet
from offsite.ingest.framer import MAX_FRAME, Event, Frame, Framer, Garbage

WS = b"\r\n\t "
P1 = (
    b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
    b"Flag=5;CP=&&RtdInterval=30&&1C80\r\n"
)
P2 = (
    b"##0094QN=20231008125115215;ST=22;CN=9011;PW=123456;MN=010000A8900016F000169DC0;"
    b"Flag=4;CP=&&QnRtn=1&&CC01\r\n"
)
P3 = build_data_packet(
    mn="AB12",
    pw="1",
    cn="2011",
    ts=datetime(2024, 3, 15, 10, tzinfo=BEIJING),
    values=[("a21026", 1.5, "N")],
)


def run(*chunks: bytes, max_frame: int = MAX_FRAME, flush: bool = True) -> list[Event]:
    f = Framer(max_frame)
    out: list[Event] = []
    for c in chunks:
        out += f.feed(c)
    if flush:
        out += f.flush()
        assert f.buffered == 0
    return out


def frames(events: list[Event]) -> list[bytes]:
    return [e.raw for e in events if isinstance(e, Frame)]


def garbage(events: list[Event]) -> list[bytes]:
    return [e.raw for e in events if isinstance(e, Garbage)]


def check_accounting(
    stream: bytes, events: list[Event], buffered: int = 0, skippable: bytes = WS
) -> None:
    """Events are slices of the stream, in order; what lies between them is whitespace;
    Frame + Garbage + skipped + still buffered == bytes fed."""
    pos = 0
    skipped = 0
    end = len(stream) - buffered
    for e in events:
        assert e.raw, "empty event"
        k = pos
        while stream[k : k + len(e.raw)] != e.raw:
            assert k < end and stream[k] in skippable, (
                f"bytes {stream[pos : k + 1]!r} before {e!r} were dropped"
            )
            k += 1
        skipped += k - pos
        pos = k + len(e.raw)
    assert pos <= end
    assert stream[pos:end].strip(skippable) == b"", f"tail {stream[pos:end]!r} was dropped"
    skipped += end - pos
    total = sum(len(e.raw) for e in events)
    assert total + skipped + buffered == len(stream)


# -- examples -----------------------------------------------------------------------------


def test_one_packet():
    assert run(P1) == [Frame(P1)]


def test_several_packets_in_one_read():
    assert run(P1 + P2 + P3) == [Frame(P1), Frame(P2), Frame(P3)]


def test_packet_across_reads_byte_by_byte():
    f = Framer()
    out: list[Event] = []
    for i in range(len(P1)):
        out += f.feed(P1[i : i + 1])
        if i < len(P1) - 1:
            assert out == []
            assert f.buffered == i + 1
    assert out == [Frame(P1)]
    assert f.buffered == 0 and f.flush() == []


def test_split_inside_the_crlf():
    assert run(P1[:-1], P1[-1:] + P2[:3], P2[3:]) == [Frame(P1), Frame(P2)]


def test_split_inside_the_hash_hash():
    assert run(b"junk#", b"#" + P1[2:]) == [
        Garbage(b"junk", "bytes outside any ## … CRLF packet"),
        Frame(P1),
    ]


def test_noise_between_packets_is_reported():
    out = run(b"hello" + P1 + b"\x01\x02" + P2 + b"bye")
    assert frames(out) == [P1, P2]
    assert garbage(out) == [b"hello", b"\x01\x02", b"bye"]
    assert all(e.reason for e in out if isinstance(e, Garbage))


def test_whitespace_between_packets_is_skipped():
    out = run(b"\r\n" + P1 + b"  \r\n\t" + P2 + b"\r\n\r\n")
    assert out == [Frame(P1), Frame(P2)]


def test_noise_with_surrounding_whitespace_is_reported_whole():
    out = run(P1 + b" x \r\n" + P2)
    assert out == [Frame(P1), Garbage(b" x \r\n", out[1].reason), Frame(P2)]


def test_missing_crlf_with_right_length_gives_two_frames():
    out = run(P1[:-2] + P2 + P3[:-2] + P1)
    assert out == [Frame(P1[:-2]), Frame(P2), Frame(P3[:-2]), Frame(P1)]
    for e in out:
        parse_packet(e.raw)


@pytest.mark.parametrize(
    "cut", [len(P1) - 2, len(P1) - 1, len(P1), len(P1) + 1, len(P1) + 6, len(P1) + 20]
)
def test_missing_crlf_split_across_reads(cut):
    stream = P1[:-2] + P2
    assert run(stream[:cut], stream[cut:]) == [Frame(P1[:-2]), Frame(P2)]


def test_missing_crlf_on_the_last_packet_is_reported_at_flush():
    f = Framer()
    assert f.feed(P1[:-2]) == []
    assert f.buffered == len(P1) - 2
    out = f.flush()
    assert out == [Garbage(P1[:-2], "connection closed inside a packet")]
    assert f.buffered == 0 and f.flush() == []


def test_flush_reports_an_unfinished_packet():
    f = Framer()
    assert f.feed(P1 + P2[:40]) == [Frame(P1)]
    (g,) = f.flush()
    assert isinstance(g, Garbage) and g.raw == P2[:40] and "closed" in g.reason


def test_flush_reports_a_lone_trailing_hash():
    f = Framer()
    assert f.feed(P1 + b"#") == [Frame(P1)]
    assert f.buffered == 1
    assert garbage(f.flush()) == [b"#"]


def test_flush_of_nothing():
    assert Framer().flush() == []
    assert run(b"") == []
    assert run(b"\r\n  ") == []


def test_frame_longer_than_max_frame_without_crlf_is_garbage():
    body = b"##0200" + b"x" * 100
    f = Framer(max_frame=50)
    out = f.feed(body)
    assert len(out) == 1 and isinstance(out[0], Garbage)
    assert out[0].raw == body and "50" in out[0].reason
    assert f.buffered == 0
    # the stream recovers at the next packet
    assert f.feed(P2) == [Frame(P2)]


def test_oversize_garbage_is_cut_at_the_next_header():
    f = Framer(max_frame=150)
    junk = b"##9999" + b"y" * 200
    out = f.feed(junk + P2[:20])
    assert out == [Garbage(junk, out[0].reason)]
    assert f.feed(P2[20:]) == [Frame(P2)]


def test_within_max_frame_it_waits():
    f = Framer(max_frame=len(P1))
    assert f.feed(P1[:-2]) == []
    assert f.feed(P1[-2:]) == [Frame(P1)]


def test_default_max_frame_fits_the_largest_packet():
    big = frame("ST=32;CN=2011;MN=AB;CP=&&a=" + "x" * (9999 - 29) + "&&")
    assert len(big) == MAX_FRAME
    assert run(big[:5000], big[5000:]) == [Frame(big)]
    parse_packet(big)


def test_frames_are_bytes_not_views():
    (e,) = run(bytearray(P1))
    assert type(e.raw) is bytes


# -- properties -----------------------------------------------------------------------------


@st.composite
def packets(draw):
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.sampled_from([P1, P2, P3]))
    if kind == 1:
        text = draw(
            st.text(
                st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="#"),
                max_size=80,
            )
        )
        return frame(text)
    ts = datetime(2024, 1, 1, tzinfo=BEIJING)
    vals = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["a21026", "a21002", "w01018"]),
                st.floats(-1e6, 1e6),
                st.sampled_from("NMD"),
            ),
            max_size=4,
        )
    )
    return build_data_packet(mn="AB", pw="1", cn="2051", ts=ts, values=vals)


# garbage between packets (without "#" or NUL, so the expected frame count stays exact)
noise = st.binary(max_size=30).map(lambda b: b.replace(b"#", b"").replace(b"\x00", b""))
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def chunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    edges = [0, *points, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(edges)]


@FAST
@given(
    st.lists(packets(), min_size=0, max_size=6),
    st.data(),
    st.lists(st.integers(0, 10_000), max_size=12),
)
def test_stream_of_packets_and_noise_in_any_chunks(pkts, data, cuts):
    gaps = [data.draw(noise) for _ in range(len(pkts) + 1)]
    stream = gaps[0] + b"".join(p + g for p, g in zip(pkts, gaps[1:], strict=True))
    f = Framer()
    events: list[Event] = []
    fed = 0
    for c in chunked(stream, cuts):
        events += f.feed(c)
        fed += len(c)
        check_accounting(stream[:fed], events, f.buffered)
    events += f.flush()
    assert frames(events) == pkts
    check_accounting(stream, events)
    # noise that is not pure whitespace is reported between the right frames
    idx = 0
    between: list[bytes] = [b""]
    for e in events:
        if isinstance(e, Frame):
            idx += 1
            between.append(b"")
        else:
            between[idx] += e.raw
    for g, seen in zip(gaps, between, strict=True):
        assert seen.translate(None, WS) == g.translate(None, WS)


@FAST
@given(st.lists(packets(), min_size=2, max_size=5), st.lists(st.integers(0, 10_000), max_size=8))
def test_packets_without_crlf_in_any_chunks(pkts, cuts):
    stream = b"".join(p[:-2] for p in pkts[:-1]) + pkts[-1]
    events: list[Event] = []
    f = Framer()
    for c in chunked(stream, cuts):
        events += f.feed(c)
    events += f.flush()
    assert frames(events) == [p[:-2] for p in pkts[:-1]] + [pkts[-1]]
    assert garbage(events) == []


@FAST
@given(st.binary(max_size=300), st.lists(st.integers(0, 10_000), max_size=10), st.integers(10, 200))
def test_arbitrary_bytes_are_all_accounted_for(stream, cuts, max_frame):
    f = Framer(max_frame)
    events: list[Event] = []
    fed = 0
    for c in chunked(stream, cuts):
        events += f.feed(c)
        fed += len(c)
        check_accounting(stream[:fed], events, f.buffered, WS + b"\x00")
    events += f.flush()
    check_accounting(stream, events, 0, WS + b"\x00")


@FAST
@given(st.binary(max_size=200).map(lambda b: b.replace(b"\r\n", b"")), st.integers(20, 100))
def test_buffer_stays_bounded_without_crlf(stream, max_frame):
    f = Framer(max_frame)
    for i in range(0, len(stream), 7):
        f.feed(stream[i : i + 7])
        assert f.buffered <= max_frame + 7


# -- known bugs -----------------------------------------------------------------------------


@pytest.mark.parametrize("noise_bytes", [b"#", b"x#", b"##", b"x##y", b"###"])
def test_stray_hash_in_noise_does_not_swallow_the_next_packet(noise_bytes):
    assert frames(run(P2 + noise_bytes + P1 + P2)) == [P2, P1, P2]


def test_truncated_packet_does_not_swallow_the_next_packet():
    out = run(P1[:50] + P2)
    assert frames(out)[-1:] == [P2]


def test_nul_noise_is_reported():
    out = run(P1 + b"\x00\x00" + P2)
    assert garbage(out) == [b"\x00\x00"]


def test_a_header_like_run_inside_a_packet_does_not_cut_it():
    from datetime import UTC, datetime

    from offsite.ingest.codecs.hj212 import build_data_packet, parse_packet

    p = build_data_packet(
        mn="AB",
        pw="x##1234",
        cn="2011",
        ts=datetime(2026, 1, 1, tzinfo=UTC),
        values=[("a21026", 1.0, "N")],
    )
    events = Framer().feed(p + p)
    assert [type(e) for e in events] == [Frame, Frame]
    assert parse_packet(events[0].raw).pw == "x##1234"

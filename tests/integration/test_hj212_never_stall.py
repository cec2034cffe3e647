"""HJ 212 loggers never stall, on the real gateway and PostgreSQL, each checked with a
logger that waits for every answer before sending the next (``LockstepLogger``):
the frame deadline runs from a packet's first byte; a refused packet is answered once
its dead letter has committed; each part of a split packet is kept as it arrives and
answered after its own commit, and survives a gateway restart between parts;
``crc_compat`` takes CRC-16/MODBUS in both byte orders and records which."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from offsite.core.registry import registry_from_dict
from offsite.ingest.codecs import hj212
from offsite.ingest.service import IngestService
from offsite.simulators.tcp_logger import LockstepLogger
from tests.integration.helpers import make_settings, register, scalar, wait_for

pytestmark = pytest.mark.integration

MN = "077777A8900016F000169DC0"
MN_COMPAT = "077777A8900016F000169DC1"
PW = "123456"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E8",
                "name": "Lock Step Power",
                "points": [
                    {
                        "id": "E8-P1",
                        "kind": "flue_gas",
                        "limits": {"a21026": 35.0},
                        "devices": [
                            {"mn": MN, "interval_s": 60, "password": PW},
                            {"mn": MN_COMPAT, "interval_s": 60, "password": PW, "crc_compat": True},
                        ],
                    }
                ],
            }
        ]
    }
)


@contextmanager
def _gateway(db_url: str, mqtt_url: str, topic: str, **kw: Any) -> Iterator[IngestService]:
    settings = make_settings(
        db_url,
        mqtt_url,
        topic,
        gateway_port=0,
        gateway_idle_timeout_s=30.0,
        gateway_frame_timeout_s=1.0,
        rules_runner="external",
        **kw,
    )
    svc = IngestService(settings, db_url, None, gateway=True)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()
        assert svc.error is None


def _logger(svc: IngestService) -> LockstepLogger:
    assert svc.gateway is not None
    return LockstepLogger("127.0.0.1", svc.gateway.port, response_timeout_s=5.0)


def _packet(
    ts: datetime, so2: float, *, mn: str = MN, pw: str = PW, crc: str = "standard"
) -> bytes:
    return hj212.build_data_packet(
        mn=mn, pw=pw, cn="2011", ts=ts, st="31", flag=5, crc=crc, values=[("a21026", so2, "N")]
    )


def _split(ts: datetime, n: int) -> list[bytes]:
    qn, dt = hj212.qn_of(ts), hj212.data_time(ts)
    codes = ["a21026", "a21002", "a34013", "a19001"][:n]
    return [
        hj212.frame(
            f"QN={qn};ST=31;CN=2011;PW={PW};MN={MN};Flag=7;PNUM={n};PNO={i + 1};"
            f"CP=&&DataTime={dt};{code}-Rtd={10.0 + i},{code}-Flag=N&&"
        )
        for i, code in enumerate(codes)
    ]


def _answer_of(raw: bytes | None) -> tuple[str, str | None] | None:
    if raw is None:
        return None
    p = hj212.parse_packet(raw)
    return (p.cn, p.qn)


def test_a_trickled_packet_is_cut_at_the_frame_deadline(db_url, mqtt_url, unique_topic) -> None:
    register(db_url, REGISTRY)
    raw = _packet(datetime.now(UTC).replace(microsecond=0), 5.0)
    with _gateway(db_url, mqtt_url, unique_topic) as svc, _logger(svc) as log:
        # one byte every 0.25 s: each read came well within the 1 s frame timeout, which
        # restarted on every read, so the packet used to stay open for as long as it took
        ex = log.exchange(raw, trickle_s=0.25, resend=False)
        assert svc.gateway is not None and svc.gateway.stats.timeouts == 1
    assert ex.closed and not ex.answered
    with psycopg.connect(db_url) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM dead_letters")]
    assert reasons == ["hj212_garbage"]  # the unfinished bytes, kept as evidence
    assert scalar(db_url, "SELECT count(*) FROM readings") == 0


def test_refused_packets_are_answered_once_their_dead_letter_committed(
    db_url, mqtt_url, unique_topic
) -> None:
    register(db_url, REGISTRY)
    now = datetime.now(UTC).replace(microsecond=0)
    stale = _packet(now - timedelta(days=40), 1.0)  # older than the 30-day backfill window
    wrong_pw = _packet(now - timedelta(minutes=2), 2.0, pw="000000")
    good = _packet(now - timedelta(minutes=1), 3.0)
    with _gateway(db_url, mqtt_url, unique_topic) as svc, _logger(svc) as log:
        exchanges = log.run([stale, wrong_pw, good])
    # before: the stale packet got no answer, and a waiting logger stalled on it
    assert [_answer_of(e.answer) for e in exchanges] == [
        ("9014", hj212.parse_packet(p).qn) for p in (stale, wrong_pw, good)
    ]
    with psycopg.connect(db_url) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM dead_letters ORDER BY id")]
    assert reasons == ["stale_timestamp", "hj212_wrong_password"]
    assert scalar(db_url, "SELECT count(*) FROM readings") == 1


def test_each_split_part_is_answered_after_its_own_commit(db_url, mqtt_url, unique_topic) -> None:
    register(db_url, REGISTRY)
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    parts = _split(ts, 3)
    with _gateway(db_url, mqtt_url, unique_topic) as svc, _logger(svc) as log:
        for i, part in enumerate(parts[:-1]):
            ex = log.exchange(part, resend=False)
            # before: no part was answered until every part had arrived, so this stalled
            assert _answer_of(ex.answer) == ("9014", hj212.qn_of(ts))
            assert scalar(db_url, "SELECT count(*) FROM hj212_split_parts") == i + 1
            assert scalar(db_url, "SELECT count(*) FROM readings") == 0  # not half-stored
        assert log.exchange(parts[-1], resend=False).answered
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT pollutant, value FROM readings ORDER BY value").fetchall()
        pnos = [r for (r,) in conn.execute("SELECT pno FROM packets ORDER BY pno")]
    assert rows == [("a21026", 10.0), ("a21002", 11.0), ("a34013", 12.0)]
    assert pnos == [1, 2, 3]
    assert scalar(db_url, "SELECT count(*) FROM hj212_split_parts") == 0


def test_split_parts_survive_a_gateway_restart(db_url, mqtt_url, unique_topic) -> None:
    register(db_url, REGISTRY)
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    first, second = _split(ts, 2)
    with _gateway(db_url, mqtt_url, unique_topic) as svc, _logger(svc) as log:
        assert log.exchange(first, resend=False).answered
    # the gateway went away between the parts; the logger reconnects to the new one
    with _gateway(db_url, mqtt_url, unique_topic) as svc, _logger(svc) as log:
        assert log.exchange(second, resend=False).answered
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT pollutant, value FROM readings ORDER BY value").fetchall()
    assert rows == [("a21026", 10.0), ("a21002", 11.0)]


def test_an_incomplete_split_is_dead_lettered_with_its_parts(
    db_url, mqtt_url, unique_topic
) -> None:
    register(db_url, REGISTRY)
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    parts = _split(ts, 3)
    with _gateway(db_url, mqtt_url, unique_topic, hj212_split_timeout_s=0.5) as svc:
        with _logger(svc) as log:
            assert log.exchange(parts[0], resend=False).answered
            assert log.exchange(parts[2], resend=False).answered
        dead = wait_for(
            lambda: scalar(
                db_url, "SELECT payload FROM dead_letters WHERE reason = 'hj212_incomplete_split'"
            ),
            what="the incomplete split dead-lettered",
        )
    assert bytes(dead) == parts[0] + parts[2]
    assert scalar(db_url, "SELECT detail FROM dead_letters").startswith(
        "split packet CN=2011 QN=" + hj212.qn_of(ts) + ": parts [1, 3] of 3"
    )
    assert scalar(db_url, "SELECT count(*) FROM hj212_split_parts") == 0


def test_crc_compat_takes_both_modbus_byte_orders(db_url, mqtt_url, unique_topic) -> None:
    register(db_url, REGISTRY)
    now = datetime.now(UTC).replace(microsecond=0)
    low_first = _packet(now - timedelta(minutes=2), 1.0, mn=MN_COMPAT, crc="modbus_swapped")
    high_first = _packet(now - timedelta(minutes=1), 2.0, mn=MN_COMPAT, crc="modbus")
    with _gateway(db_url, mqtt_url, unique_topic) as svc, _logger(svc) as log:
        assert all(e.answered for e in log.run([low_first, high_first]))
    with psycopg.connect(db_url) as conn:
        seen = conn.execute("SELECT crc_variant FROM packets ORDER BY qn").fetchall()
    assert seen == [("modbus_swapped",), ("modbus",)]
    assert scalar(db_url, "SELECT count(*) FROM readings") == 2

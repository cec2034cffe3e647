"""HJ 212 end to end on real PostgreSQL: loggers over TCP through the gateway (framing,
responses after commit, split packets, bad packets, noisy and idle connections), and
HJ 212 packets inside MQTT payloads."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from offsite.core.registry import registry_from_dict
from offsite.ingest.codecs import hj212
from offsite.ingest.service import IngestService
from tests.integration.helpers import (
    make_settings,
    publish_raw,
    register,
    running_ingest,
    scalar,
    topic_for,
    wait_for,
)

pytestmark = pytest.mark.integration

MN = "088888A8900016F000169DC0"
MN2 = "088888A8900016F000169DC1"
PW = "123456"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E9",
                "name": "Gateway Test Power",
                "points": [
                    {
                        "id": "E9-P1",
                        "kind": "flue_gas",
                        "o2_ref": 6.0,
                        "limits": {"a21026": 35.0},
                        "devices": [
                            {"mn": MN, "interval_s": 60, "password": PW},
                            {"mn": MN2, "interval_s": 60, "password": PW, "crc_compat": True},
                        ],
                    }
                ],
            }
        ]
    }
)


def _packet(
    ts: datetime,
    so2: float,
    *,
    mn: str = MN,
    pw: str = PW,
    cn: str = "2011",
    flag: int = 5,
    crc: str = "standard",
) -> bytes:
    return hj212.build_data_packet(
        mn=mn,
        pw=pw,
        cn=cn,
        ts=ts,
        st="31",
        flag=flag,
        crc=crc,
        values=[("a21026", so2, "N"), ("a19001", 8.2, "N")],
    )


def _split(ts: datetime) -> list[bytes]:
    qn = hj212.qn_of(ts)
    dt = hj212.data_time(ts)
    parts = [
        f"DataTime={dt};a21026-Rtd=11.0,a21026-Flag=N",
        f"DataTime={dt};a21002-Rtd=30.5,a21002-Flag=N",
    ]
    return [
        hj212.frame(f"QN={qn};ST=31;CN=2011;PW={PW};MN={MN};Flag=7;PNUM=2;PNO={i + 1};CP=&&{cp}&&")
        for i, cp in enumerate(parts)
    ]


class Logger:
    """A data logger's side of the TCP connection."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def replies(self, n: int, timeout: float = 15.0) -> list[hj212.Packet]:
        deadline = time.monotonic() + timeout
        out: list[hj212.Packet] = []
        while len(out) < n:
            while b"\r\n" not in self.buf:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = self.sock.recv(4096)
                assert chunk, f"connection closed after {len(out)} of {n} replies"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            out.append(hj212.parse_packet(line + b"\r\n"))
        return out

    def closed_by_peer(self, timeout: float = 10.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(4096):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def gateway(db_url: str, unique_topic: str, mqtt_url: str):
    register(db_url, REGISTRY)
    settings = make_settings(
        db_url,
        mqtt_url,
        unique_topic,
        gateway_port=0,
        gateway_max_garbage_bytes=2000,
        gateway_idle_timeout_s=2.0,
        gateway_frame_timeout_s=1.0,
    )
    svc = IngestService(settings, db_url, None, gateway=True)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()
        assert svc.error is None


def test_loggers_over_tcp_get_replies_after_commit(db_url: str, gateway: IngestService) -> None:
    assert gateway.gateway is not None
    port = gateway.gateway.port
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    packets = [_packet(t0 + timedelta(seconds=i), 10.0 + i) for i in range(6)]
    log = Logger(port)
    # two packets in one write, one cut in three reads, noise between packets
    log.send(packets[0] + packets[1])
    log.send(packets[2][:10])
    time.sleep(0.05)
    log.send(packets[2][10:30])
    time.sleep(0.05)
    log.send(packets[2][30:] + b"\x00\x01noise\r\n" + packets[3])
    replies = log.replies(4)
    # each reply is the data response to its packet, sent once the readings committed
    sent = [hj212.parse_packet(p) for p in packets[:4]]
    assert [(r.cn, r.st, r.qn, r.mn) for r in replies] == [("9014", "91", p.qn, MN) for p in sent]
    assert scalar(db_url, "SELECT count(*) FROM readings") == 8
    # a packet without the reply bit gets no reply; its readings are stored all the same
    log.send(_packet(t0 + timedelta(seconds=10), 12.0, flag=4) + packets[4])
    assert [r.qn for r in log.replies(1)] == [hj212.parse_packet(packets[4]).qn]
    wait_for(lambda: scalar(db_url, "SELECT count(*) FROM readings") == 12, what="12 readings")
    # a logger that resends (it missed our reply) stores nothing twice
    log.send(packets[0])
    assert log.replies(1)[0].qn == sent[0].qn
    assert scalar(db_url, "SELECT count(*) FROM readings") == 12
    log.close()

    with psycopg.connect(db_url) as conn:
        kinds = {r[0] for r in conn.execute("SELECT DISTINCT kind FROM readings")}
        raw = conn.execute("SELECT count(*), min(transport), min(cn) FROM packets").fetchone()
        dead = conn.execute("SELECT reason, payload FROM dead_letters").fetchall()
    assert kinds == {"rtd"}
    assert raw == (6, "tcp", "2011")  # the resent packet is archived once
    assert [(r, bytes(p)) for r, p in dead] == [("hj212_garbage", b"\x00\x01noise\r\n")]


def test_bad_packets_are_dead_lettered_with_their_reason_and_answered_if_they_parse(
    db_url: str, gateway: IngestService
) -> None:
    """A refused packet is answered once its dead letter has committed (9014 says
    "received"; the dead letter is the record), or a waiting logger resends it forever;
    bytes that do not parse as a packet name no QN to answer."""
    assert gateway.gateway is not None
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    good = _packet(t0, 10.0)
    bad = {
        "hj212_wrong_password": _packet(t0, 1.0, pw="000000"),
        "unknown_device": _packet(t0, 1.0, mn="0999999999"),
        "hj212_crc_mismatch": good[:-6] + b"0000\r\n",
        "hj212_length_mismatch": b"##0999" + good[6:],
        "hj212_unknown_cn": hj212.frame(
            f"QN=20260101000000000;ST=31;CN=7777;PW={PW};MN={MN};Flag=5;CP=&&&&"
        ),
        "hj212_missing_field": hj212.frame(
            f"QN=20260101000000000;ST=31;CN=2011;PW={PW};MN={MN};Flag=5;CP=&&a21026-Rtd=1&&"
        ),
        "bad_timestamp": hj212.frame(
            f"QN=20260101000000000;ST=31;CN=2011;PW={PW};MN={MN};"
            f"Flag=5;CP=&&DataTime=20261399000000;a21026-Rtd=1&&"
        ),
    }
    swapped_refused = _packet(t0 + timedelta(seconds=1), 1.0, crc="modbus_swapped")
    swapped_ok = _packet(t0 + timedelta(seconds=2), 2.0, mn=MN2, crc="modbus_swapped")
    sent = [*bad.values(), swapped_refused, swapped_ok, good]
    answerable = []
    for raw in sent:
        try:
            answerable.append(hj212.parse_packet(raw))
        except hj212.DecodeError:
            continue
    assert len(answerable) == 8  # all but the CRC and length mismatches
    log = Logger(gateway.gateway.port)
    log.send(b"".join(sent))
    replies = log.replies(len(answerable))
    assert sorted((r.mn, r.qn) for r in replies) == sorted((p.mn, p.qn) for p in answerable)
    log.close()
    with psycopg.connect(db_url) as conn:
        reasons = [r[0] for r in conn.execute("SELECT reason FROM dead_letters ORDER BY id")]
        detail = conn.execute(
            "SELECT detail FROM dead_letters WHERE payload = %s", (swapped_refused,)
        ).fetchone()
    assert reasons == [*bad, "hj212_crc_mismatch"]
    assert detail is not None and "MODBUS" in detail[0] and "crc_compat" in detail[0]
    assert scalar(db_url, "SELECT count(*) FROM readings") == 4


def test_split_packets_are_reassembled_before_commit(db_url: str, gateway: IngestService) -> None:
    assert gateway.gateway is not None
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    first, second = _split(ts)
    log = Logger(gateway.gateway.port)
    log.send(second)  # out of order
    time.sleep(0.3)
    assert scalar(db_url, "SELECT count(*) FROM readings") == 0  # held, not half-stored
    log.send(first)
    replies = log.replies(2)
    assert {r.qn for r in replies} == {hj212.qn_of(ts)}
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT pollutant, value FROM readings ORDER BY pollutant").fetchall()
        pnos = [r[0] for r in conn.execute("SELECT pno FROM packets ORDER BY pno")]
    assert rows == [("a21002", 30.5), ("a21026", 11.0)] and pnos == [1, 2]
    log.close()


def test_noisy_and_idle_connections_are_cut_off_without_harming_others(
    db_url: str, gateway: IngestService
) -> None:
    assert gateway.gateway is not None
    port = gateway.gateway.port
    noisy = Logger(port)
    idle = Logger(port)
    slow = Logger(port)
    slow.send(b"##0101QN=2026")  # an unfinished packet: frame timeout 1 s
    noisy.send(b"x" * 5000)
    good = Logger(port)  # connected while the others misbehave
    good.send(_packet(datetime.now(UTC).replace(microsecond=0), 10.0))
    assert good.replies(1)[0].cn == "9014"
    assert noisy.closed_by_peer()
    assert slow.closed_by_peer(timeout=10)
    assert idle.closed_by_peer(timeout=10)  # idle timeout 2 s
    good = Logger(port)
    good.send(_packet(datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1), 10.0))
    assert good.replies(1)[0].cn == "9014"
    assert gateway.gateway.stats.cut_off == 1 and gateway.gateway.stats.timeouts >= 2
    reasons = {r for (r,) in psycopg.connect(db_url).execute("SELECT reason FROM dead_letters")}
    assert reasons == {"hj212_garbage"}
    good.close()


def test_hj212_inside_mqtt_payloads(db_url: str, mqtt_url: str, unique_topic: str) -> None:
    register(db_url, REGISTRY)
    settings = make_settings(db_url, mqtt_url, unique_topic)
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    hourly = hj212.frame(
        f"QN={hj212.qn_of(ts)};ST=31;CN=2061;PW={PW};MN={MN};Flag=4;CP=&&DataTime="
        f"{hj212.data_time(ts)};a21026-Min=8.0,a21026-Avg=12.5,a21026-Max=20.0,"
        f"a21026-ZsAvg=14.1,a21026-Flag=N&&"
    )
    with running_ingest(settings) as ingest:
        publish_raw(
            mqtt_url,
            [
                (topic_for(unique_topic, MN), hourly),
                (topic_for(unique_topic, MN2), _packet(ts, 50.0)),  # MN of another device
            ],
        )
        wait_for(
            lambda: ingest.stats.messages == 2 and ingest.stats.batches >= 1,
            what="both messages processed",
        )
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM dead_letters") == 1,
            what="the mismatch dead-lettered",
        )
    with psycopg.connect(db_url) as conn:
        rows = dict(conn.execute("SELECT kind, value FROM readings").fetchall())
        dead = conn.execute("SELECT reason FROM dead_letters").fetchone()
    assert rows == {"hour": 12.5, "hour.min": 8.0, "hour.max": 20.0, "hour.zs": 14.1}
    assert dead == ("device_mismatch",)


def test_simulated_loggers_over_tcp_all_stored_and_answered(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    from offsite.simulators.scenarios import build_fleet
    from offsite.simulators.tcp_logger import run_tcp_loggers

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    fleet = build_fleet(30, seed=5, start=start, rate_s=60.0, faults=())
    register(db_url, fleet.registry)
    settings = make_settings(db_url, mqtt_url, unique_topic, gateway_port=0)
    svc = IngestService(settings, db_url, None, gateway=True)
    svc.start()
    try:
        assert svc.gateway is not None
        st = run_tcp_loggers(
            fleet,
            "127.0.0.1",
            svc.gateway.port,
            duration_s=20 * 60,
            start=start,
            realtime=False,
            connections=30,
        )
        assert svc.gateway.stats.connections == 30
    finally:
        svc.stop()
    assert st.packets == 30 * 20 and st.responses == st.packets and st.missing == 0
    assert scalar(db_url, "SELECT count(*) FROM readings") == st.readings
    assert scalar(db_url, "SELECT count(*) FROM packets") == st.packets
    assert scalar(db_url, "SELECT count(*) FROM dead_letters") == 0

"""Simulators speaking HJ 212: passwords in the registry, a tick's packet parses back to
the same reading, the MQTT payload switch, and the TCP loggers against a tiny in-process
gateway (answers counted; silence makes them resend once and count the answer missing)."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from offsite.ingest.codecs.hj212 import BEIJING, build_response, parse_packet, to_message
from offsite.simulators.errors import PublishError
from offsite.simulators.hj212_device import Hj212Encoder, realtime_packet, system_code
from offsite.simulators.publisher import payload_encoder
from offsite.simulators.scenarios import build_fleet, device_password
from offsite.simulators.tcp_logger import TcpStats, run_tcp_loggers

T0 = datetime(2025, 3, 1, 0, 0, 0, 250_000, tzinfo=UTC)


# --- registry passwords ----------------------------------------------------------------------


def test_passwords_are_six_digits_deterministic_and_change_nothing_else() -> None:
    a = build_fleet(12, seed=3, start=T0)
    b = build_fleet(12, seed=3, start=T0)
    pws = [d.password for d in a.registry.devices]
    assert pws == [d.password for d in b.registry.devices]
    assert all(pw is not None and len(pw) == 6 and pw.isdigit() for pw in pws)
    assert len(set(pws)) > 1
    assert [d.password for d in build_fleet(12, seed=4, start=T0).registry.devices] != pws
    assert device_password(3, 0) == device_password(3, 0) != device_password(3, 1)
    # the rest of the fleet is what it was without passwords: no random number moved
    assert a.ground_truth() == b.ground_truth()
    assert a.tick(T0) == b.tick(T0)
    assert a.registry.to_dict()["enterprises"][0]["points"][0]["devices"][0]["password"]


# --- packets ----------------------------------------------------------------------------------


def test_tick_packet_parses_back_to_the_same_reading() -> None:
    fleet = build_fleet(6, seed=1, start=T0)
    enc = Hj212Encoder(fleet.registry)
    devices = {d.mn: d for d in fleet.registry.devices}
    kinds = {p.id: p.kind for p in fleet.registry.points}
    ticks = fleet.tick(T0)
    assert ticks
    for mn, values in ticks:
        packet = parse_packet(enc.packet(mn, values, T0))
        assert (packet.mn, packet.pw, packet.cn, packet.flag) == (
            mn,
            devices[mn].password,
            "2011",
            5,
        )
        assert packet.wants_reply and packet.crc_variant == "standard"
        assert packet.st == {"flue_gas": "31", "wastewater": "32"}[kinds[devices[mn].point_id]]
        assert packet.qn == enc.qn(T0)
        msg = to_message([packet])
        assert msg.mn == mn
        (record,) = msg.records
        assert record.ts == T0.replace(microsecond=0)
        assert {v.pollutant: v.value for v in record.values} == values
        assert {v.flag for v in record.values} == {"N"}
    assert {parse_packet(enc.packet(mn, v, T0)).st for mn, v in ticks} == {"31", "32"}


def test_packet_time_follows_the_zone_and_bad_input_is_refused() -> None:
    utc7 = timezone(timedelta(hours=7))
    raw = realtime_packet(mn="ABC123", pw="123456", st="31", values={"a21026": 1.5}, ts=T0, tz=utc7)
    assert b"DataTime=20250301070000" in raw
    assert to_message([parse_packet(raw)], utc7).records[0].ts == T0.replace(microsecond=0)
    with pytest.raises(PublishError):
        realtime_packet(mn="A", pw="1", st="31", values={"a21026": float("nan")}, ts=T0)
    with pytest.raises(PublishError):
        realtime_packet(mn="A", pw="1", st="31", values={}, ts=T0.replace(tzinfo=None))
    with pytest.raises(PublishError):
        system_code("air_quality")
    with pytest.raises(PublishError):
        Hj212Encoder(build_fleet(2, seed=0, start=T0).registry).packet("NOPE", {}, T0)


def test_payload_encoder_switches_protocol() -> None:
    fleet = build_fleet(4, seed=2, start=T0)
    mn, values = fleet.tick(T0)[0]
    as_json = payload_encoder(fleet.registry)(mn, T0, values)
    assert as_json.startswith(b"{")
    as_hj212 = payload_encoder(fleet.registry, "hj212")(mn, T0, values)
    assert as_hj212.startswith(b"##") and as_hj212.endswith(b"\r\n")
    assert parse_packet(as_hj212).mn == mn
    with pytest.raises(PublishError, match="protocol"):
        payload_encoder(fleet.registry, "xml")


# --- TCP loggers against an in-process gateway ------------------------------------------------


class _Gateway(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answer: bool, drop_first: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        self.drop_first = drop_first  # hang up on the first connection after one packet
        self.lock = threading.Lock()
        self.packets: list[bytes] = []
        self.connections = 0


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: _Gateway = self.server  # type: ignore[assignment]
        with server.lock:
            server.connections += 1
            hang_up = server.drop_first and server.connections == 1
        for line in self.rfile:
            packet = parse_packet(line)
            with server.lock:
                server.packets.append(line)
            if hang_up:
                return
            response = build_response(packet)
            if server.answer and response is not None:
                self.wfile.write(response)


@pytest.fixture()
def gateway(request: pytest.FixtureRequest) -> Iterator[_Gateway]:
    server = _Gateway(**getattr(request, "param", {"answer": True}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _port(server: _Gateway) -> int:
    return int(server.server_address[1])


def test_every_packet_is_answered_and_counted(gateway: _Gateway) -> None:
    fleet = build_fleet(5, seed=4, start=T0, faults=())
    snapshots: list[TcpStats] = []
    stats = run_tcp_loggers(
        fleet,
        "127.0.0.1",
        _port(gateway),
        duration_s=30,
        realtime=False,
        on_progress=snapshots.append,
        window=3,
    )
    assert stats.packets == 5 * 30 == len(gateway.packets)
    assert stats.responses == stats.packets == stats.sent
    assert (stats.missing, stats.resent, stats.unmatched, stats.awaiting) == (0, 0, 0, 0)
    assert stats.readings == sum(
        len(v) for p in gateway.packets for v in [to_message([parse_packet(p)]).records[0].values]
    )
    assert stats.connections == gateway.connections == 5
    assert snapshots[-1] == stats
    # device time replayed from the fleet's start, in Beijing time
    first = to_message([parse_packet(gateway.packets[0])], BEIJING).records[0].ts
    assert first == T0.replace(microsecond=0)


def test_a_pool_of_connections_carries_several_devices(gateway: _Gateway) -> None:
    fleet = build_fleet(7, seed=5, start=T0, faults=())
    stats = run_tcp_loggers(
        fleet, "127.0.0.1", _port(gateway), duration_s=10, realtime=False, connections=2
    )
    assert stats.connections == gateway.connections == 2
    assert stats.responses == stats.packets == 70
    assert {parse_packet(p).mn for p in gateway.packets} == {d.mn for d in fleet.devices}


@pytest.mark.parametrize("gateway", [{"answer": False}], indirect=True)
def test_silence_makes_the_logger_resend_once_and_count_missing(gateway: _Gateway) -> None:
    fleet = build_fleet(3, seed=6, start=T0, faults=())
    stats = run_tcp_loggers(
        fleet, "127.0.0.1", _port(gateway), duration_s=2, realtime=False, response_timeout_s=0.2
    )
    assert stats.packets == 6
    assert stats.resent == 6 and stats.sent == 12 == len(gateway.packets)
    assert stats.missing == 6 and stats.responses == 0
    # the resend is the same packet (same QN): the platform's key makes it harmless
    assert len(set(gateway.packets)) == 6


@pytest.mark.parametrize("gateway", [{"answer": True, "drop_first": True}], indirect=True)
def test_a_dropped_connection_is_reopened_and_its_packets_resent(gateway: _Gateway) -> None:
    fleet = build_fleet(2, seed=8, start=T0, faults=())
    stats = run_tcp_loggers(
        fleet,
        "127.0.0.1",
        _port(gateway),
        duration_s=5,
        realtime=False,
        connections=1,
        response_timeout_s=0.2,
    )
    assert stats.reconnects == 1 and gateway.connections == 2
    assert stats.responses == stats.packets == 10 and stats.missing == 0
    assert stats.resent >= 1


def test_realtime_paces_on_the_wall_clock_and_stop_ends_cleanly(gateway: _Gateway) -> None:
    fleet = build_fleet(2, seed=7, start=T0, faults=(), rate_s=0.05)
    stop = threading.Event()
    seen: list[TcpStats] = []

    def progress(s: TcpStats) -> None:
        seen.append(s)
        if len(seen) == 4:
            stop.set()

    stats = run_tcp_loggers(
        fleet, "127.0.0.1", _port(gateway), duration_s=None, stop=stop, on_progress=progress
    )
    assert stats.packets == 8 and stats.responses == 8 and stats.missing == 0
    stamps = sorted({parse_packet(p).qn for p in gateway.packets})
    assert len(stamps) == 4
    assert datetime.now(UTC) - stats.started_at < timedelta(seconds=30)  # type: ignore[operator]


def test_unreachable_gateway_raises_chained() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fleet = build_fleet(2, seed=0, start=T0)
    with pytest.raises(PublishError, match="cannot connect") as info:
        run_tcp_loggers(fleet, "127.0.0.1", port, duration_s=1, realtime=False)
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize(
    "kwargs", [{"connections": 0}, {"response_timeout_s": 0}, {"duration_s": -1}, {"window": 0}]
)
def test_bad_arguments_are_refused(kwargs: dict) -> None:
    fleet = build_fleet(1, seed=0, start=T0)
    args: dict = {"duration_s": 1, "realtime": False, **kwargs}
    with pytest.raises(PublishError):
        run_tcp_loggers(fleet, "127.0.0.1", 1, **args)

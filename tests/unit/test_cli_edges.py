"""The CLI's rough edges a new user hit, without services: every option explains itself,
every fault kind can be injected, password prompts confirm and stop cleanly, a missing
extra is named, a busy demo port gives way, and broken messages are broken for sure."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from datetime import UTC, datetime

import pytest

from offsite.cli import build_parser, main
from offsite.commands.simulate import _host_port
from offsite.core.errors import EmbeddedError, OffsiteError
from offsite.ingest.codecs import hj212
from offsite.ingest.errors import DecodeError
from offsite.simulators.errors import PublishError
from offsite.simulators.faults import FaultKind
from offsite.simulators.malformed import check_rate, corrupt, is_malformed
from offsite.simulators.scenarios import build_fleet


def _actions(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.Action]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _actions(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            out.append((path, action))
    return out


def test_every_option_of_every_command_has_help():
    missing = [
        f"{path} {'/'.join(a.option_strings) or a.dest}"
        for path, a in _actions(build_parser(), "offsite")
        if not a.help
    ]
    assert not missing, f"options without help: {missing}"


def test_simulate_offers_every_fault_kind_and_each_builds():
    for kind in FaultKind:
        args = build_parser().parse_args(["simulate", "--fault", kind.value])
        assert args.fault == [kind.value]
        fleet = build_fleet(2, seed=1, start=datetime(2026, 1, 1, tzinfo=UTC), faults=[kind])
        assert [f.kind for f in fleet.faults] == [kind]
    assert "every" not in build_parser().format_help()  # sanity: parser still renders


def test_simulate_help_names_the_gateway_and_malformed_options():
    sub = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["simulate"]
    text = sub.format_help()
    assert "--gateway HOST:PORT" in text and "--malformed SHARE" in text
    for kind in FaultKind:
        assert kind.value in text


# -- users add: the password ------------------------------------------------------------------
@pytest.fixture
def no_database(monkeypatch):
    """Fail loudly if a command reaches for the database (the prompts come first)."""

    def refuse(_settings):
        raise AssertionError("the database was opened before the password was settled")

    monkeypatch.setattr("offsite.commands.admin._db", refuse)
    monkeypatch.setenv("OFFSITE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")


def _typed(monkeypatch, *answers: str | type[BaseException]) -> list[str]:
    prompts: list[str] = []
    queue = list(answers)

    def getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        answer = queue.pop(0)
        if isinstance(answer, type):
            raise answer
        return answer

    monkeypatch.setattr("getpass.getpass", getpass)
    return prompts


def test_users_add_asks_twice_and_refuses_a_mismatch(monkeypatch, capsys, no_database):
    prompts = _typed(monkeypatch, "a long enough password", "a long enough passw0rd")
    assert main(["users", "add", "alice", "--role", "admin"]) == 2
    assert len(prompts) == 2 and "again" in prompts[1]
    err = capsys.readouterr().err
    assert "differ" in err and "Traceback" not in err


def test_users_add_on_ctrl_d_stops_with_a_message(monkeypatch, capsys, no_database):
    _typed(monkeypatch, EOFError)
    assert main(["users", "add", "alice", "--role", "admin"]) == 2
    err = capsys.readouterr().err
    assert "no password given" in err and "--no-password" in err
    assert "Traceback" not in err
    _typed(monkeypatch, "a long enough password", EOFError)  # Ctrl-D at the confirmation
    assert main(["users", "add", "alice", "--role", "admin"]) == 2
    assert "no password given" in capsys.readouterr().err


def test_users_add_refuses_an_empty_password(monkeypatch, capsys, no_database):
    _typed(monkeypatch, "")
    assert main(["users", "add", "alice", "--role", "admin"]) == 2
    assert "no password given" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(""))
    assert main(["users", "add", "alice", "--role", "admin", "--password-stdin"]) == 2
    assert "no password on standard input" in capsys.readouterr().err


# -- the embedded extra -----------------------------------------------------------------------
def test_demo_without_the_embedded_extra_says_what_to_install(monkeypatch, capsys):
    monkeypatch.delenv("OFFSITE_DATABASE_URL", raising=False)
    monkeypatch.delenv("OFFSITE_MQTT_URL", raising=False)
    monkeypatch.setitem(sys.modules, "pgserver", None)  # import pgserver → ImportError
    monkeypatch.setitem(sys.modules, "amqtt", None)
    monkeypatch.setattr(
        "offsite.embedded.services",
        lambda *a, **k: (_ for _ in ()).throw(AssertionError("started services")),
    )
    assert main(["demo", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'offsite[embedded]'" in err
    assert "pgserver" in err and "amqtt" in err and "Traceback" not in err


def test_demo_with_real_services_needs_no_extra(monkeypatch):
    from offsite.embedded import require_embedded

    monkeypatch.setitem(sys.modules, "pgserver", None)
    monkeypatch.setitem(sys.modules, "amqtt", None)
    require_embedded("postgresql://db/x", "mqtt://broker:1883")  # nothing embedded needed
    with pytest.raises(EmbeddedError, match="amqtt"):
        require_embedded("postgresql://db/x", None)


def test_embedded_postgres_without_pgserver_names_the_extra(monkeypatch, tmp_path):
    from offsite.embedded import EmbeddedPostgres

    monkeypatch.setitem(sys.modules, "pgserver", None)
    with pytest.raises(EmbeddedError, match=r"pip install 'offsite\[embedded\]'"):
        EmbeddedPostgres(tmp_path).start()


# -- the demo's port ----------------------------------------------------------------------------
def test_a_busy_default_port_gives_way_to_a_free_one():
    from offsite.demo import bind_http

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        sock, note = bind_http("127.0.0.1", busy, explicit=False)
        with sock:
            port = sock.getsockname()[1]
            assert port != busy
            assert note is not None and str(busy) in note and str(port) in note
        with pytest.raises(OffsiteError, match="OFFSITE_HTTP_PORT"):
            bind_http("127.0.0.1", busy, explicit=True)


def test_a_free_port_is_used_as_asked():
    from offsite.demo import bind_http
    from offsite.embedded import free_port

    port = free_port()
    sock, note = bind_http("127.0.0.1", port, explicit=True)
    with sock:
        assert sock.getsockname()[1] == port and note is None


def test_an_explicit_port_is_marked_as_set_by_the_user(monkeypatch):
    from offsite.core.settings import load_settings

    monkeypatch.delenv("OFFSITE_HTTP_PORT", raising=False)
    assert "http_port" not in load_settings().model_fields_set
    monkeypatch.setenv("OFFSITE_HTTP_PORT", "8123")
    assert "http_port" in load_settings().model_fields_set


# -- simulate: the gateway and broken messages --------------------------------------------------
def test_gateway_option_parses_host_and_port():
    assert _host_port("127.0.0.1:9212", "--gateway") == ("127.0.0.1", 9212)
    assert _host_port("[::1]:9212", "--gateway") == ("::1", 9212)
    for bad in ("9212", "host:", "host:http", "host:70000", ":9212"):
        with pytest.raises(OffsiteError, match="HOST:PORT"):
            _host_port(bad, "--gateway")


def test_gateway_refuses_json_and_mqtt(monkeypatch, capsys):
    monkeypatch.setenv("OFFSITE_MQTT_URL", "mqtt://127.0.0.1:1")
    monkeypatch.delenv("OFFSITE_DATABASE_URL", raising=False)
    assert main(["simulate", "--gateway", "127.0.0.1:1", "--protocol", "json"]) == 2
    assert "HJ 212 only" in capsys.readouterr().err
    assert main(["simulate", "--gateway", "127.0.0.1:1", "--transport", "mqtt"]) == 2
    assert "drop --transport mqtt" in capsys.readouterr().err


TS = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("crc", ["standard", "modbus_swapped"])
def test_a_corrupted_hj212_packet_fails_its_crc_whatever_the_flavour(crc):
    good = hj212.build_data_packet(
        mn="010000A8900016F000169DC0",
        pw="123456",
        cn="2011",
        ts=TS,
        st="31",
        flag=5,
        crc=crc,
        values=[("a21026", 12.5, "N")],
    )
    hj212.parse_packet(good)
    bad = corrupt(good)
    assert bad != good and bad.endswith(b"\r\n") and len(bad) == len(good)
    with pytest.raises(DecodeError) as err:
        hj212.parse_packet(bad)
    assert err.value.reason == hj212.CRC_MISMATCH


def test_a_corrupted_json_payload_does_not_parse():
    good = json.dumps({"ts": TS.isoformat(), "values": {"a21026": 1.0}}).encode()
    with pytest.raises(json.JSONDecodeError):
        json.loads(corrupt(good))


def test_the_malformed_share_is_deterministic_and_close_to_the_rate():
    picks = [is_malformed(0.2, 1, f"MN{i}", TS) for i in range(2000)]
    assert 0.16 < sum(picks) / len(picks) < 0.24
    assert picks == [is_malformed(0.2, 1, f"MN{i}", TS) for i in range(2000)]
    assert not any(is_malformed(0.0, 1, f"MN{i}", TS) for i in range(200))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(PublishError):
            check_rate(bad)


# -- Ctrl-C ----------------------------------------------------------------------------------
@pytest.fixture
def restore_signals():
    import signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def test_the_stop_handler_does_not_print_through_the_interrupted_stream(
    monkeypatch, restore_signals
):
    """A signal that lands while the main thread is inside print() makes a print() in the
    handler raise "reentrant call": the command then unwinds without stopping its threads
    and hangs. The handler sets the stop flag first and writes past the stream."""
    import io
    import signal

    from offsite.commands.base import Stop

    class InsidePrint(io.StringIO):
        def write(self, s: str) -> int:
            raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stdout>'>")

    monkeypatch.setattr(sys, "stdout", InsidePrint())
    stop = Stop()
    stop.install()
    handler = signal.getsignal(signal.SIGINT)
    assert callable(handler)
    handler(signal.SIGINT, None)
    assert stop.event.is_set()
    with pytest.raises(KeyboardInterrupt):  # the second Ctrl-C aborts
        handler(signal.SIGINT, None)


def test_the_stop_notice_reaches_the_terminal(monkeypatch, restore_signals):
    import os
    import signal

    from offsite.commands.base import Stop

    r, w = os.pipe()
    try:
        with os.fdopen(w, "w", closefd=False) as out:
            monkeypatch.setattr(sys, "stdout", out)
            stop = Stop()
            stop.install()
            handler = signal.getsignal(signal.SIGTERM)
            assert callable(handler)
            handler(signal.SIGTERM, None)
        assert stop.event.is_set()
        assert b"stopping" in os.read(r, 1000)
    finally:
        os.close(r)
        os.close(w)

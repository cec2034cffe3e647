"""The CLI's rough edges that need a database or a gateway: an enterprise user before the
registry is loaded, the embedded PostgreSQL's chatter, and a simulated fleet sending HJ 212
to the TCP gateway with a share of broken packets that ingest dead-letters."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from offsite.cli import main
from offsite.ingest.codecs import hj212
from offsite.ingest.service import IngestService
from tests.integration.helpers import make_settings, scalar, wait_for

pytestmark = pytest.mark.integration


def test_enterprise_user_before_the_registry_says_to_load_it(
    db_url: str, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("OFFSITE_DATABASE_URL", db_url)
    rc = main(
        ["users", "add", "ent", "--role", "enterprise", "--enterprise", "E0001", "--no-password"]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "enterprise 'E0001' is not in the registry" in err
    assert "offsite db load-registry" in err
    assert "foreign key" not in err and "Traceback" not in err
    # once the registry is loaded, the same command works
    registry = Path(__file__).resolve().parents[2] / "examples/registry.toml"
    assert main(["db", "load-registry", str(registry)]) == 0
    assert (
        main(
            [
                "users",
                "add",
                "ent",
                "--role",
                "enterprise",
                "--enterprise",
                "E0001",
                "--no-password",
            ]
        )
        == 0
    )
    assert scalar(db_url, "SELECT enterprise_id FROM users WHERE id = 'ent'") == "E0001"


def test_embedded_postgres_does_not_bury_the_output(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("OFFSITE_DATABASE_URL", raising=False)
    monkeypatch.setenv("OFFSITE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OFFSITE_LOG_FORMAT", "text")
    assert main(["db", "status"]) == 0
    registry = Path(__file__).resolve().parents[2] / "examples/registry.toml"
    assert main(["db", "load-registry", str(registry)]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["users", "add", "alice", "--role", "admin", "--password-stdin"]) == 0
    out, err = capsys.readouterr()
    assert "schema version" in out and "registry loaded" in out and "user alice" in out
    chatter = [ln for ln in (out + err).splitlines() if "pgserver" in ln and "started" not in ln]
    assert not chatter, "pgserver's INFO lines bury the output:\n" + "\n".join(chatter[:5])


def test_simulate_sends_hj212_to_the_gateway_with_broken_packets(
    db_url: str, unique_topic: str, mqtt_url: str, capsys, monkeypatch
) -> None:
    settings = make_settings(db_url, mqtt_url, unique_topic, gateway_port=0)
    svc = IngestService(settings, db_url, None, gateway=True)
    svc.start()
    try:
        assert svc.gateway is not None
        monkeypatch.setenv("OFFSITE_DATABASE_URL", db_url)
        monkeypatch.delenv("OFFSITE_MQTT_URL", raising=False)
        args = ["simulate", "--devices", "4", "--duration", "60", "--fast", "--seed", "5"]
        gateway = f"127.0.0.1:{svc.gateway.port}"
        assert main([*args, "--gateway", gateway, "--malformed", "0.25"]) == 0
        out = capsys.readouterr().out
        summary = out.strip().splitlines()[-1]
        m = re.search(r"(\d+) packets, (\d+) readings .* (\d+) malformed copies", summary)
        assert m, summary
        packets, readings, broken = map(int, m.groups())
        assert "missing 0" in summary
        assert 0 < broken < packets
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM readings") == readings,
            what="every good reading stored",
        )
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM dead_letters") == broken,
            what="one dead letter per broken packet",
        )
        reasons = scalar(db_url, "SELECT array_agg(DISTINCT reason) FROM dead_letters")
        assert reasons == [hj212.CRC_MISMATCH]
    finally:
        svc.stop()
    assert svc.error is None


def test_simulate_over_mqtt_with_broken_messages_on_the_configured_topic(
    db_url: str, unique_topic: str, mqtt_url: str, capsys, monkeypatch
) -> None:
    """simulate publishes where OFFSITE_MQTT_TOPIC says (this test's own topic), and each
    broken copy (HJ 212 with a bad CRC) is one dead letter beside the stored readings."""
    from tests.integration.helpers import running_ingest

    settings = make_settings(db_url, mqtt_url, unique_topic)
    for name, value in (
        ("OFFSITE_DATABASE_URL", db_url),
        ("OFFSITE_MQTT_URL", mqtt_url),
        ("OFFSITE_MQTT_TOPIC", unique_topic),
    ):
        monkeypatch.setenv(name, value)
    args = ["simulate", "--devices", "3", "--duration", "0", "--seed", "9"]
    assert main(args) == 0  # registers the fleet before ingest loads the registry
    with running_ingest(settings):
        args = ["simulate", "--devices", "3", "--duration", "40", "--fast", "--seed", "9"]
        assert main([*args, "--protocol", "hj212", "--malformed", "0.3"]) == 0
        summary = capsys.readouterr().out.strip().splitlines()[-1]
        m = re.search(r"(\d+) readings in .* (\d+) malformed copies", summary)
        assert m, summary
        readings, broken = map(int, m.groups())
        assert broken > 0
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM readings") == readings,
            what="every good reading stored",
        )
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM dead_letters") == broken,
            what="one dead letter per broken message",
        )
    assert scalar(db_url, "SELECT array_agg(DISTINCT reason) FROM dead_letters") == [
        hj212.CRC_MISMATCH
    ]

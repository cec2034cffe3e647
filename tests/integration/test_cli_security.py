"""The security subcommands end to end: users and API keys, device MQTT passwords and the
broker files, on a real database."""

from __future__ import annotations

import io
from pathlib import Path

import psycopg
import pytest

from offsite.cli import main
from offsite.core.credentials import mosquitto_verify, token_digest, verify_password
from tests.integration.security_fixtures import MN1, build_world

pytestmark = pytest.mark.integration


def test_users_devices_and_broker_files_from_the_cli(
    db_url: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    build_world(db_url)
    monkeypatch.setenv("OFFSITE_DATABASE_URL", db_url)
    monkeypatch.setenv("OFFSITE_MQTT_URL", "mqtt://offsite-ingest:ingest-secret@broker:1883")
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert (
        main(["users", "add", "alice", "--role", "regulator", "--region", "R1", "--password-stdin"])
        == 0
    )
    assert main(["users", "token", "alice", "--days", "1"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["users", "add", "bob", "--role", "enterprise", "--no-password"]) == 2
    assert "needs --enterprise" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "carol", "--role", "admin", "--password-stdin"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err

    assert main(["devices", "set-mqtt-password", MN1]) == 0
    device_pw = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["devices", "set-mqtt-password", "NOPE"]) == 2
    out = tmp_path / "auth"
    assert main(["devices", "export-broker-auth", "--out", str(out)]) == 0
    assert "1 devices, ingest user offsite-ingest" in capsys.readouterr().out

    with psycopg.connect(db_url) as conn:
        pw_hash, region = conn.execute(
            "SELECT password_hash, region FROM users WHERE id = 'alice'"
        ).fetchone()  # type: ignore[misc]
        holder = conn.execute(
            "SELECT user_id FROM api_tokens WHERE token_sha256 = %s", (token_digest(token),)
        ).fetchone()
    assert verify_password(pw_hash, "a long enough password") and region == "R1"
    assert holder == ("alice",)
    with psycopg.connect(db_url) as conn:
        actions = [
            a
            for (a,) in conn.execute(
                "SELECT action FROM audit_log WHERE actor = 'cli' ORDER BY seq"
            )
        ]
    assert actions == ["user.upsert", "token.issue", "device.mqtt_password"]
    lines = dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())
    assert set(lines) == {"offsite-ingest", MN1}
    assert mosquitto_verify(lines[MN1], device_pw)
    assert mosquitto_verify(lines["offsite-ingest"], "ingest-secret")
    assert f"user {MN1}\ntopic write devices/{MN1}/telemetry" in (out / "acl").read_text()

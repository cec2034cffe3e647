"""offsite.core.settings: one validated Settings object from OFFSITE_* variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from offsite.cli import settings_from_env
from offsite.core.errors import OffsiteError, SettingsError
from offsite.core.settings import Settings, load_settings

STRONG = "Hn4c8Ve1Rq7Zt2Lw9Ks5Px3Bm6Dj0Ga_Yu-Fo"  # what `openssl rand` gives, not a pattern


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.upper().startswith("OFFSITE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env or relative paths from the checkout


def refused(**overrides) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(**overrides)
    assert isinstance(info.value, OffsiteError)
    return str(info.value)


def test_defaults():
    s = load_settings()
    assert isinstance(s, Settings)
    assert s.env == "development"
    assert s.log_level == "INFO"
    assert s.database_url is None and s.mqtt_url is None  # → embedded services
    assert s.http_host == "127.0.0.1" and s.http_port == 8000
    assert s.mqtt_topic == "devices/+/telemetry"
    assert s.batch_max_readings == 20_000 and s.batch_max_delay_ms == 200
    assert s.max_payload_bytes == 256 * 1024
    assert s.rules_file is None and s.rule_warm_max == 240 and s.alert_reopen_s == 21600
    assert s.qr_secret is None and s.qr_key_id == "k1"  # → generated in the data dir
    assert s.data_dir == Path(".offsite")
    assert s.registry_file is None
    assert s.base_url == "http://127.0.0.1:8000"


def test_env_overrides(monkeypatch):
    monkeypatch.setenv("OFFSITE_HTTP_PORT", "9001")
    monkeypatch.setenv("OFFSITE_HTTP_HOST", "0.0.0.0")
    monkeypatch.setenv("OFFSITE_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("OFFSITE_DATABASE_URL", "postgresql://u:p@db:5432/offsite")
    monkeypatch.setenv("OFFSITE_MQTT_URL", "mqtt://broker:1883")
    monkeypatch.setenv("OFFSITE_ALERT_REOPEN_S", "60")
    monkeypatch.setenv("OFFSITE_REGISTRY_FILE", "/etc/offsite/registry.toml")
    s = load_settings()
    assert s.http_port == 9001 and s.http_host == "0.0.0.0"
    assert s.log_level == "DEBUG"
    assert s.database_url == "postgresql://u:p@db:5432/offsite"
    assert s.mqtt_url == "mqtt://broker:1883"
    assert s.alert_reopen_s == 60
    assert s.registry_file == Path("/etc/offsite/registry.toml")
    assert s.base_url == "http://0.0.0.0:9001"


def test_env_names_are_case_insensitive_and_unknown_ignored(monkeypatch):
    monkeypatch.setenv("offsite_http_port", "9002")
    monkeypatch.setenv("OFFSITE_NO_SUCH_KNOB", "1")
    assert load_settings().http_port == 9002


def test_explicit_overrides_beat_the_environment(monkeypatch):
    monkeypatch.setenv("OFFSITE_HTTP_PORT", "9001")
    assert load_settings(http_port=9100).http_port == 9100


def test_public_url_wins_for_base_url(monkeypatch):
    monkeypatch.setenv("OFFSITE_PUBLIC_URL", "https://offsite.example.org")
    assert load_settings().base_url == "https://offsite.example.org"


def test_settings_are_frozen():
    s = load_settings()
    with pytest.raises(ValidationError):
        s.http_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("OFFSITE_HTTP_PORT", "99999"),
        ("OFFSITE_HTTP_PORT", "eighty"),
        ("OFFSITE_ENV", "staging"),
        ("OFFSITE_LOG_LEVEL", "verbose"),
        ("OFFSITE_DATABASE_URL", "mysql://db/offsite"),
        ("OFFSITE_MQTT_URL", "http://broker:1883"),
        ("OFFSITE_DB_POOL_MAX", "0"),
        ("OFFSITE_BATCH_MAX_READINGS", "0"),
        ("OFFSITE_BATCH_MAX_DELAY_MS", "60001"),
        ("OFFSITE_MAX_PAYLOAD_BYTES", "100"),
        ("OFFSITE_MAX_AGE_DAYS", "0"),
        ("OFFSITE_RULE_WARM_MAX", "-1"),
        ("OFFSITE_ALERT_REOPEN_S", "-1"),
        ("OFFSITE_RULES_FILE", "/no/such/rules.toml"),
        ("OFFSITE_MQTT_KEEPALIVE_S", "1"),
    ],
)
def test_invalid_env_values_name_the_variable(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    msg = refused()
    assert msg.startswith("invalid configuration: ")
    assert var in msg


def test_several_problems_are_reported_together(monkeypatch):
    monkeypatch.setenv("OFFSITE_HTTP_PORT", "-1")
    monkeypatch.setenv("OFFSITE_ALERT_REOPEN_S", "-1")
    msg = refused()
    assert "OFFSITE_HTTP_PORT" in msg and "OFFSITE_ALERT_REOPEN_S" in msg


def test_a_bad_rules_file_is_refused_at_start_with_its_line(monkeypatch, tmp_path):
    bad = tmp_path / "rules.toml"
    bad.write_text('base = "default"\n\n[[rule]]\nname = "mine"\ndetector = "spikey"\n')
    monkeypatch.setenv("OFFSITE_RULES_FILE", str(bad))
    with pytest.raises(SettingsError) as exc:
        settings_from_env()
    msg = str(exc.value)
    assert "OFFSITE_RULES_FILE" in msg and f"{bad}:5:" in msg and "spikey" in msg


def test_invalid_override_names_the_variable():
    assert "OFFSITE_HTTP_PORT" in refused(http_port=70000)


def test_production_refuses_a_missing_qr_secret(monkeypatch):
    monkeypatch.setenv("OFFSITE_ENV", "production")
    assert "OFFSITE_QR_SECRET must be set" in refused()


@pytest.mark.parametrize(
    "weak",
    [
        "a" * 36,  # the probe's: passed the old length check
        "ab" * 20,
        "0123456789abcdef" * 4,  # 64 characters, 16 distinct, but one unit repeated
        "password" * 5,
    ],
)
def test_production_refuses_a_low_entropy_qr_secret(monkeypatch, weak):
    monkeypatch.setenv("OFFSITE_ENV", "production")
    monkeypatch.setenv("OFFSITE_QR_SECRET", weak)
    assert "estimated entropy" in refused()


def test_production_refuses_a_short_qr_secret(monkeypatch):
    monkeypatch.setenv("OFFSITE_ENV", "production")
    monkeypatch.setenv("OFFSITE_QR_SECRET", "x" * 31)
    assert "OFFSITE_QR_SECRET" in refused()


def test_production_with_a_strong_secret(monkeypatch):
    monkeypatch.setenv("OFFSITE_ENV", "production")
    monkeypatch.setenv("OFFSITE_QR_SECRET", STRONG)
    s = load_settings()
    assert s.env == "production" and s.qr_secret == STRONG


def test_no_published_constant_is_a_default():
    import offsite.core.settings as settings_module

    assert not hasattr(settings_module, "DEV_QR_SECRET")
    assert load_settings(env="development").qr_secret is None


def test_an_upload_request_must_hold_the_largest_attachment():
    with pytest.raises(SettingsError, match="OFFSITE_HTTP_UPLOAD_MAX_BYTES"):
        load_settings(attachment_max_bytes=50 * 1024 * 1024)
    s = load_settings(attachment_max_bytes=50 * 1024 * 1024, http_upload_max_bytes=70 * 2**20)
    assert s.http_upload_max_bytes > s.attachment_max_bytes * 4 / 3

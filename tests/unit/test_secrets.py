"""Secrets by default: entropy estimates, the generated QR secret, redacted URLs."""

from __future__ import annotations

import logging
import secrets
import stat

import pytest

from offsite.core.errors import SettingsError
from offsite.core.local_secrets import local_secret
from offsite.core.secrecy import entropy_bits, redact, weak_secret
from offsite.store.pool import redact as store_redact


def test_entropy_of_random_secrets_is_high():
    for _ in range(20):
        assert weak_secret(secrets.token_urlsafe(32)) is None
        assert weak_secret(secrets.token_hex(32)) is None


@pytest.mark.parametrize(
    ("secret", "most"),
    [("a" * 36, 0), ("ab" * 18, 2), ("abc" * 12, 5), ("0123456789abcdef" * 4, 64)],
)
def test_entropy_counts_repeats_once(secret, most):
    assert entropy_bits(secret) <= most
    assert weak_secret(secret) is not None


def test_short_secrets_are_weak_whatever_their_mix():
    assert "32" in (weak_secret(secrets.token_urlsafe(16)[:20]) or "")


def test_local_secret_is_generated_once_kept_0600_and_logged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, "offsite.secrets"):
        first = local_secret(tmp_path, "qr_secret")
    path = tmp_path / "secrets" / "qr_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert weak_secret(first) is None
    assert "generated a random one" in caplog.text and str(path) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, "offsite.secrets"):
        assert local_secret(tmp_path, "qr_secret") == first  # read back, not regenerated
    assert caplog.text == ""
    assert local_secret(tmp_path / "other", "qr_secret") != first


def test_local_secret_readable_by_others_is_refused(tmp_path):
    local_secret(tmp_path, "qr_secret")
    (tmp_path / "secrets" / "qr_secret").chmod(0o644)
    with pytest.raises(SettingsError, match="readable by others"):
        local_secret(tmp_path, "qr_secret")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mqtt://ingest:hunter2@broker:1883", "mqtt://ingest:***@broker:1883"),
        (
            "postgresql://offsite_app:p%40ss@db:5432/offsite",
            "postgresql://offsite_app:***@db:5432/offsite",
        ),
        ("postgresql://u:a:b@db/x", "postgresql://u:***@db/x"),  # a colon in the password
        ("postgresql://db/x?user=u&password=hunter2", "postgresql://db/x?user=u&password=***"),
        ("host=db user=u password='a b c' dbname=x", "host=db user=u password=*** dbname=x"),
        ("host=db password=hunter2", "host=db password=***"),
        ("mqtt://broker:1883", "mqtt://broker:1883"),
        ("mqtt://user@broker:1883", "mqtt://user@broker:1883"),
    ],
)
def test_redact_hides_every_password(url, shown):
    assert redact(url) == shown
    assert store_redact(url) == shown


def test_app_without_a_qr_secret_signs_with_a_generated_one_not_the_old_constant(tmp_path):
    from offsite.api.app import create_app
    from offsite.api.errors import TokenError
    from offsite.api.qr import KeyRing
    from offsite.core.settings import load_settings

    settings = load_settings(data_dir=tmp_path, database_url="postgresql://unused/x")
    ring = create_app(settings, "postgresql://unused/x").state.keyring
    kept = (tmp_path / "secrets" / "qr_secret").read_text().strip()
    assert ring.keys["k1"] == kept.encode()
    # the constant this project once published, and anyone could sign with
    forged = KeyRing({"k1": "dev-only-insecure-qr-secret-change-me"}, "k1").sign("E1")
    with pytest.raises(TokenError, match="forged"):
        ring.verify(forged, 0)
    again = create_app(settings, "postgresql://unused/x").state.keyring
    assert again.verify(ring.sign("E1"), 0).enterprise_id == "E1"  # survives a restart


def test_the_suite_keeps_generated_secrets_out_of_the_checkout():
    """An app built without OFFSITE_QR_SECRET generates one in its data directory. Under
    the tests that is a temporary one: the default ./.offsite of the checkout would collect
    a QR secret that a demo or ``serve`` started there later signs with."""
    from pathlib import Path

    from offsite.core.settings import load_settings

    checkout = Path(__file__).resolve().parents[2]
    assert not load_settings().data_dir.resolve().is_relative_to(checkout)

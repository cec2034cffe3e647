"""Pure security pieces: the rate limiter, credentials, broker files, the audit chain
walk, principals' scopes and the settings that configure them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offsite.api.auth import Principal, Role
from offsite.api.ratelimit import RateLimiter
from offsite.broker_auth import render
from offsite.core.credentials import (
    hash_password,
    mosquitto_hash,
    mosquitto_verify,
    new_token,
    token_digest,
    verify_password,
)
from offsite.core.errors import SettingsError
from offsite.core.settings import load_settings
from offsite.store.audit import GENESIS, AuditRow, canonical_data, check_chain, row_hash

T0 = datetime(2026, 11, 26, tzinfo=UTC)


# -- rate limiter ---------------------------------------------------------------------------


def test_limiter_allows_a_burst_then_answers_how_long_to_wait():
    lim = RateLimiter(per_minute=6, burst=3)  # one token per 10 s
    assert [lim.hit("k", 0.0) for _ in range(3)] == [None, None, None]
    wait = lim.hit("k", 0.0)
    assert wait == pytest.approx(10.0)
    assert lim.hit("k", 4.0) == pytest.approx(6.0)
    assert lim.hit("k", 10.0) is None
    assert lim.hit("other", 10.0) is None  # keys are independent


def test_limiter_refills_to_the_burst_not_beyond():
    lim = RateLimiter(per_minute=60, burst=2)
    assert lim.hit("k", 0.0) is None and lim.hit("k", 0.0) is None
    assert lim.hit("k", 1000.0) is None and lim.hit("k", 1000.0) is None
    assert lim.hit("k", 1000.0) is not None


def test_limiter_forgets_only_full_buckets_when_at_its_key_limit():
    lim = RateLimiter(per_minute=60, burst=1, max_keys=2)
    assert lim.hit("a", 0.0) is None and lim.hit("b", 0.0) is None
    assert lim.hit("c", 0.5) is None  # a and b are still empty: kept (bounded by refills)
    assert lim.hit("a", 0.5) is not None
    assert lim.hit("d", 5.0) is None  # now a, b, c refilled: forgotten
    assert set(lim._buckets) == {"d"}


def test_limiter_refuses_nonsense_limits():
    with pytest.raises(ValueError):
        RateLimiter(per_minute=0, burst=1)
    with pytest.raises(ValueError):
        RateLimiter(per_minute=1, burst=0)


# -- credentials ----------------------------------------------------------------------------


def test_passwords_are_argon2id_and_verify_only_themselves():
    h = hash_password("s3cret pass")
    assert h.startswith("$argon2id$") and "s3cret" not in h
    assert verify_password(h, "s3cret pass")
    assert not verify_password(h, "s3cret pasS")
    assert not verify_password("not a hash", "s3cret pass")


def test_tokens_are_random_and_kept_as_sha256():
    a, b = new_token(), new_token()
    assert a != b and a.startswith("ofs_") and len(a) >= 40
    assert len(token_digest(a)) == 32 and token_digest(a) != token_digest(b)


@settings(max_examples=20, deadline=None)
@given(password=st.text(min_size=1, max_size=40))
def test_mosquitto_hash_round_trips(password):
    stored = mosquitto_hash(password)
    assert stored.startswith("$7$101$")
    assert mosquitto_verify(stored, password)
    assert not mosquitto_verify(stored, password + "x")


def test_mosquitto_verify_refuses_other_formats():
    assert not mosquitto_verify("$6$abc$def", "x")
    assert not mosquitto_verify("plain", "plain")


# -- broker files ---------------------------------------------------------------------------


def test_broker_files_give_each_device_its_own_topic_and_ingest_read_access():
    ha, hb = mosquitto_hash("a"), mosquitto_hash("b")
    auth = render([("B2", hb), ("A1", ha)], "plant/x", "up", "ingest", "pw")
    users = [line.split(":", 1)[0] for line in auth.passwd.splitlines()]
    assert users == ["ingest", "A1", "B2"] and auth.devices == 2
    assert f"A1:{ha}" in auth.passwd
    blocks = [b.strip().splitlines() for b in auth.acl.split("\n\n") if b.startswith("user")]
    assert blocks == [
        ["user ingest", "topic read plant/x/+/up", "topic readwrite offsite/members/#"],
        ["user A1", "topic write plant/x/A1/up"],
        ["user B2", "topic write plant/x/B2/up"],
    ]
    assert "pw" not in auth.passwd.split(":", 1)[1].split("$")[2]  # salt, not the password


# -- audit chain walk -------------------------------------------------------------------------


def _chain(n: int) -> list[AuditRow]:
    rows, prev = [], GENESIS
    for i in range(1, n + 1):
        at, data = T0 + timedelta(seconds=i), canonical_data({"i": i})
        h = row_hash(prev, i, at, "u", "a.b", f"s:{i}", data)
        rows.append(AuditRow(i, at, "u", "a.b", f"s:{i}", data, prev, h))
        prev = h
    return rows


def test_intact_chain_reports_its_head():
    rows = _chain(4)
    report = check_chain(rows)
    assert report.broken is None and report.rows == 4 and report.head_seq == 4
    assert report.head_hash == rows[-1].hash.hex()
    assert check_chain([]).head_hash == GENESIS.hex()


def test_chain_names_the_first_broken_row():
    rows = _chain(5)
    edited = rows.copy()
    r = edited[2]
    edited[2] = AuditRow(r.seq, r.at, "mallory", r.action, r.subject, r.data, r.prev_hash, r.hash)
    assert check_chain(edited).broken.seq == 3  # type: ignore[union-attr]
    assert check_chain(rows[:1] + rows[2:]).broken.seq == 3  # type: ignore[union-attr]
    dup = [*rows[:3], rows[2], *rows[3:]]
    assert "inserted" in check_chain(dup).broken.reason  # type: ignore[union-attr]


def test_hash_does_not_depend_on_the_sessions_time_zone():
    at = T0 + timedelta(microseconds=7)
    shanghai = at.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
    assert row_hash(GENESIS, 1, at, "u", "a", "s", "{}") == row_hash(
        GENESIS, 1, shanghai, "u", "a", "s", "{}"
    )


def test_audit_data_is_canonical_json():
    assert canonical_data({"b": [1, 2], "a": "ü"}) == '{"a":"ü","b":[1,2]}'
    assert canonical_data({"t": T0}) == '{"t":"2026-11-26T00:00:00+00:00"}'
    with pytest.raises(Exception, match="not JSON"):
        canonical_data({"x": float("nan")})


# -- principals ---------------------------------------------------------------------------------


def test_principal_scope():
    everyone = Principal("a", Role.ADMIN, None, "", None, b"")
    one = Principal("e", Role.ENTERPRISE, "E1", "", frozenset({"E1"}), b"")
    assert everyone.can_see("E9") and everyone.scope is None
    assert one.can_see("E1") and not one.can_see("E2") and not one.can_see(None)
    assert one.scope == ["E1"]


# -- settings -------------------------------------------------------------------------------------


def test_qr_verify_keys_are_read_as_json_and_checked(monkeypatch):
    monkeypatch.setenv("OFFSITE_QR_VERIFY_KEYS", '{"k0": "' + "o" * 40 + '"}')
    assert load_settings().qr_verify_keys == {"k0": "o" * 40}
    with pytest.raises(SettingsError, match="must not repeat"):
        load_settings(qr_verify_keys={"k1": "x" * 40})
    strong = "Xq3v9LmT2pR7sK8wN4bY6cJ1hF5gD0aZeU_iO-yW"
    with pytest.raises(SettingsError, match="32 random"):
        load_settings(env="production", qr_secret=strong, qr_verify_keys={"k0": "short"})
    with pytest.raises(SettingsError, match=r"k0.*estimated entropy"):
        load_settings(env="production", qr_secret=strong, qr_verify_keys={"k0": "o" * 40})

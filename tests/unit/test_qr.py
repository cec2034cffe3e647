"""offsite.api.qr: signed QR tokens, key rotation, scan URLs and rendering."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offsite.api.errors import ApiError, TokenError
from offsite.api.qr import MAX_TOKEN_LEN, KeyRing, QrClaims, extract_token, render, scan_url

OLD, NEW = "old-secret-" + "x" * 24, "new-secret-" + "y" * 24
RING = KeyRing({"k1": OLD}, "k1")
NOW = 1_800_000_000.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(claims: dict, secret: str) -> str:
    payload = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{b64(sig)}"


def refused(ring: KeyRing, token: str) -> TokenError:
    with pytest.raises(TokenError) as info:
        ring.verify(token, NOW)
    assert isinstance(info.value, ApiError)
    return info.value


def test_round_trip():
    token = RING.sign("E0001")
    assert token.count(".") == 1
    assert RING.verify(token, NOW) == QrClaims("E0001", "k1", 0, None)


def test_payload_names_enterprise_and_key_and_is_deterministic():
    token = RING.sign("E0001")
    payload = token.split(".")[0]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims == {"v": 2, "e": "E0001", "k": "k1", "g": 0}
    assert RING.sign("E0001") == token
    assert RING.sign("E0002") != token


@settings(max_examples=40, deadline=None)
@given(enterprise=st.text(min_size=1, max_size=40))
def test_round_trip_any_enterprise_id(enterprise):
    assert RING.verify(RING.sign(enterprise), NOW).enterprise_id == enterprise


def test_current_key_must_be_in_the_ring():
    with pytest.raises(ValueError):
        KeyRing({"k1": OLD}, "k2")


def test_altered_payload_is_refused_401():
    token = RING.sign("E0001")
    sig = token.split(".")[1]
    other = b64(
        json.dumps(
            {"v": 2, "e": "E0002", "k": "k1", "g": 0}, separators=(",", ":"), sort_keys=True
        ).encode()
    )
    assert refused(RING, f"{other}.{sig}").status == 401


def test_altered_signature_is_refused_401():
    token = RING.sign("E0001")
    payload, sig = token.split(".")
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    assert refused(RING, f"{payload}.{flipped}").status == 401
    assert refused(RING, f"{payload}.{sig[:-4]}").status in (400, 401)


def test_forged_with_another_secret_is_refused_401():
    token = forge({"v": 2, "e": "E0001", "k": "k1", "g": 0}, "attacker-secret")
    err = refused(RING, token)
    assert err.status == 401
    assert "signature" in str(err)


def test_unknown_key_id_is_refused_401():
    token = forge({"v": 2, "e": "E0001", "k": "k9", "g": 0}, OLD)
    err = refused(RING, token)
    assert err.status == 401
    assert "k9" in str(err)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b.c",
        "....",
        "no-dot-at-all",
        "%%%.%%%",
        "é.é",
        "e30.",  # {} is not a claim set
        b64(b"[1,2]") + ".AAAA",  # not an object
        b64(b"not json") + ".AAAA",
        b64(b'{"v":1,"e":"E1","k":"k1"}') + ".AAAA",  # old version
        b64(b'{"v":2,"e":5,"k":"k1","g":0}') + ".AAAA",  # enterprise not a string
        b64(b'{"v":2,"e":"E1","g":0}') + ".AAAA",  # no key id
        b64(b'{"v":2,"e":"E1","k":1,"g":0}') + ".AAAA",  # key id not a string
        b64(b'{"v":2,"e":"E1","k":"k1"}') + ".AAAA",  # no generation
        b64(b'{"v":2,"e":"E1","k":"k1","g":true}') + ".AAAA",  # generation not an integer
        b64(b'{"v":2,"e":"E1","k":"k1","g":0,"x":"soon"}') + ".AAAA",  # expiry not a time
        b64(b"\xff\xfe\x00") + ".AAAA",  # not UTF-8 / JSON
        "A.",  # bad base64 length
    ],
)
def test_garbage_is_refused_400(token):
    assert refused(RING, token).status == 400


def test_too_long_is_refused_400():
    token = RING.sign("E" * MAX_TOKEN_LEN)
    assert len(token) > MAX_TOKEN_LEN
    assert refused(RING, token).status == 400


def test_key_rotation():
    old_token = RING.sign("E0001")
    both = KeyRing({"k1": OLD, "k2": NEW}, "k2")
    new_token = both.sign("E0001")
    assert both.verify(old_token, NOW).kid == "k1"
    assert both.verify(new_token, NOW).kid == "k2"
    retired = KeyRing({"k2": NEW}, "k2")
    assert retired.verify(new_token, NOW).kid == "k2"
    assert refused(retired, old_token).status == 401
    # the same key id with a different secret voids the old codes too
    assert refused(KeyRing({"k1": NEW}, "k1"), old_token).status == 401


@pytest.mark.parametrize("suffix", ["=", "==", "!", " x"])
def test_signature_with_appended_characters_is_refused(suffix):
    token = RING.sign("E0001")
    refused(RING, token + suffix)


def test_non_canonical_base64_spelling_is_refused():
    # The last character of a 32-byte signature carries 4 unused bits: flipping one of
    # them decodes to the same bytes, and must still not verify (one spelling per token).
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    token = RING.sign("E0001")
    twin = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]
    assert base64.urlsafe_b64decode(twin.split(".")[1] + "=") == base64.urlsafe_b64decode(
        token.split(".")[1] + "="
    )
    refused(RING, twin)


# -- scan URLs ------------------------------------------------------------------------


def test_scan_url_and_extract_round_trip():
    token = RING.sign("E0001")
    url = scan_url("https://offsite.example.org/", token)
    assert url == f"https://offsite.example.org/scan?token={token}"
    assert extract_token(url) == token
    assert RING.verify(url, NOW).kid == "k1"
    assert RING.verify(f"  {token}\n", NOW).enterprise_id == "E0001"


def test_extract_token_from_url_with_other_params():
    assert extract_token("http://h:8000/scan?x=1&token=abc.def&y=2") == "abc.def"
    assert extract_token("abc.def") == "abc.def"


def test_url_without_token_is_refused_400():
    with pytest.raises(TokenError) as info:
        extract_token("https://offsite.example.org/scan?x=1")
    assert info.value.status == 400
    assert refused(RING, "https://offsite.example.org/scan").status == 400


# -- rendering ------------------------------------------------------------------------


def test_render_svg():
    svg = render(scan_url("http://localhost:8000", RING.sign("E0001")), "svg")
    assert svg.startswith(b"<?xml")
    assert b"<svg" in svg


def test_render_png():
    png = render("hello", "png", scale=2)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 50


def test_render_scale_changes_the_image():
    assert len(render("hello", "svg", scale=1)) > 0
    assert render("hello", "png", scale=1) != render("hello", "png", scale=4)


def test_render_unknown_kind():
    with pytest.raises(ValueError):
        render("hello", "gif")


# -- expiry and generations --------------------------------------------------------------


def test_expiring_code_verifies_until_its_expiry_then_is_refused_401():
    token = RING.sign("E0001", generation=3, expires_at=int(NOW) + 60)
    assert RING.verify(token, NOW) == QrClaims("E0001", "k1", 3, int(NOW) + 60)
    assert RING.verify(token, NOW + 59.9).generation == 3
    err = refused_at(RING, token, NOW + 60)
    assert err.status == 401 and "expired" in str(err)


def test_expiry_cannot_be_extended_by_editing_the_payload():
    token = RING.sign("E0001", expires_at=int(NOW) - 1)
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    payload["x"] = int(NOW) + 3600
    altered = b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    assert refused(RING, f"{altered}.{token.split('.')[1]}").status == 401


def test_generation_is_signed():
    token = RING.sign("E0001", generation=1)
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    payload["g"] = 2
    altered = b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    assert refused(RING, f"{altered}.{token.split('.')[1]}").status == 401


def refused_at(ring: KeyRing, token: str, now: float) -> TokenError:
    with pytest.raises(TokenError) as info:
        ring.verify(token, now)
    return info.value

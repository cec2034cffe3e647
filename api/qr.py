"""Signed QR tokens for enterprise sites. Pure, apart from rendering the image.

A token is ``<payload>.<signature>``: the payload is base64url JSON naming the
enterprise (``e``), the key id (``k``), the site's code generation (``g``) and, when
codes expire, the expiry as a Unix time (``x``); the signature is HMAC-SHA256 over the
payload with that key. The key id lets keys rotate — old codes keep working while their
key is still in the ring (several verification keys, one signing key), and retiring a
key voids every code printed with it. The generation lets one site's printed code be
revoked: the site's generation is bumped in the database and codes of older
generations are refused at check-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import segno

from offsite.api.errors import TokenError

MAX_TOKEN_LEN = 512
_B64_RE = re.compile(r"[A-Za-z0-9_-]*")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict base64url: one spelling per value, so a token cannot be varied and still pass."""
    if not _B64_RE.fullmatch(text):
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:
        raise ValueError("non-canonical base64url")
    return raw


@dataclass(frozen=True, slots=True)
class QrClaims:
    enterprise_id: str
    kid: str
    generation: int
    expires_at: int | None  # Unix time; None: does not expire


class KeyRing:
    def __init__(self, keys: Mapping[str, str], current: str) -> None:
        if current not in keys:
            raise ValueError(f"current key id {current!r} is not in the key ring")
        self.keys = {k: v.encode("utf-8") for k, v in keys.items()}
        self.current = current

    def sign(self, enterprise_id: str, generation: int = 0, expires_at: int | None = None) -> str:
        claims: dict[str, object] = {"v": 2, "e": enterprise_id, "k": self.current, "g": generation}
        if expires_at is not None:
            claims["x"] = expires_at
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        sig = hmac.new(self.keys[self.current], payload.encode("ascii"), hashlib.sha256)
        return f"{payload}.{_b64(sig.digest())}"

    def verify(self, token: str, now: float) -> QrClaims:
        """The token's claims, or TokenError saying what is wrong. ``now``: Unix time."""
        token = extract_token(token)
        if len(token) > MAX_TOKEN_LEN or token.count(".") != 1:
            raise TokenError("QR token is malformed", 400)
        payload, sig = token.split(".")
        try:
            claims = json.loads(_unb64(payload))
            given = _unb64(sig)
        except (ValueError, UnicodeDecodeError) as exc:
            raise TokenError("QR token is malformed", 400) from exc
        if (
            not isinstance(claims, dict)
            or claims.get("v") != 2
            or not isinstance(claims.get("e"), str)
            or not isinstance(claims.get("k"), str)
            or not _is_int(claims.get("g"))
            or ("x" in claims and not _is_int(claims["x"]))
        ):
            raise TokenError("QR token is malformed", 400)
        key = self.keys.get(claims["k"])
        if key is None:
            raise TokenError(
                f"QR token was signed with an unknown or retired key ({claims['k']!r})"
            )
        want = hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(want, given):
            raise TokenError("QR token signature is invalid: the code is forged or altered")
        expires = claims.get("x")
        if expires is not None and now >= expires:
            raise TokenError("QR code has expired: print the site's current code")
        return QrClaims(claims["e"], claims["k"], claims["g"], expires)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def extract_token(text: str) -> str:
    """Accept the bare token or the scanned URL (``…/scan?token=…``)."""
    text = text.strip()
    if "://" in text:
        values = parse_qs(urlsplit(text).query).get("token")
        if not values:
            raise TokenError("the scanned URL carries no token", 400)
        return values[0]
    return text


def scan_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/scan?token={token}"


def render(content: str, kind: str, scale: int = 6) -> bytes:
    """Render a QR code as SVG or PNG (error correction M: survives a scuffed sticker)."""
    code = segno.make(content, error="m")
    buf = io.BytesIO()
    if kind == "svg":
        code.save(buf, kind="svg", scale=scale, xmldecl=True)
    elif kind == "png":
        code.save(buf, kind="png", scale=scale)
    else:
        raise ValueError(f"unsupported QR image kind {kind!r}")
    return buf.getvalue()

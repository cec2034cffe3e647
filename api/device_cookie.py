"""Device cookies for sign-in (OWASP's defence against lockout by password guessing).

A browser that has signed in as a user gets a signed cookie naming that user and a
random device id. Its later sign-ins as the same user are limited per device, so a
stranger guessing that user's password (who has no such cookie) exhausts only the limit
shared by unknown devices and cannot lock the real user out of a browser they used
before. Pure: the key and the values come in, nothing is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

DEVICE_COOKIE = "offsite_device"
DEVICE_COOKIE_DAYS = 180


def device_key(secret: str) -> bytes:
    """A key of its own derived from a deployment secret (domain separated by HMAC), so
    the cookie needs no secret of its own and every replica agrees on it."""
    return hmac.new(secret.encode(), b"offsite device cookie v1", hashlib.sha256).digest()


def _mac(key: bytes, username: str, device: str) -> str:
    mac = hmac.new(key, f"{username}\x00{device}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def issue(key: bytes, username: str) -> str:
    """A new cookie value for ``username`` on a new device."""
    device = secrets.token_urlsafe(12)
    return f"{device}.{_mac(key, username, device)}"


def trusted_device(key: bytes, value: str | None, username: str) -> str | None:
    """The device id if ``value`` is a cookie this deployment issued for ``username``."""
    if not value or value.count(".") != 1:
        return None
    device, mac = value.split(".")
    if not device or not hmac.compare_digest(mac, _mac(key, username, device)):
        return None
    return device

"""Secrets and how they are kept. Pure.

- People's passwords: argon2id (argon2-cffi's defaults), slow on purpose because
  people choose guessable passwords.
- API tokens: 256 random bits, so a plain SHA-256 is enough to keep them (nobody can
  brute-force the preimage) and lets a request be authenticated with one index lookup.
- Device MQTT passwords: Mosquitto's own PBKDF2-SHA512 format (``$7$``, what
  ``mosquitto_passwd`` writes in Mosquitto 2), so the broker's password file is generated
  from the registry without the plain passwords ever being stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "ofs_"
MOSQUITTO_ITERATIONS = 101  # mosquitto_passwd's default
_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# a valid argon2 hash of a random secret: unknown users cost as much as known ones, so
# response times do not tell which user names exist
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_device_password() -> str:
    return secrets.token_urlsafe(24)


def mosquitto_hash(
    password: str, salt: bytes | None = None, iterations: int = MOSQUITTO_ITERATIONS
) -> str:
    """``$7$<iterations>$<base64 salt>$<base64 PBKDF2-SHA512>`` as mosquitto_passwd writes."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def mosquitto_verify(stored: str, password: str) -> bool:
    parts = stored.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    salt, want = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    got = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]))
    return hmac.compare_digest(got, want)

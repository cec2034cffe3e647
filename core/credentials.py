"""Secrets and how they are kept. Pure.

- People's passwords: argon2id (argon2-cffi's defaults), slow on purpose because
  people choose guessable passwords.
- API tokens: 256 random bits, so a plain SHA-256 is enough to keep them (nobody can
  brute-force the preimage) and lets a request be authenticated with one index lookup.
- Device MQTT passwords: Mosquitto's own PBKDF2-SHA512 format (``$7$``, what
  ``mosquitto_passwd`` writes in Mosquitto 2), so the broker's password file is generated
  from the registry without the plain passwords ever being stored.
- Signing secrets (the QR key): judged by an entropy *estimate*, because a length check
  passes 36 × "a"; and URLs are redacted before they reach a log or a terminal.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
from collections import Counter
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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


MIN_SECRET_BITS = 128.0


def entropy_bits(secret: str) -> float:
    """A conservative estimate of a secret's entropy in bits.

    Shannon's estimate over the characters (length × bits per character of their
    observed distribution, so "aaaa…" is 0 and "abab…" 1 bit a character), taken over
    the shortest unit the secret repeats, if it does ("0123456789abcdef" × 4 counts once),
    and never above length × log2(distinct characters). An estimate, not a proof: a
    random secret passes by a wide margin, a typed or patterned one does not.
    """
    if not secret:
        return 0.0
    unit = secret
    n = len(secret)
    for p in range(1, n // 2 + 1):  # the shortest period covering the whole string
        if all(secret[i] == secret[i % p] for i in range(n)):
            unit = secret[:p]
            break
    counts = Counter(unit)
    m = len(unit)
    per_char = -sum(c / m * math.log2(c / m) for c in counts.values())
    return min(m * per_char, m * math.log2(len(counts)) if len(counts) > 1 else 0.0)


def weak_secret(secret: str, min_bits: float = MIN_SECRET_BITS) -> str | None:
    """Why ``secret`` is too weak to sign with, or None if it is strong enough."""
    if len(secret) < 32:
        return f"it has {len(secret)} characters (at least 32 random ones are needed)"
    bits = entropy_bits(secret)
    if bits < min_bits:
        return (
            f"its estimated entropy is {bits:.0f} bits (at least {min_bits:.0f} needed): "
            "repeated or patterned characters; generate one with "
            "`openssl rand -hex 32`"
        )
    return None


_SECRET_KEYS = frozenset({"password", "pass", "pwd", "secret", "token", "sslpassword"})
_DSN_PASSWORD = re.compile(r"(\b(?:password|sslpassword)\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def redact(url: str) -> str:
    """The URL (or libpq ``key=value`` string) with every password replaced by ``***``:
    what may reach a log, a terminal or an error message. The user name stays, since it
    tells an operator which account is used."""
    if "://" not in url:
        return _DSN_PASSWORD.sub(r"\1***", url)
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_KEYS for k, _ in pairs):
            query = urlencode(
                [(k, "***" if k.lower() in _SECRET_KEYS else v) for k, v in pairs], safe="*"
            )
    return urlunsplit(parts._replace(netloc=netloc, query=query))

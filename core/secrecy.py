"""Secrets kept secret: how strong a signing secret must be, and URLs redacted before
they reach a log, a terminal or an error message. Pure, and light to import (settings
and every command's start line use it; ``credentials`` loads argon2).

A signing secret (the QR key) is judged by an entropy *estimate*, because a length
check passes 36 × "a".
"""

from __future__ import annotations

import math
import re
from collections import Counter
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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

"""Secrets Offsite generates for itself, kept in the data directory (OFFSITE_DATA_DIR).

A deployment that sets no QR secret must not fall back to a constant published in the
source (anyone could forge a check-in code): a random one is generated once, written
with mode 0600 and read back on every start, so printed codes keep working across
restarts. Production sets its secrets explicitly (every replica needs the same key).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path

from offsite.core.errors import SettingsError

log = logging.getLogger("offsite.secrets")


def local_secret(data_dir: Path, name: str) -> str:
    """The secret kept in ``data_dir/secrets/<name>``, created (256 random bits) if absent.

    Created with O_EXCL, so two processes starting at once agree on one secret: the
    loser reads the winner's file. A file readable by others is refused, not used.
    """
    folder = data_dir / "secrets"
    path = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return _read(path)
        value = secrets.token_urlsafe(32)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(value + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise SettingsError(f"cannot keep the {name} secret in {path}: {exc}") from exc
    log.warning(
        "no OFFSITE_%s set: generated a random one and kept it in %s (mode 0600); "
        "set OFFSITE_%s to choose your own",
        name.upper(),
        path,
        name.upper(),
    )
    return value


def _read(path: Path) -> str:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SettingsError(
            f"{path} is readable by others (mode {mode:o}): chmod 600 it, or delete it "
            "to have a new secret generated (codes printed with the old one stop working)"
        )
    value = ""
    for _ in range(50):  # created a moment ago by another process, still being written
        value = path.read_text(encoding="ascii").strip()
        if value:
            break
        time.sleep(0.02)
    if not value:
        raise SettingsError(f"{path} is empty: delete it to have a new secret generated")
    return value

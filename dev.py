#!/usr/bin/env python3
"""Bootstrap and run: ``python3 dev.py demo [args]`` or ``python3 dev.py test [pytest args]``.

Creates ``.venv`` (once, or again when pyproject.toml changes), installs Offsite with
its development extras into it, then runs the demo or the whole test suite. Needs only
Python 3.11+; everything else (embedded PostgreSQL, embedded MQTT broker) comes from PyPI.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("OFFSITE_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".offsite-installed"


def _fingerprint() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs before the check
        sys.exit(f"Offsite needs Python 3.11 or newer (this is {sys.version.split()[0]})")
    if not (BIN / "python").exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    print("installing Offsite and its dependencies (first run only)…", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(_fingerprint())


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "offsite"):
        print(__doc__)
        return 2
    ensure_venv()
    cmd, rest = argv[0], argv[1:]
    if cmd == "test":
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    elif cmd == "demo":
        args = [str(BIN / "offsite"), "demo", *rest]
    else:
        args = [str(BIN / "offsite"), *rest]
    os.chdir(ROOT)
    proc = subprocess.Popen(args)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            # the command got the same Ctrl-C and stops by itself (the demo commits what
            # it holds and prints its summary): wait for it rather than leave it behind
            continue


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

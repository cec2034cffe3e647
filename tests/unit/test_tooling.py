"""Strict tooling is part of the suite: ruff over the tree, mypy over the packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_clean():
    res = _run(str(BIN / "ruff"), "check", ".")
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_clean():
    res = _run(sys.executable, "-m", "mypy", "offsite", "ingest", "rules", "store", "api",
               "simulators", "bench")
    assert res.returncode == 0, res.stdout + res.stderr

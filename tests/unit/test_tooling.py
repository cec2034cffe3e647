"""Strict tooling is part of the suite: ruff over the tree, mypy over the packages."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_clean():
    res = _run(str(BIN / "ruff"), "check", ".")
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_format_clean():
    res = _run(str(BIN / "ruff"), "format", "--check", ".")
    assert res.returncode == 0, res.stdout + res.stderr


def _package_tree(tmp: Path) -> Path:
    """The import package as the wheel lays it out (pyproject's package-dir), as links:
    mypy follows no setuptools mapping, so it is shown the installed shape."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    root = tmp / "offsite"
    root.mkdir()
    for entry in (ROOT / "offsite").iterdir():
        (root / entry.name).symlink_to(entry)
    for name, folder in setuptools["package-dir"].items():
        if name != "offsite":
            (tmp / name.replace(".", "/")).symlink_to(ROOT / folder)
    return root


def test_mypy_clean(tmp_path: Path):
    res = _run(
        sys.executable,
        "-m",
        "mypy",
        "--cache-dir",
        str(ROOT / ".mypy_cache"),
        str(_package_tree(tmp_path)),
    )
    assert res.returncode == 0, res.stdout + res.stderr

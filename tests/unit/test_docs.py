"""The README and the examples stay true to the code."""

from __future__ import annotations

from pathlib import Path

from offsite.core.registry import load_registry_file
from offsite.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_readme_documents_every_setting_and_no_other():
    readme = (ROOT / "README.md").read_text()
    table = {
        line.split("`")[1]
        for line in readme.splitlines()
        if line.startswith("| `OFFSITE_") and not line.startswith("| `OFFSITE_TEST_")
    }
    assert table == {f"OFFSITE_{name.upper()}" for name in Settings.model_fields}


def test_example_registry_loads():
    reg = load_registry_file(ROOT / "examples" / "registry.toml")
    assert {e.id for e in reg.enterprises} == {"E0001", "E0002"}
    assert dict(reg.points[0].limits)["a21026"] == 35.0

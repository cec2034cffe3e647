"""Browser tests drive Debian's chromium through Playwright (never Playwright's own
browser builds). Without chromium or the playwright package they skip with the reason —
except under OFFSITE_TEST_REQUIRE_SERVICES (CI), where that is a failure."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests import services

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def chromium_path() -> str | None:
    explicit = os.environ.get("OFFSITE_TEST_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    found = next((c for c in CANDIDATES if Path(c).exists()), None)
    return found or shutil.which("chromium")


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path, why = None, "the playwright package is not installed (pip install -e .[dev])"
    else:
        why = "no chromium (apt-get install chromium, or set OFFSITE_TEST_CHROMIUM)"
    if path is None:
        if services.required():
            pytest.fail(f"browser tests cannot run: {why}")
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS

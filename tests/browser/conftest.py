"""A real browser: Debian's Chromium driven by Playwright (never a downloaded browser).

Skipped, with the reason said, when Chromium or Playwright is missing, unless
CITYCREDIT_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.sweep import demo  # noqa: F401 - the demo-seeded city of the axe sweeps
from tests.e2e.conftest import city  # noqa: F401 - the live city fixture, reused here

CHROMIUM = os.environ.get("CITYCREDIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# The flags this workplace's network needs (no background connections to Google's services).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright)"
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CITYCREDIT_CHROMIUM)"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = browser_unavailable()
    if reason is not None:
        if os.environ.get("CITYCREDIT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"a browser is required here but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()

"""Fixtures of the rating tests."""

from pathlib import Path

import pytest
from django.core.cache import cache

from tests.conftest import need_service

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(autouse=True)
def empty_cache():
    """Rater pages cache reference-photo URLs per concept; ids repeat across tests, so start empty."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, one per test module."""
    if not CHROMIUM.exists():
        need_service(f"Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()

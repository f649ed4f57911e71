"""Fixtures for the browser tests: one headless Chromium per module, a dashboard served
from a thread, and a folder for the screenshots each test leaves behind."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pgwerk import Werk
from pgwerk.dashboard import Dashboard
from tests.browser.support import artefact_dir, browser_missing, chrome, serve


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = browser_missing()
    if missing:
        # A fresh laptop runs the suite with Python alone; CI installs the browser and
        # sets PGWERK_REQUIRE_BROWSER=1, where a missing one is a failure.
        if os.environ.get("PGWERK_REQUIRE_BROWSER") == "1":
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    driver = chrome(width=1400, height=900)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``$PGWERK_ARTEFACTS`` (CI keeps it) or a pytest temporary folder."""
    return artefact_dir(str(tmp_path_factory.mktemp("browser-artefacts")))


Open = Callable[..., str]


@pytest.fixture
def open_dashboard(browser: Any, artefacts: str,
                   request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """``open_dashboard(app, **options)`` serves ``Dashboard(app, **options)`` and
    returns its base URL; the browser's last page is saved as a screenshot at the end."""
    stack: list[Any] = []

    def start(app: Werk, **options: Any) -> str:
        # No auto-refresh unless a test asks: a refresh replaces the page's content (and
        # its flash message) under a test that reads it.
        options.setdefault("refresh", 0)
        server = serve(Dashboard(app, **options))
        base = server.__enter__()
        stack.append(server)
        browser.delete_all_cookies()
        return base

    yield start
    try:
        browser.save_screenshot(os.path.join(artefacts, f"{request.node.name}.png"))
    finally:
        for server in reversed(stack):
            server.__exit__(None, None, None)

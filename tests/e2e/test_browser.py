"""Every page in a real browser: it opens, does its main action on the bundled demo, and is screenshot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import SHOTS

Page = Any


def _settle(page: Page, timeout: float = 120_000) -> None:
    """Wait until the script run is over (the running indicator is gone) and no exception shows."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    page.wait_for_timeout(500)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]').first.inner_text()


def _type(page: Page, label: str, text: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(text)
    box.press("Enter")
    _settle(page)


def _overview(page: Page) -> None:
    assert page.get_by_text("30,522 tokens × 384 dimensions").count() >= 1


def _lookup(page: Page) -> None:
    _type(page, "Text", "Hello world")
    assert page.get_by_text("2 piece(s), 384 values each").count() == 1


#: url path → (heading, main action). Pages not built yet are skipped when their heading is absent.
PAGES: dict[str, tuple[str, Callable[[Page], None]]] = {
    "": ("Overview", _overview),
    "lookup": ("Token lookup", _lookup),
}


@pytest.mark.e2e
@pytest.mark.parametrize("path", list(PAGES))
def test_page_in_browser(server: str, browser: Any, path: str) -> None:
    heading, action = PAGES[path]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{server}/{path}", timeout=120_000)
        _settle(page)
        page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
        action(page)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{path or 'overview'}.png"), full_page=True)
    finally:
        page.close()

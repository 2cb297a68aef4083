"""Browser fixtures: Debian's headless Chromium, driven by Playwright, against the session's stack.

Every page a test opens fails the test if the page throws, or if the browser reports a
Content-Security-Policy or Trusted Types violation: the pages must work under their own policy.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Locator, Page, async_playwright, expect

from deploy.stack import Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
SCREENSHOTS = Path(os.environ.get("LIVEFEED_SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "livefeed-screenshots")
"""Where the screenshot test writes: a temp folder, so a test run leaves the checkout clean.
``LIVEFEED_SCREENSHOTS_DIR=docs/screenshots`` refreshes the README's pictures on purpose."""
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

expect.set_options(timeout=10_000)


def _require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run deploy/install.sh --test (it installs Debian's chromium)")


@pytest.fixture(scope="session")
async def browser(stack: Stack) -> AsyncIterator[Browser]:
    _require_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield launched
        finally:
            await launched.close()


async def new_context(browser: Browser, base_url: str, **options: Any) -> BrowserContext:
    """A fresh profile on the gateway: UTC, British English, no motion, every wait bounded."""
    settings: dict[str, Any] = {"viewport": DESKTOP, "timezone_id": "UTC", "locale": "en-GB",
                                "reduced_motion": "reduce", "base_url": base_url}
    settings.update(options)
    context = await browser.new_context(**settings)
    context.set_default_timeout(10_000)
    context.set_default_navigation_timeout(20_000)
    return context


class PageProblems:
    """Script errors, dialogs and policy violations seen on the pages of one test."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text or "TrustedHTML" in text or "Trusted Type" in text:
            self.errors.append(f"policy violation: {text}")

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()


@pytest.fixture
async def problems() -> AsyncIterator[PageProblems]:
    seen = PageProblems()
    yield seen
    assert not seen.errors, seen.errors
    assert not seen.dialogs, f"a dialog opened: {seen.dialogs}"


@pytest.fixture
async def context(browser: Browser, base_url: str) -> AsyncIterator[BrowserContext]:
    ctx = await new_context(browser, base_url)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def page(context: BrowserContext, problems: PageProblems) -> Page:
    return problems.watch(await context.new_page())


async def open_reader(page: Page, feed: str, fragment: str = "") -> None:
    """Open a feed's reader page and wait until its stream is live."""
    await page.goto(f"/feeds/{feed}{fragment}")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")


async def post(api: httpx.AsyncClient, feed: str, headline: str, **fields: Any) -> dict[str, Any]:
    response = await api.post(f"/v1/feeds/{feed}/items", json={"headline": headline, **fields})
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()["item"]
    return item


def article(page: Page, item: dict[str, Any] | str) -> Locator:
    item_id = item if isinstance(item, str) else item["id"]
    return page.locator(f"#feed > article#item-{item_id}")

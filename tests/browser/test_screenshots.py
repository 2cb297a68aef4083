"""Screenshots of the reader page (desktop, phone, dark) and the console, for the README.

They are taken of a realistic feed so a reviewer can see what readers and editors see. A test
run writes them to a temp folder; refresh the README's copies on purpose with
``LIVEFEED_SCREENSHOTS_DIR=docs/screenshots ./deploy/test.sh tests/browser/test_screenshots.py``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.conftest import TEST_TOKEN

from .conftest import DESKTOP, PHONE, SCREENSHOTS, new_context, open_reader, post

pytestmark = pytest.mark.browser

STORY: list[dict[str, Any]] = [
    {"headline": "Storm Dara: what we know so far", "pinned": True, "key_event": True,
     "body": "Gusts of up to 140 km/h hit the west coast overnight. 80,000 homes are without power, rail "
             "services are suspended north of the capital and schools in three regions are closed today.",
     "tags": ["summary"], "byline": "Live desk"},
    {"headline": "Red weather warning issued for the west coast", "key_event": True,
     "body": "The national weather service raised its warning to red, the highest level, from 18:00.",
     "tags": ["weather", "warning"]},
    {"headline": "Rail operator suspends all services north of the capital",
     "body": "Trees on the line at several points; the operator says buses will replace trains from noon.",
     "tags": ["transport"], "url": "https://rail.example/status"},
    {"headline": "Prime minister to chair emergency committee at 10:00",
     "body": "Ministers will discuss support for households without power.", "tags": ["politics"]},
    {"headline": "80,000 homes without power, grid operator says", "urgency": "breaking", "key_event": True,
     "body": "Crews are working to restore supply but warned some customers could be cut off for two days.",
     "tags": ["power"], "byline": "Energy correspondent"},
    {"headline": "Coastguard rescues crew of fishing boat off the north cape",
     "body": "All five crew members were airlifted to hospital and are said to be in a stable condition.",
     "tags": ["rescue"]},
]
CORRECTION = {"body": "All five crew members were airlifted to hospital; two are being treated for hypothermia."}


@pytest.fixture
def story_feed() -> str:
    """One feed name per test session (each session starts its own stack), so the title reads well."""
    return "storm-dara"


async def test_screenshots_of_the_reader_and_the_console(
    browser: Browser, api: httpx.AsyncClient, base_url: str, story_feed: str
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    items = [await post(api, story_feed, **fields) for fields in STORY]
    fixed = await api.patch(f"/v1/feeds/{story_feed}/items/{items[-1]['id']}", json=CORRECTION)
    assert fixed.status_code == 200

    shots: dict[str, dict[str, Any]] = {
        "reader-desktop": {"viewport": DESKTOP},
        "reader-phone": {"viewport": PHONE, "is_mobile": True, "has_touch": True, "device_scale_factor": 2},
        "reader-dark": {"viewport": DESKTOP, "color_scheme": "dark"},
    }
    for name, options in shots.items():
        context = await new_context(browser, base_url, **options)
        try:
            page = await context.new_page()
            await open_reader(page, story_feed)
            await expect(page.locator("#feed > article")).to_have_count(len(STORY))
            await expect(page.locator(".item-updated")).to_contain_text("v2")
            await page.screenshot(path=SCREENSHOTS / f"{name}.png")
        finally:
            await context.close()

    context = await new_context(browser, base_url, viewport={"width": 1280, "height": 1000})
    try:
        page = await context.new_page()
        await page.goto(f"/newsroom?feed={story_feed}")
        await page.fill("#token", TEST_TOKEN)
        await page.click("#signin-form button[type=submit]")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        await page.fill("#f-headline", "Power restored to 20,000 homes")
        await page.fill("#f-body", "The grid operator says crews have reconnected the first districts.")
        await page.fill("#f-tags", "power")
        await expect(page.locator("#preview .item-headline")).to_have_text("Power restored to 20,000 homes")
        await page.screenshot(path=SCREENSHOTS / "console.png")
    finally:
        await context.close()
    for name in ("reader-desktop", "reader-phone", "reader-dark", "console"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000, name

"""The newsroom console in a real browser: sign in, post, preview, correct, retract."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.conftest import EDITOR, REPORTER, TEST_TOKEN, bearer

from .conftest import PageProblems, article, open_reader, post

pytestmark = pytest.mark.browser


async def sign_in(page: Page, feed: str, token: str = TEST_TOKEN) -> None:
    await page.goto(f"/newsroom?feed={feed}")
    await page.fill("#token", token)
    await page.click("#signin-form button[type=submit]")


async def test_the_console_posts_corrects_and_retracts_what_a_reader_page_shows(
    context: BrowserContext, problems: PageProblems, api: httpx.AsyncClient, feed: str
) -> None:
    reader = problems.watch(await context.new_page())
    await open_reader(reader, feed)
    console = problems.watch(await context.new_page())
    await sign_in(console, feed)
    await expect(console.locator("#desk")).to_be_visible()
    await expect(console.locator("#conn")).to_have_attribute("data-state", "live")
    assert await console.evaluate("() => sessionStorage.getItem('livefeed.newsroom.token')") == TEST_TOKEN
    assert await console.evaluate("() => localStorage.length") == 0

    await console.fill("#f-headline", "Polls close across the country")
    await console.fill("#f-body", "Counting starts now.\nFirst results are expected after midnight.")
    await console.fill("#f-tags", "election, Results")
    await console.check("#f-breaking")
    await console.check("#f-key")
    preview = console.locator("#preview .item")
    await expect(preview.locator(".item-headline")).to_have_text("Polls close across the country")
    await expect(preview.locator(".badge-breaking")).to_be_visible()
    await expect(preview.locator(".tag")).to_have_text(["election", "results"])
    await console.click("#submit")
    await expect(console.locator("#form-status")).to_contain_text("Published")
    await expect(console.locator("#f-headline")).to_have_value("")

    shown = reader.locator("#feed > article").first
    await expect(shown.locator(".item-headline")).to_have_text("Polls close across the country", timeout=2_000)
    await expect(shown.locator(".badge-breaking")).to_be_visible()
    body = "Counting starts now.\nFirst results are expected after midnight."
    await expect(shown.locator(".item-body")).to_have_text(body)
    await expect(reader.locator("#key-events a", has_text="Polls close across the country")).to_have_count(1)
    item_id = (await shown.get_attribute("data-id")) or ""
    listed = console.locator(f"#feed > article#item-{item_id}")
    await expect(listed).to_be_visible()

    await listed.get_by_role("button", name="Edit").click()
    await expect(console.locator("#f-headline")).to_have_value("Polls close across the country")
    await expect(console.locator("#submit")).to_have_text("Save correction")
    await console.fill("#f-headline", "Polls close in all regions")
    await console.click("#submit")
    await expect(console.locator("#form-status")).to_contain_text("Correction saved (v2)")
    await expect(shown.locator(".item-headline")).to_have_text("Polls close in all regions")
    await expect(shown.locator(".item-updated")).to_contain_text("v2")
    stored = (await api.get(f"/v1/feeds/{feed}/items/{item_id}")).json()
    assert stored["tags"] == ["election", "results"] and stored["key_event"] is True

    retract = console.locator(f"#feed > article#item-{item_id}").get_by_role("button", name="Retract")
    await retract.click()
    await expect(retract).to_have_text("Confirm retract")
    await retract.click()
    await expect(article(reader, item_id)).to_have_count(0)
    await expect(reader.locator("#key-events a", has_text="Polls close")).to_have_count(0)
    assert (await api.get(f"/v1/feeds/{feed}/items/{item_id}")).status_code == 410


async def test_a_stale_correction_is_refused_not_overwritten(
    page: Page, api: httpx.AsyncClient, feed: str
) -> None:
    item = await post(api, feed, "Original headline")
    await sign_in(page, feed)
    listed = page.locator(f"#feed > article#item-{item['id']}")
    await listed.get_by_role("button", name="Edit").click()
    await page.fill("#f-headline", "My correction")
    other = await api.patch(f"/v1/feeds/{feed}/items/{item['id']}", json={"body": "Someone else's edit"})
    assert other.status_code == 200
    await expect(page.locator("#editing")).to_contain_text("now v2")
    await page.click("#submit")
    await expect(page.locator("#form-error")).to_contain_text("not saved")
    current = (await api.get(f"/v1/feeds/{feed}/items/{item['id']}")).json()
    assert current["headline"] == "Original headline" and current["version"] == 2


async def test_the_console_refuses_a_wrong_token_and_checks_fields(page: Page, feed: str) -> None:
    await sign_in(page, feed, token="not-the-token")
    await expect(page.locator("#signin-error")).to_contain_text("not accepted")
    await expect(page.locator("#desk")).to_be_hidden()
    assert await page.evaluate("() => sessionStorage.length") == 0

    await sign_in(page, feed)
    await expect(page.locator("#desk")).to_be_visible()
    await page.fill("#f-headline", "Tagged badly")
    await page.fill("#f-tags", "ok, not a tag!")
    await page.click("#submit")
    await expect(page.locator("#e-tags")).to_contain_text("Not a tag: tag!")
    await expect(page.locator("#f-tags")).to_have_attribute("aria-invalid", "true")
    await page.click("#signout")
    await expect(page.locator("#signin-panel")).to_be_visible()
    assert await page.evaluate("() => sessionStorage.getItem('livefeed.newsroom.token')") is None


async def test_the_console_shows_who_posted_and_changed_each_item_and_what_a_role_may_not_do(
    page: Page, base_url: str, feed: str
) -> None:
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(EDITOR.token), timeout=15) as editor:
        await sign_in(page, feed, token=REPORTER.token)
        await expect(page.locator("#desk")).to_be_visible()
        await page.fill("#f-headline", "Sirens in the city centre")
        await page.click("#submit")
        await expect(page.locator("#form-status")).to_contain_text("Published")
        listed = page.locator("#feed > article", has_text="Sirens in the city centre")
        await expect(listed.locator(".item-who")).to_have_text(f"Posted by {REPORTER.name}")

        item_id = (await listed.get_attribute("data-id")) or ""
        corrected = await editor.patch(f"/v1/feeds/{feed}/items/{item_id}", json={"body": "Confirmed by police."})
        assert corrected.status_code == 200, corrected.text
        await expect(article(page, item_id).locator(".item-who")).to_have_text(
            f"Posted by {REPORTER.name} · last change by {EDITOR.name}")

        await article(page, item_id).get_by_role("button", name="Pin").click()
        await expect(page.locator("#form-error")).to_contain_text("needs items:pin")
        await expect(page.locator("#desk")).to_be_visible()

"""The reader page in a real browser, against the real stack through the gateway."""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, WebSocketRoute, expect

from deploy.stack import Stack

from .conftest import PageProblems, article, new_context, open_reader, post

pytestmark = pytest.mark.browser

# Markup and mixed scripts that must stay text, as newsroom tools really send them.
MARKUP_HEADLINE = "Test item with markup that must render as text: <script>alert(1)</script> & <b>bold</b>"
MARKUP_BODY = (
    "Bodies and headlines are plain text. A reader page must show these characters literally: "
    "<img src=x onerror=alert(2)> \"quotes\" 'apostrophes' — dashes, emoji 🇺🇦, and right-to-left text: مرحبا."
)


async def history_reached(api: httpx.AsyncClient, feed: str, cursor: str, timeout: float = 10.0) -> None:
    """Wait until history's snapshot of ``feed`` reflects the event at ``cursor``."""
    deadline = time.monotonic() + timeout
    while (await api.get(f"/v1/feeds/{feed}/items")).json()["cursor"] != cursor:
        assert time.monotonic() < deadline, f"history did not reach {cursor} in {timeout}s"
        await asyncio.sleep(0.05)


def ld_json(html: str) -> list[str]:
    return re.findall(r'<script type="application/ld\+json">(.*?)</script>', html, flags=re.S)


async def test_first_response_holds_the_items_json_ld_and_a_strict_policy(
    api: httpx.AsyncClient, browser: Browser, base_url: str, feed: str
) -> None:
    key = await post(api, feed, "Talks open in Geneva", key_event=True, body="Day one.")
    await post(api, feed, MARKUP_HEADLINE, body=MARKUP_BODY + " </script><!--", tags=["test"])
    written = await api.post(f"/v1/feeds/{feed}/items",
                             json={"headline": "Ceasefire agreed", "urgency": "breaking", "byline": "Desk"})
    newest = written.json()["item"]
    await history_reached(api, feed, written.json()["cursor"])

    response = await api.get(f"/feeds/{feed}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = {d.split()[0]: d.split()[1:] for d in response.headers["content-security-policy"].split(";")}
    assert policy["script-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"]
    assert "'self'" in policy["connect-src"]
    assert "unsafe" not in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    html = response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert f'data-cursor="{written.json()["cursor"]}"' in html

    blocks = ld_json(html)
    assert len(blocks) == 1
    posting = json.loads(blocks[0])
    assert posting["@type"] == "LiveBlogPosting" and posting["@context"] == "https://schema.org"
    assert posting["coverageStartTime"] == key["published_at"]
    updates = posting["liveBlogUpdate"]
    assert [u["headline"] for u in updates] == [newest["headline"], MARKUP_HEADLINE, key["headline"]]
    assert updates[0]["url"].endswith(f"/feeds/{feed}#item-{newest['id']}")
    assert updates[0]["datePublished"] == newest["published_at"]
    assert updates[1]["articleBody"] == MARKUP_BODY + " </script><!--"

    no_js = await new_context(browser, base_url, java_script_enabled=False)
    try:
        page = await no_js.new_page()
        await page.goto(f"/feeds/{feed}")
        await expect(page.locator("#feed > article")).to_have_count(3)
        await expect(page.locator("#feed > article").first.locator(".item-headline")).to_have_text("Ceasefire agreed")
        await expect(page.locator("#key-events a")).to_have_count(1)
    finally:
        await no_js.close()


async def test_a_post_appears_within_a_second_then_is_edited_in_place_and_retracted(
    page: Page, api: httpx.AsyncClient, feed: str
) -> None:
    older = await post(api, feed, "Earlier update")
    await open_reader(page, feed)

    started = time.monotonic()
    item = await post(api, feed, "Explosions reported in the capital", urgency="breaking", body="Witnesses said…")
    await expect(article(page, item)).to_be_visible(timeout=1_000)
    assert time.monotonic() - started < 1.0
    first = page.locator("#feed > article").first
    await expect(first).to_have_attribute("id", f"item-{item['id']}")
    await expect(first.locator(".badge-breaking")).to_have_text("Breaking")
    await expect(page.locator("#announcer")).to_have_text("Breaking: Explosions reported in the capital")
    await page.evaluate("id => { document.getElementById(id).dataset.marker = 'same-node' }", f"item-{item['id']}")

    edited = await api.patch(f"/v1/feeds/{feed}/items/{item['id']}", json={"headline": "Explosions confirmed"},
                             headers={"If-Match": '"1"'})
    assert edited.status_code == 200, edited.text
    await expect(first.locator(".item-headline")).to_have_text("Explosions confirmed")
    await expect(first.locator(".item-updated")).to_contain_text("v2")
    await expect(first.locator(".item-updated")).to_contain_text("Updated")
    await expect(page.locator("#feed > article")).to_have_count(2)
    assert await first.get_attribute("data-version") == "2"

    retracted = await api.delete(f"/v1/feeds/{feed}/items/{item['id']}")
    assert retracted.status_code == 200, retracted.text
    await expect(article(page, item)).to_have_count(0)
    await expect(page.locator("#feed > article")).to_have_count(1)
    await expect(article(page, older)).to_be_visible()


async def test_a_scrolled_down_reader_gets_a_button_not_a_jump(
    page: Page, api: httpx.AsyncClient, feed: str
) -> None:
    items = [await post(api, feed, f"Update number {n}", body="A paragraph of text. " * 12) for n in range(15)]
    await page.set_viewport_size({"width": 1280, "height": 700})
    await open_reader(page, feed)
    anchor = article(page, items[5])
    await anchor.scroll_into_view_if_needed()
    await page.evaluate("() => window.scrollBy(0, 200)")
    before_y = await page.evaluate("() => window.scrollY")
    before_box = await anchor.bounding_box()
    assert before_y > 0 and before_box is not None

    first_new = await post(api, feed, "Fresh update while reading")
    button = page.locator("#new-updates")
    await expect(button).to_be_visible()
    await expect(button).to_have_text("↑ 1 new update")
    second_new = await post(api, feed, "Another fresh update")
    await expect(button).to_have_text("↑ 2 new updates")
    await expect(page.locator("#announcer")).to_have_text("2 new updates above.")
    await expect(page).to_have_title(re.compile(r"^\(2\) "))
    assert await page.evaluate("() => window.scrollY") == before_y
    assert await anchor.bounding_box() == before_box
    await expect(article(page, first_new)).to_have_count(0)

    await button.click()
    await expect(button).to_be_hidden()
    await expect(page).to_have_title(re.compile(r"^[^(]"))
    newest = article(page, second_new)
    await expect(newest).to_be_in_viewport()
    await expect(newest).to_be_focused()
    await expect(page.locator("#feed > article").nth(1)).to_have_attribute("id", f"item-{first_new['id']}")
    await expect(page.locator("#feed > article")).to_have_count(17)


async def test_markup_shows_as_text_and_no_script_runs(
    page: Page, problems: PageProblems, api: httpx.AsyncClient, feed: str
) -> None:
    rendered = await post(api, feed, MARKUP_HEADLINE, body=MARKUP_BODY, tags=["test"], byline="<i>Desk</i>")
    await page.add_init_script("window.__pwned = false; window.alert = () => { window.__pwned = true; };")
    await open_reader(page, feed)
    live = await post(api, feed, MARKUP_HEADLINE + " (live)", body=MARKUP_BODY + " <svg onload=alert(3)>")

    for item in (rendered, live):
        node = article(page, item)
        await expect(node.locator(".item-headline")).to_have_text(item["headline"])
        await expect(node.locator(".item-body")).to_have_text(item["body"])
    await expect(article(page, rendered).locator(".item-byline")).to_have_text("<i>Desk</i>")
    feed_el = page.locator("#feed")
    for tag in ("script", "img", "svg", "b", "i"):
        await expect(feed_el.locator(tag)).to_have_count(0)
    assert await page.evaluate("() => window.__pwned") is False
    assert await page.evaluate("() => document.scripts.length") == 2
    assert problems.dialogs == []


async def test_the_page_reconnects_after_a_fanout_restart_and_misses_nothing(
    page: Page, api: httpx.AsyncClient, feed: str, stack: Stack
) -> None:
    await post(api, feed, "Before the outage")
    await open_reader(page, feed)
    try:
        await asyncio.to_thread(stack.stop_process, "fanout")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
        await expect(page.locator("#conn")).to_have_text("Reconnecting…")
        during = [await post(api, feed, f"Posted while fanout was down {n}") for n in range(2)]
    finally:
        if "fanout" not in stack.procs:
            await asyncio.to_thread(stack.start_service, "fanout")
    for item in during:
        await expect(article(page, item)).to_be_visible(timeout=30_000)
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    after = await post(api, feed, "After the outage")
    await expect(article(page, after)).to_be_visible()
    ids = await page.locator("#feed > article").evaluate_all("nodes => nodes.map(n => n.id)")
    assert len(ids) == len(set(ids)) == 4


async def test_a_key_event_from_long_ago_is_listed_and_its_link_loads_it(
    page: Page, api: httpx.AsyncClient, feed: str
) -> None:
    key = await post(api, feed, "Parliament votes to hold an inquiry", key_event=True)
    for n in range(45):
        await post(api, feed, f"Later update {n}")
    await open_reader(page, feed)
    link = page.locator("#key-events a", has_text="Parliament votes to hold an inquiry")
    await expect(link).to_have_count(1)
    await expect(article(page, key)).to_have_count(0)
    await expect(page.locator("#feed > article")).to_have_count(20)

    await link.click()
    await expect(article(page, key)).to_be_in_viewport()
    await expect(article(page, key)).to_be_focused()
    assert page.url.endswith(f"#item-{key['id']}")
    await expect(page.locator("#feed > article")).to_have_count(46)

    permalink = await page.context.new_page()
    try:
        await open_reader(permalink, feed, f"#item-{key['id']}")
        await expect(article(permalink, key)).to_be_in_viewport()
    finally:
        await permalink.close()


async def test_load_older_pages_back_without_duplicates(page: Page, api: httpx.AsyncClient, feed: str) -> None:
    items = [await post(api, feed, f"Item {n}") for n in range(25)]
    await open_reader(page, feed)
    await expect(page.locator("#feed > article")).to_have_count(20)
    await page.locator("#load-older").click()
    await expect(page.locator("#feed > article")).to_have_count(25)
    await expect(page.locator("#load-older")).to_be_hidden()
    ids = await page.locator("#feed > article").evaluate_all("nodes => nodes.map(n => n.dataset.id)")
    assert ids == [i["id"] for i in reversed(items)]


async def test_a_pinned_update_stays_on_top_however_old(page: Page, api: httpx.AsyncClient, feed: str) -> None:
    pinned = await post(api, feed, "Summary: what we know so far", pinned=True)
    for n in range(25):
        await post(api, feed, f"Update {n}")
    await open_reader(page, feed)
    first = page.locator("#feed > article").first
    await expect(first).to_have_attribute("id", f"item-{pinned['id']}")
    await expect(first.locator(".badge-pinned")).to_have_text("Pinned")
    fresh = await post(api, feed, "A new update goes below the pinned one")
    await expect(page.locator("#feed > article").nth(1)).to_have_attribute("id", f"item-{fresh['id']}")
    assert (await api.delete(f"/v1/feeds/{feed}/items/{pinned['id']}/pin")).status_code == 200
    await expect(first).to_have_attribute("id", f"item-{fresh['id']}")


async def test_keyboard_moves_between_updates(page: Page, api: httpx.AsyncClient, feed: str) -> None:
    items = [await post(api, feed, f"Keyboard {n}") for n in range(3)]
    await open_reader(page, feed)
    await page.keyboard.press("j")
    await expect(article(page, items[2])).to_be_focused()
    await page.keyboard.press("j")
    await expect(article(page, items[1])).to_be_focused()
    await page.keyboard.press("k")
    await expect(article(page, items[2])).to_be_focused()
    await expect(page.locator("#announcer")).to_have_attribute("aria-live", "polite")


async def test_an_empty_feed_shows_its_first_post(page: Page, api: httpx.AsyncClient, feed: str) -> None:
    await open_reader(page, feed)
    await expect(page.locator("#feed-empty")).to_be_visible()
    first = await post(api, feed, "The very first update")
    await expect(article(page, first)).to_be_visible(timeout=2_000)
    await expect(page.locator("#feed-empty")).to_be_hidden()


async def test_a_reset_reloads_the_snapshot_and_the_page_goes_on_live(
    page: Page, api: httpx.AsyncClient, feed: str
) -> None:
    kept = await post(api, feed, "Still published")
    gone = await post(api, feed, "Retracted while the reader was away")
    # The page starts from a cursor the server cannot continue (another topic epoch), and the
    # item is retracted after the page was served: only reloading the snapshot can drop it.
    await page.add_init_script("""
        new MutationObserver((_, observer) => {
            const main = document.getElementById('main');
            if (main) { main.dataset.cursor = 'deadbeef.0.5'; observer.disconnect(); }
        }).observe(document, { childList: true, subtree: true });
    """)
    streams: list[str] = []

    async def first_stream_after_a_retraction(route: WebSocketRoute) -> None:
        streams.append(route.url)
        if len(streams) == 1:
            assert (await api.delete(f"/v1/feeds/{feed}/items/{gone['id']}")).status_code == 200
        route.connect_to_server()

    await page.route_web_socket(re.compile(rf".*/v1/feeds/{feed}/stream.*"), first_stream_after_a_retraction)
    await page.goto(f"/feeds/{feed}")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    assert "since=deadbeef.0.5" in streams[0] and "deadbeef" not in streams[-1]
    await expect(article(page, gone)).to_have_count(0)
    await expect(article(page, kept)).to_be_visible()
    fresh = await post(api, feed, "After the reset")
    await expect(article(page, fresh)).to_be_visible()
    await expect(page.locator("#feed > article")).to_have_count(2)


async def test_the_last_update_time_follows_live_posts(page: Page, api: httpx.AsyncClient, feed: str) -> None:
    await open_reader(page, feed)
    await expect(page.locator(".title-block .dek")).to_have_count(0)
    item = await post(api, feed, "First of the day")
    await expect(page.locator(".title-block .dek time")).to_have_attribute("datetime", item["published_at"])


async def test_updates_that_arrive_while_an_empty_feeds_snapshot_loads_stay_on_the_page(
    page: Page, api: httpx.AsyncClient, feed: str
) -> None:
    """A page served with no cursor goes live, then loads what came before its stream began.

    That snapshot was taken before the updates arriving meanwhile, so it must be merged into
    the page, not replace it (a slow network holds the snapshot back here).
    """
    held = asyncio.Event()

    async def slow_snapshot(route: Route) -> None:
        response = await route.fetch()
        held.set()
        await asyncio.sleep(1.5)
        await route.fulfill(response=response)

    await page.route(f"**/v1/feeds/{feed}/items?*", slow_snapshot)
    await open_reader(page, feed)
    await asyncio.wait_for(held.wait(), 10)
    posted = [await post(api, feed, f"Arrived live {n}") for n in range(3)]
    for item in posted:
        await expect(article(page, item)).to_be_visible(timeout=5_000)
    await asyncio.sleep(2.5)
    for item in posted:
        await expect(article(page, item)).to_be_visible()

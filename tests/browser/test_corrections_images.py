"""Issue 12 in Chromium: corrections read "Corrected HH:MM: note" live and after a reload; pictures load
lazily into a box reserved before they arrive, so nothing shifts."""

from __future__ import annotations

import asyncio
import re
import struct
import zlib
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, Route, expect

from .conftest import PageProblems, article, open_reader, post
from .test_console import sign_in
from .test_reader import history_reached

pytestmark = pytest.mark.browser

CLOCK = r"\d{2}:\d{2}"
"""A time as an en-GB reader in UTC sees it (the browser context's locale and zone)."""
COLLECT_SHIFTS = """
window.__shift = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (!entry.hadRecentInput) window.__shift += entry.value;
}).observe({ type: 'layout-shift', buffered: true });
"""


def png(width: int, height: int) -> bytes:
    """A grey PNG of the given size, made here so the test needs no file and no network."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def test_a_correction_reads_corrected_with_its_note_live_and_after_reload(
    page: Page, api: httpx.AsyncClient, feed: str
) -> None:
    corrected = await post(api, feed, "Quake of magnitude 7.1")
    written = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "Roads closed"})
    assert written.status_code == 201, written.text
    edited = written.json()["item"]
    # The write's own cursor: a list read right after the post could predate it (cursor None).
    await history_reached(api, feed, written.json()["cursor"])
    await open_reader(page, feed)

    correction = {"headline": "Quake of magnitude 6.1", "correction": "The magnitude was 6.1, not 7.1."}
    fixed = await api.patch(f"/v1/feeds/{feed}/items/{corrected['id']}", json=correction)
    assert fixed.status_code == 200, fixed.text
    plain = await api.patch(f"/v1/feeds/{feed}/items/{edited['id']}", json={"body": "Route 1 too."})
    assert plain.status_code == 200, plain.text

    async def check() -> None:
        note = article(page, corrected["id"]).locator(".item-correction")
        await expect(note).to_have_text(re.compile(rf"^Corrected {CLOCK}: The magnitude was 6\.1, not 7\.1\.$"))
        await expect(article(page, corrected["id"]).locator(".item-updated")).to_have_count(0)
        await expect(article(page, corrected["id"]).locator(".item-revisions")).to_have_attribute(
            "href", f"/v1/feeds/{feed}/items/{corrected['id']}/revisions")
        await expect(article(page, edited["id"]).locator(".item-updated")).to_have_text(
            re.compile(rf"^Updated {CLOCK} · v2$"))
        await expect(article(page, edited["id"]).locator(".item-correction")).to_have_count(0)

    await check()
    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await check()
    revisions = await page.request.get(f"/v1/feeds/{feed}/items/{corrected['id']}/revisions")
    assert [v["headline"] for v in (await revisions.json())["revisions"]] == [
        "Quake of magnitude 7.1", "Quake of magnitude 6.1"]


async def test_an_image_loads_lazily_into_its_reserved_box_without_layout_shift(
    context: BrowserContext, problems: PageProblems, api: httpx.AsyncClient, feed: str
) -> None:
    requested: list[str] = []
    release_live = asyncio.Event()
    picture = png(3, 2)

    async def serve(route: Route) -> None:
        requested.append(route.request.url)
        if route.request.url.endswith("/live.png"):
            await release_live.wait()
        else:
            await asyncio.sleep(0.3)
        await route.fulfill(status=200, content_type="image/png", body=picture)

    await context.route("https://img.example/**", serve)

    def image(name: str) -> dict[str, Any]:
        return {"url": f"https://img.example/{name}.png", "alt": f"The {name} picture", "width": 1200, "height": 800}

    await post(api, feed, "Far down the page", images=[image("below")])
    for n in range(15):
        await post(api, feed, f"Filler {n}", body="A long body line that fills the page. " * 60)
    written = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "At the top", "images": [image("top")]})
    assert written.status_code == 201, written.text
    top = written.json()["item"]
    await history_reached(api, feed, written.json()["cursor"])

    page = problems.watch(await context.new_page())
    await page.add_init_script(COLLECT_SHIFTS)
    await open_reader(page, feed)
    top_img = article(page, top["id"]).locator("img")
    await expect(top_img).to_have_attribute("loading", "lazy")
    await page.wait_for_function("img => img.complete && img.naturalWidth === 3", arg=await top_img.element_handle())
    box = await top_img.bounding_box()
    assert box is not None and box["height"] == pytest.approx(box["width"] * 800 / 1200, abs=1)
    assert await page.evaluate("window.__shift") == 0, "loading a picture moved the page"
    assert "https://img.example/top.png" in requested
    assert "https://img.example/below.png" not in requested, "a picture far below the fold was loaded eagerly"

    below = page.locator("img[src='https://img.example/below.png']")
    below_box = await below.bounding_box()
    assert below_box is not None and below_box["height"] == pytest.approx(below_box["width"] * 800 / 1200, abs=1)
    await below.scroll_into_view_if_needed()
    await page.wait_for_function("img => img.complete && img.naturalWidth === 3", arg=await below.element_handle())

    await page.evaluate("window.scrollTo(0, 0)")
    live = await post(api, feed, "Live with a picture", images=[image("live")])
    live_img = article(page, live["id"]).locator("img")
    await expect(live_img).to_have_attribute("alt", "The live picture")
    await expect(live_img).to_have_attribute("loading", "lazy")
    before = await live_img.bounding_box()
    assert before is not None and before["height"] == pytest.approx(before["width"] * 800 / 1200, abs=1)
    assert await live_img.evaluate("img => img.complete") is False, "the box must be reserved before the picture"
    release_live.set()
    await page.wait_for_function("img => img.complete && img.naturalWidth === 3", arg=await live_img.element_handle())
    assert await live_img.bounding_box() == before


async def test_the_console_previews_a_picture_and_publishes_a_correction_note(
    context: BrowserContext, problems: PageProblems, api: httpx.AsyncClient, feed: str
) -> None:
    await context.route("https://img.example/**", lambda route: route.fulfill(content_type="image/png", body=png(3, 2)))
    reader = problems.watch(await context.new_page())
    await open_reader(reader, feed)
    console = problems.watch(await context.new_page())
    await sign_in(console, feed)
    await expect(console.locator("#desk")).to_be_visible()
    await expect(console.locator("#conn")).to_have_attribute("data-state", "live")
    await console.fill("#f-headline", "Bridge reopens")
    await console.fill("#f-image-url", "http://img.example/bridge.png")
    await console.click("#submit")
    await expect(console.locator("#e-images")).to_contain_text("https://")
    await expect(console.locator("#e-image_alt")).to_contain_text("Describe the image")
    await console.fill("#f-image-url", "https://img.example/bridge.png")
    await console.fill("#f-image-alt", "Cars crossing the bridge")
    preview = console.locator("#preview .item img")
    await expect(preview).to_have_attribute("src", "https://img.example/bridge.png")
    await expect(preview).to_have_attribute("alt", "Cars crossing the bridge")
    await expect(preview).to_have_attribute("loading", "lazy")
    await console.click("#submit")
    await expect(console.locator("#form-status")).to_contain_text("Published")
    shown = reader.locator("#feed > article").first
    await expect(shown.locator("img")).to_have_attribute("alt", "Cars crossing the bridge")

    item_id = (await shown.get_attribute("data-id")) or ""
    await console.locator(f"#feed > article#item-{item_id}").get_by_role("button", name="Edit").click()
    await expect(console.locator("#f-image-alt")).to_have_value("Cars crossing the bridge")
    await console.fill("#f-headline", "Bridge reopens to cars")
    await console.fill("#f-correction", "The bridge reopened to cars only.")
    await expect(console.locator("#preview .item-correction")).to_have_text(
        re.compile(rf"^Corrected {CLOCK}: The bridge reopened to cars only\.$"))
    await console.click("#submit")
    await expect(console.locator("#form-status")).to_contain_text("Correction saved (v2)")
    await expect(shown.locator(".item-correction")).to_have_text(
        re.compile(rf"^Corrected {CLOCK}: The bridge reopened to cars only\.$"))
    stored = (await api.get(f"/v1/feeds/{feed}/items/{item_id}")).json()
    assert stored["images"] == [{"url": "https://img.example/bridge.png", "alt": "Cars crossing the bridge",
                                 "caption": None, "credit": None, "width": None, "height": None}]
    await expect(console.locator("#correction-box")).to_be_hidden()

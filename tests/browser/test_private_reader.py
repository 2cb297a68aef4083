"""A private feed's reader page in a real browser: opened with ``?token=``, it shows the feed, reads and
streams with the token, and when the token expires it says so and stops instead of reconnecting.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from playwright.async_api import Page, Response, WebSocket, expect
from pydantic import SecretStr

from shared.reader_tokens import ReaderTokens
from tests.conftest import READER_TOKEN_KEY

from .conftest import article, post

pytestmark = pytest.mark.browser

TOKENS = ReaderTokens(SecretStr(READER_TOKEN_KEY))


@pytest.fixture
def private_feed() -> str:
    return f"private-{uuid.uuid4().hex[:12]}"


def watch_reads(page: Page, feed: str) -> list[Response]:
    """Every answer the page gets from the feed's API (its snapshot reads)."""
    seen: list[Response] = []
    page.on("response", lambda r: seen.append(r) if f"/v1/feeds/{feed}/" in r.url else None)
    return seen


async def test_a_private_page_opened_with_its_token_shows_items_and_goes_live(
    api: httpx.AsyncClient, page: Page, private_feed: str
) -> None:
    earlier = await post(api, private_feed, "Wire: earlier copy")
    token, _ = TOKENS.mint(private_feed, 600)
    refused = await page.goto(f"/feeds/{private_feed}")
    assert refused is not None and refused.status == 401
    await expect(page.locator("main")).to_contain_text("This feed is private")

    await page.goto(f"/feeds/{private_feed}?token={token}")
    await expect(article(page, earlier)).to_be_visible()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    live = await post(api, private_feed, "Wire: live copy")
    await expect(article(page, live)).to_contain_text("Wire: live copy")


async def test_a_private_page_with_no_snapshot_reads_with_its_token(
    api: httpx.AsyncClient, page: Page, private_feed: str
) -> None:
    """A feed without events yet has no snapshot cursor: the page catches up by reading the API."""
    token, _ = TOKENS.mint(private_feed, 600)
    reads = watch_reads(page, private_feed)
    await page.goto(f"/feeds/{private_feed}?token={token}")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    first = await post(api, private_feed, "Wire: first copy")
    await expect(article(page, first)).to_be_visible()
    deadline = time.monotonic() + 10
    while not reads:
        assert time.monotonic() < deadline, "the page never read the feed's API"
        await asyncio.sleep(0.1)
    assert all(r.status == 200 for r in reads), [(r.url, r.status) for r in reads]
    assert all(token not in r.url for r in reads), "reads send the token in a header, not the URL"


async def test_a_private_page_whose_token_expires_says_so_and_stops(
    api: httpx.AsyncClient, page: Page, private_feed: str
) -> None:
    await post(api, private_feed, "Wire: before expiry")
    token, expires = TOKENS.mint(private_feed, 6, now=time.time())
    sockets: list[WebSocket] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    await page.goto(f"/feeds/{private_feed}?token={token}")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "denied", timeout=20_000)
    assert time.time() >= expires - 0.5
    await expect(page.locator("#notice")).to_contain_text("has expired")
    await asyncio.sleep(3)
    assert len(sockets) == 1, "the page reconnected with a token that can only be refused"

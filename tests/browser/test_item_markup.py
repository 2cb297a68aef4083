"""An update that arrives live is the very markup the server renders: one source, not two in step."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from .conftest import article, open_reader, post
from .test_reader import history_reached

pytestmark = pytest.mark.browser

PARTS: dict[str, dict[str, Any]] = {
    "body": {"body": 'Line one <i>not italic</i> & "quoted" <script>alert(1)</script>.\nLine two.'},
    "byline": {"byline": "<em>Desk</em> & co"},
    "url": {},
    "tags": {"tags": ["alpha", "beta-2"]},
    "breaking": {"urgency": "breaking"},
    "pinned": {"pinned": True},
    "key_event": {"key_event": True},
    "images": {"images": [
        {"url": "https://img.example/a.png?x=1&y=2", "alt": 'A <b>picture</b> & "more"', "caption": "Cap <i>x</i>",
         "credit": "Cred & co"},
        {"url": "https://img.example/b.png", "alt": "B", "width": 30, "height": 20, "credit": "Only credit"},
    ]},
    "edited": {},
    "corrected": {},
}
"""Every optional part of an update; ``url`` takes the next of URLS, ``edited`` is a PATCH to the next version,
``corrected`` one with a correction note."""
URLS = ["http://Example.org", "https://example.org/a?b=1&c=2#top", "https://news.example:8443/story/1"]


def cases() -> list[frozenset[str]]:
    """No part, every part, each part alone and each part left out of all: every part on and off
    beside every other, and the foot both absent and holding each of its parts alone."""
    every = frozenset(PARTS)
    return [frozenset(), every, *(frozenset({p}) for p in PARTS), *(every - {p} for p in PARTS)]


class Canonical(HTMLParser):
    """Markup as tokens, attributes sorted and whitespace between tags dropped."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens: list[tuple[str, ...]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tokens.append(("<", tag, *sorted(f"{name}={value or ''}" for name, value in attrs)))

    def handle_endtag(self, tag: str) -> None:
        self.tokens.append(("/", tag))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.tokens.append(("text", data))


async def outer_html(page: Page) -> dict[str, str]:
    pairs = await page.locator("#feed > article").evaluate_all("nodes => nodes.map(n => [n.dataset.id, n.outerHTML])")
    return dict(pairs)


@pytest.mark.parametrize("half", [0, 1])
async def test_live_updates_have_exactly_the_markup_the_server_renders(
    page: Page, api: httpx.AsyncClient, feed: str, half: int
) -> None:
    """Half of the cases per feed, so that every update fits on the reader page's first page (20)."""
    written = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "Rendered by the server"})
    assert written.status_code == 201, written.text
    seed = written.json()["item"]
    await history_reached(api, feed, written.json()["cursor"])  # so the page has a cursor and no reload races
    await open_reader(page, feed)
    await expect(page.locator("#feed > article")).to_have_count(1)

    versions: dict[str, int] = {}
    for n, parts in enumerate(cases()[half::2]):
        fields: dict[str, Any] = {}
        for part in parts:
            fields.update(PARTS[part])
        if "url" in parts:
            fields["url"] = URLS[n % len(URLS)]
        label = "+".join(sorted(parts)) or "bare"
        item = await post(api, feed, f"{label}: <b>x</b> & <script>", **fields)
        versions[item["id"]] = 1
        if "edited" in parts:
            edited = await api.patch(f"/v1/feeds/{feed}/items/{item['id']}",
                                     json={"headline": f"{label} (corrected): <b>x</b> & <script>"})
            assert edited.status_code == 200, edited.text
            versions[item["id"]] += 1
        if "corrected" in parts:
            corrected = await api.patch(f"/v1/feeds/{feed}/items/{item['id']}",
                                        json={"correction": "Note with <b>markup</b> & more"})
            assert corrected.status_code == 200, corrected.text
            versions[item["id"]] += 1
    for item_id, version in versions.items():
        await expect(article(page, item_id)).to_have_attribute("data-version", str(version))
    await expect(page.locator("#feed b, #feed script")).to_have_count(0)
    live = await outer_html(page)

    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await expect(page.locator("#feed > article")).to_have_count(len(versions) + 1)
    served = await outer_html(page)
    assert set(served) == set(live) == {seed["id"], *versions}

    differ = [f"live:   {live[i]}\nserved: {served[i]}" for i in versions
              if Canonical(live[i]).tokens != Canonical(served[i]).tokens]
    assert not differ, "\n\n".join(differ)

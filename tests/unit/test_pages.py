"""The reader page's rendering, without servers: escaping, JSON-LD, headers and the routes."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from services.history import pages
from services.history import render as rendering
from services.history.consumer import Readiness
from services.history.links import PublicUrls
from shared.cursor import Cursor
from shared.models import FeedSet, Item
from shared.reader_tokens import ReadAccess, ReaderTokens
from shared.store import StoredItem

NOW = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
MARKUP_HEADLINE = "Test item with markup that must render as text: <script>alert(1)</script> & <b>bold</b>"
MARKUP_BODY = ("Bodies and headlines are plain text. A reader page must show these characters literally: "
               "<img src=x onerror=alert(2)> \"quotes\" 'apostrophes' — dashes, emoji 🇺🇦, and right-to-left "
               "text: مرحبا.")


def make_item(n: int, **fields: Any) -> Item:
    moment = NOW - timedelta(minutes=60 - n)
    values: dict[str, Any] = {
        "id": f"01jn{n:022d}",
        "feed": "world",
        "version": 1,
        "headline": f"Headline {n}",
        "body": f"Body {n}",
        "published_at": moment,
        "updated_at": moment,
    }
    values.update(fields)
    return Item.model_validate(values)


def ld_blocks(html: str) -> list[str]:
    return re.findall(r'<script type="application/ld\+json">(.*?)</script>', html, flags=re.S)


def shown_items(html: str) -> int:
    """How many updates the page shows: the item template at its end is not one."""
    return html.split('<template id="item-template">')[0].count('<article class="item')


# -- script-safe JSON ---------------------------------------------------------------------------


def test_script_json_cannot_close_the_script_element_and_round_trips() -> None:
    value = {"headline": "</script><script>alert(1)</script><!-- & -->", "line": "a\u2028b"}
    text = rendering.script_json(value)
    assert not set("<>&\u2028") & set(text)
    assert json.loads(text) == value


# -- one item -------------------------------------------------------------------------------------


def test_item_markup_is_escaped_everywhere() -> None:
    item = make_item(1, headline=MARKUP_HEADLINE, body=MARKUP_BODY, byline="<i>Reporter</i>", tags=["test"])
    html = rendering.render_item(item, NOW)
    assert "<script" not in html and "<img" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt; &quot;quotes&quot; &#x27;apostrophes&#x27;" in html
    assert "&lt;i&gt;Reporter&lt;/i&gt;" in html


def test_item_carries_what_the_script_needs_and_marks_corrections() -> None:
    item = make_item(2, version=3, pinned=True, key_event=True, urgency="breaking",
                     updated_at=NOW - timedelta(minutes=5), tags=["politics", "budget"])
    html = rendering.render_item(item, NOW)
    assert f'id="item-{item.id}"' in html and f'data-id="{item.id}"' in html
    assert 'data-version="3"' in html and 'data-pinned="1"' in html
    assert 'class="item is-breaking is-pinned is-key"' in html
    assert ">Breaking<" in html and ">Pinned<" in html and ">Key event<" in html
    assert "Updated <time" in html and "12:25 UTC</time> · v3" in html
    assert f'href="#item-{item.id}"' in html
    assert '<li class="tag">politics</li><li class="tag">budget</li>' in html


def test_a_first_version_has_no_updated_mark() -> None:
    assert "item-updated" not in rendering.render_item(make_item(3), NOW)


@pytest.mark.parametrize(
    ("url", "linked"),
    [("https://example.org/a?b=1&c=2", True), ("http://example.org", True), ("javascript:alert(1)", False),
     ("https://", False), (None, False)],
)
def test_only_http_links_become_links(url: str | None, linked: bool) -> None:
    item = make_item(4).model_copy(update={"url": url})
    html = rendering.render_item(item, NOW)
    assert ('class="item-source"' in html) is linked
    if linked:
        assert 'rel="nofollow noopener noreferrer ugc"' in html
        assert "&amp;c=2" in html or "&c" not in html
    assert "javascript:" not in html


class _Tree(HTMLParser):
    """The classes and the text of a piece of markup."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.classes: list[str] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.classes += (dict(attrs).get("class") or "").split()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_item_template_is_an_item_with_every_part_and_no_newsroom_text() -> None:
    full = make_item(6, version=3, urgency="breaking", pinned=True, key_event=True, byline="Desk",
                     url="https://example.org/a", tags=["one"],
                     images=[{"url": "https://img.example/a.jpg", "alt": "A", "caption": "C", "credit": "D",
                              "width": 3, "height": 2}],
                     correction={"note": "N", "corrected_at": NOW - timedelta(hours=1)})
    template = rendering.item_template()
    assert template.startswith('<template id="item-template"><article ') and template.endswith("</template>")
    skeleton = _Tree(template.removeprefix('<template id="item-template">').removesuffix("</template>"))
    assert skeleton.classes == _Tree(rendering.render_item(full, NOW)).classes
    assert skeleton.text == ["Breaking", "Pinned", "Key event", "Corrected ", ": ", "Source: ", "Updated ", " · v",
                             "Earlier versions"]


def test_reader_and_console_carry_the_item_template_once() -> None:
    for html in (render([make_item(1)]), rendering.render_console()):
        assert html.count('<template id="item-template">') == 1
        assert html.count(rendering.item_template()) == 1


def test_times_show_the_day_when_not_today() -> None:
    item = make_item(5, published_at=NOW - timedelta(days=2), updated_at=NOW - timedelta(days=2))
    assert "27 Feb, 12:30 UTC" in rendering.render_item(item, NOW)


def test_pinned_items_lead_then_newest_first() -> None:
    items = [make_item(1), make_item(2, pinned=True), make_item(3), make_item(4)]
    ordered = rendering.reader_order(items)
    assert [i.headline for i in ordered] == ["Headline 2", "Headline 4", "Headline 3", "Headline 1"]


# -- JSON-LD --------------------------------------------------------------------------------------


def test_live_blog_posting_lists_updates_newest_first_with_anchors() -> None:
    items = [make_item(7), make_item(9, byline="A. Reporter", tags=["x"]), make_item(8)]
    key = make_item(1, key_event=True)
    posting = rendering.live_blog_json_ld("middle-east", "https://news.example/feeds/middle-east", items, [key])
    assert posting["@type"] == "LiveBlogPosting"
    assert posting["headline"] == "Middle East: live updates"
    assert posting["coverageStartTime"] == rendering.iso(key.published_at)
    assert posting["dateModified"] == rendering.iso(items[1].updated_at)
    updates = posting["liveBlogUpdate"]
    assert [u["headline"] for u in updates] == ["Headline 9", "Headline 8", "Headline 7"]
    newest = updates[0]
    assert newest["url"] == f"https://news.example/feeds/middle-east#item-{items[1].id}"
    assert newest["articleBody"] == "Body 9"
    assert newest["datePublished"] == rendering.iso(items[1].published_at)
    assert newest["author"] == {"@type": "Person", "name": "A. Reporter"}


def test_an_empty_feed_has_a_posting_without_coverage_start() -> None:
    posting = rendering.live_blog_json_ld("world", "/feeds/world", [], [])
    assert posting["liveBlogUpdate"] == [] and "coverageStartTime" not in posting


# -- the whole page ---------------------------------------------------------------------------------


def render(items: list[Item], keys: list[Item] | None = None, **kwargs: Any) -> str:
    options: dict[str, Any] = {"cursor": "abc.1.41", "next_before": None,
                               "page_url": "http://gw.example/feeds/world", "now": NOW}
    options.update(kwargs)
    return rendering.render_reader("world", items, keys or [], **options)


def test_reader_page_json_ld_survives_markup_in_content() -> None:
    evil = make_item(9, headline="</script><script>window.pwned=1</script>", body=MARKUP_BODY)
    html = render([make_item(1), evil])
    blocks = ld_blocks(html)
    assert len(blocks) == 1
    posting = json.loads(blocks[0])
    assert posting["liveBlogUpdate"][0]["headline"] == evil.headline
    assert posting["liveBlogUpdate"][0]["articleBody"] == MARKUP_BODY
    assert html.count("<script") == 2 and html.count("</script>") == 2  # the module and the JSON-LD only


def test_reader_page_embeds_the_snapshot_position_and_orders_items() -> None:
    html = render([make_item(1), make_item(3), make_item(2, pinned=True)],
                  [make_item(1, key_event=True)], cursor='x".1.2', next_before="e1.0.17")
    assert 'data-cursor="x&quot;.1.2"' in html
    assert 'data-next-before="e1.0.17"' in html
    assert 'href="/feeds/world?before=e1.0.17"' in html
    positions = [html.index(f'id="item-{make_item(n).id}"') for n in (2, 3, 1)]
    assert positions == sorted(positions)
    assert 'aria-live="polite"' in html and 'role="feed"' in html
    assert '<script type="module" src="/static/reader.js">' in html


def test_key_events_list_links_to_the_items() -> None:
    key = make_item(1, key_event=True, headline="Key <moment>")
    html = render([], [key])
    assert f'<li data-id="{key.id}" data-version="1"><a href="#item-{key.id}">' in html
    assert "Key &lt;moment&gt;" in html
    assert 'id="key-events-empty" hidden' in html


def test_an_empty_feed_says_so() -> None:
    html = render([])
    assert 'id="feed-empty">' in html and 'id="load-older"' not in html


# -- headers ---------------------------------------------------------------------------------------


def directives(policy: str) -> dict[str, list[str]]:
    return {parts[0]: parts[1:] for parts in (d.split() for d in policy.split(";") if d.strip())}


PUBLIC = PublicUrls("http://gw.example:8080")


def test_policy_allows_only_this_origin_and_the_public_stream() -> None:
    headers = pages.security_headers(PublicUrls("http://news.example:8080/live"))
    policy = directives(headers["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'none'"]
    assert policy["connect-src"] == ["'self'", "ws://news.example:8080"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert directives(pages.security_headers(PublicUrls("https://news.example"))["Content-Security-Policy"])[
        "connect-src"] == ["'self'", "wss://news.example"]


# -- routes, on a fake store ---------------------------------------------------------------------------


class FakeStore:
    """What the pages read from :class:`shared.store.ItemStore`."""

    def __init__(self, items: list[Item]) -> None:
        self.stored = [
            StoredItem(orjson.dumps(i.model_dump(mode="json")), i.version, "published", n, Cursor("e1", 0, n))
            for n, i in enumerate(items)
        ]

    async def page(self, feed: str, *, limit: int, before: int | None = None, tag: str | None = None,
                   key_events: bool = False, pinned: bool = False) -> tuple[Cursor | None, list[StoredItem]]:
        head = Cursor("e1", 0, len(self.stored) - 1) if self.stored else None
        rows = [s for s in reversed(self.stored) if before is None or s.seq < before]
        if key_events:
            rows = [s for s in rows if s.item()["key_event"]]
        if pinned:
            rows = [s for s in rows if s.item()["pinned"]]
        return head, rows[:limit]

    async def feeds(self) -> list[tuple[str, int]]:
        return [("world", int(NOW.timestamp() * 1000))] if self.stored else []


TOKENS = ReaderTokens(SecretStr("k" * 32))


def client_for(items: list[Item], private: list[str] | None = None) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(pages.router)
    app.mount("/static", pages.static_files(), name="static")
    app.state.store = FakeStore(items)
    app.state.consumer = SimpleNamespace(state=Readiness.ready)
    app.state.epoch = "e1"
    app.state.access = ReadAccess(FeedSet(private or []), TOKENS)
    app.state.public_urls = PUBLIC
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_reader_route_shows_a_page_and_its_older_pages() -> None:
    items = [make_item(n, pinned=n == 0) for n in range(45)]
    client = client_for(items)
    first = await client.get("/feeds/world")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/html")
    assert "connect-src 'self' ws://gw.example:8080" in first.headers["content-security-policy"]
    assert shown_items(first.text) == 21  # the newest 20 and the pinned one from far back
    assert f'id="item-{items[0].id}"' in first.text
    assert 'data-cursor="e1.0.44"' in first.text
    posting = json.loads(ld_blocks(first.text)[0])
    assert posting["liveBlogUpdate"][0]["url"] == f"http://gw.example:8080/feeds/world#item-{items[44].id}"
    older = await client.get("/feeds/world", params={"before": "e1.0.25"})
    assert older.status_code == 200
    assert shown_items(older.text) == 20
    assert f'id="item-{items[24].id}"' in older.text and 'data-static="1"' in older.text


@pytest.mark.parametrize("path", ["/feeds/Not_A_Feed", "/feeds/world?before=garbage", "/feeds/world?before=e2.0.5"])
async def test_bad_pages_are_html_404s_with_the_policy(path: str) -> None:
    response = await client_for([make_item(1)]).get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]


async def test_index_lists_feeds_with_their_latest_headline() -> None:
    response = await client_for([make_item(1, headline="Latest <news>")]).get("/")
    assert response.status_code == 200
    assert 'href="/feeds/world"' in response.text and "Latest &lt;news&gt;" in response.text


async def test_console_and_assets_are_served() -> None:
    client = client_for([])
    console = await client.get("/newsroom")
    assert console.status_code == 200 and 'id="signin-form"' in console.text
    assert "frame-ancestors 'none'" in console.headers["content-security-policy"]
    for name in ("reader.js", "console.js", "draft.js", "live.js", "feedlist.js", "render.js", "api.js", "style.css"):
        asset = await client.get(f"/static/{name}")
        assert asset.status_code == 200, name
        kind = "text/css" if name.endswith(".css") else "javascript"
        assert kind in asset.headers["content-type"], name
        assert asset.headers["cache-control"] == "no-cache" and asset.headers["etag"], name


def test_scripts_never_parse_newsroom_text_as_html() -> None:
    for path in pages.WEB_DIR.glob("*.js"):
        source = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in source, f"{path.name} uses {sink}"


async def test_a_private_feed_is_not_on_the_index() -> None:
    response = await client_for([make_item(1, headline="Wire copy")], private=["world"]).get("/")
    assert response.status_code == 200
    assert 'href="/feeds/world"' not in response.text and "Wire copy" not in response.text


@pytest.mark.parametrize(
    ("make_token", "status", "words"),
    [
        (lambda: None, 401, "This feed is private"),
        (lambda: TOKENS.mint("world", 60, now=time.time() - 120)[0], 401, "has expired"),
        (lambda: TOKENS.mint("other", 60)[0], 403, "another private feed"),
        (lambda: "garbage", 401, "not valid"),
    ],
)
async def test_a_private_page_without_a_good_token_is_refused_in_words(
    make_token: Callable[[], str | None], status: int, words: str
) -> None:
    """Tokens are minted as the test runs: one minted at collection could expire before it."""
    token = make_token()
    client = client_for([make_item(1, headline="Wire copy")], private=["world"])
    response = await client.get("/feeds/world", params={"token": token} if token else None)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html") and words in response.text
    assert "Wire copy" not in response.text
    assert response.headers["cache-control"] == "private, no-store"


@pytest.mark.parametrize("where", ["query", "header"])
async def test_a_private_page_opens_with_its_token_and_is_never_cached(where: str) -> None:
    client = client_for([make_item(1, headline="Wire copy")], private=["world"])
    token = TOKENS.mint("world", 60)[0]
    if where == "query":
        response = await client.get("/feeds/world", params={"token": token})
    else:
        response = await client.get("/feeds/world", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and "Wire copy" in response.text
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["x-robots-tag"] == "noindex"
    assert token not in response.text
    public = await client_for([make_item(1)]).get("/feeds/world")
    assert public.headers["cache-control"] == "no-cache" and "x-robots-tag" not in public.headers

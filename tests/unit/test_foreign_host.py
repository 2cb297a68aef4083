"""A foreign ``Host`` changes nothing history serves, without servers: the whole history app
(``create_app``) on a fake store, asked the same things under a stranger's Host and forwarding
headers, must answer byte for byte what it answers anyone, with links under ``LIVEFEED_PUBLIC_URL``.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from services.history.app import create_app
from services.history.consumer import Readiness
from shared.models import FeedSet
from shared.reader_tokens import ReadAccess
from shared.settings import HistorySettings
from tests.unit.test_pages import TOKENS, FakeStore, make_item

PUBLIC = "https://news.example/live"
"""A public URL with a path prefix and another scheme than the test client's, so nothing can pass by chance."""
PATHS = ["/feeds/world", "/feeds/world/embed?limit=3", "/feeds/world.atom", "/feeds/world.json", "/", "/newsroom"]
FOREIGN = [
    {"host": "evil.example"},
    {"host": "evil.example:8443", "x-forwarded-proto": "https"},
    {"x-forwarded-host": "evil.example", "x-forwarded-proto": "https"},
    {"host": "evil.example", "x-forwarded-host": "evil.example", "x-forwarded-proto": "http",
     "forwarded": "host=evil.example;proto=https"},
    {"host": "evil.example; script-src *"},
]
"""Hosts and forwarding headers a client may send: none of them may reach a link or the policy."""
SAME_HEADERS = ["content-security-policy", "etag", "cache-control", "x-frame-options", "content-type"]


def history_app() -> FastAPI:
    app = create_app(HistorySettings(public_url=PUBLIC + "/"))
    app.state.store = FakeStore([make_item(n, key_event=n == 2) for n in range(5)])
    app.state.consumer = SimpleNamespace(state=Readiness.ready)
    app.state.epoch = "e1"
    app.state.access = ReadAccess(FeedSet([]), TOKENS)
    return app


async def answer(app: FastAPI, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str | None], bytes]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.get(path, headers=headers)
    return response.status_code, {h: response.headers.get(h) for h in SAME_HEADERS}, response.content


@pytest.mark.parametrize("path", PATHS)
async def test_a_foreign_host_changes_nothing_in_pages_exports_and_policy(path: str) -> None:
    app = history_app()
    plain = await answer(app, path, {})
    assert plain[0] == 200
    for headers in FOREIGN:
        assert await answer(app, path, headers) == plain, headers
    assert b"evil.example" not in plain[2] and b"testserver" not in plain[2]
    if (plain[1]["content-type"] or "").startswith("text/html"):
        policy = plain[1]["content-security-policy"] or ""
        assert re.search(r"connect-src 'self' wss://news\.example;", policy), policy


async def test_every_absolute_link_starts_with_the_public_url() -> None:
    app = history_app()
    page = (await answer(app, "/feeds/world", {"host": "evil.example"}))[2].decode()
    links = re.findall(r"""(?:href|src)="(https?://[^"]*)"|"(?:@id|url)": ?"(https?://[^"]*)\"""", page)
    absolute = [a or b for a, b in links]
    assert f'<link rel="canonical" href="{PUBLIC}/feeds/world">' in page
    assert f'href="{PUBLIC}/feeds/world.atom"' in page and f'href="{PUBLIC}/feeds/world.json"' in page
    assert f'"url":"{PUBLIC}/feeds/world"' in page
    assert absolute and all(link.startswith(f"{PUBLIC}/") for link in absolute), absolute
    feed = (await answer(app, "/feeds/world.json", {"host": "evil.example"}))[2].decode()
    assert f'"home_page_url":"{PUBLIC}/feeds/world"' in feed and f'"feed_url":"{PUBLIC}/feeds/world.json"' in feed
    atom = (await answer(app, "/feeds/world.atom", {"host": "evil.example"}))[2].decode()
    assert f'href="{PUBLIC}/feeds/world.atom"' in atom and f'href="{PUBLIC}/feeds/world#item-' in atom


async def test_the_export_etag_does_not_vary_with_the_host() -> None:
    app = history_app()
    etag = (await answer(app, "/feeds/world.atom", {}))[1]["etag"]
    assert etag is not None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        again = await client.get("/feeds/world.atom", headers={"host": "evil.example", "if-none-match": etag})
    assert again.status_code == 304

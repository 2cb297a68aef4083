"""Publisher origins without servers: history's CORS middleware on a tiny app, the streams' Origin rules,
SSE's CORS head, the fragment's framing policy and its escaping."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Scope

from services.fanout.sse import sse_headers
from services.fanout.streams import StreamOrigins
from services.history.cors import CorsMiddleware, _one_header
from services.history.embed import embed_headers, render_fragment
from services.history.links import PublicUrls
from shared.errors import ApiError
from shared.models import Item

PUBLISHER = "https://news.example"
FOREIGN = "https://evil.example"


async def _read(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok", headers={"Vary": "Accept-Encoding"})


def _client() -> httpx.AsyncClient:
    app = Starlette(routes=[
        Route("/v1/feeds/{feed}/items", _read, methods=["GET", "POST"]),
        Route("/v1/tokens/check", _read, methods=["POST"]),
        Route("/embed/v1.js", _read),
    ])

    def private(scope: Scope, feed: str) -> bool:
        return feed.startswith("wire-")

    wrapped = CorsMiddleware(app, [PUBLISHER], is_private=private)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://gw")


async def test_a_publisher_read_gets_its_origin_back_and_a_foreign_one_gets_nothing() -> None:
    async with _client() as client:
        ok = await client.get("/v1/feeds/world/items", headers={"Origin": PUBLISHER})
        assert ok.headers["access-control-allow-origin"] == PUBLISHER
        assert ok.headers["vary"] == "Accept-Encoding, Origin"
        for headers in ({"Origin": FOREIGN}, {}, {"Origin": "null"}):
            other = await client.get("/v1/feeds/world/items", headers=headers)
            assert "access-control-allow-origin" not in other.headers, headers
            assert other.headers["vary"] == "Accept-Encoding, Origin"
        script = await client.get("/embed/v1.js", headers={"Origin": PUBLISHER})
        assert script.headers["access-control-allow-origin"] == PUBLISHER


@pytest.mark.parametrize(("path", "headers"), [
    ("/v1/feeds/world/items", {"Origin": FOREIGN, "Access-Control-Request-Method": "GET"}),
    ("/v1/feeds/world/items", {"Origin": PUBLISHER, "Access-Control-Request-Method": "POST"}),
    ("/v1/feeds/world/items", {"Origin": PUBLISHER, "Access-Control-Request-Method": "GET",
                               "Access-Control-Request-Headers": "authorization"}),
    ("/v1/feeds/wire-afp/items", {"Origin": PUBLISHER, "Access-Control-Request-Method": "GET"}),
    ("/v1/tokens/check", {"Origin": PUBLISHER, "Access-Control-Request-Method": "GET"}),
])
async def test_only_a_publishers_preflight_for_a_public_read_is_answered(path: str, headers: dict[str, str]) -> None:
    async with _client() as client:
        refused = await client.options(path, headers=headers)
        assert refused.status_code == 405
        assert "access-control-allow-origin" not in refused.headers
        ok = await client.options("/v1/feeds/world/items", headers={
            "Origin": PUBLISHER, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Accept, If-None-Match"})
        assert ok.status_code == 204
        assert (ok.headers["access-control-allow-origin"], ok.headers["access-control-allow-methods"]) == (
            PUBLISHER, "GET, HEAD")


async def test_writes_and_private_feeds_get_no_cors() -> None:
    async with _client() as client:
        write = await client.post("/v1/feeds/world/items", headers={"Origin": PUBLISHER})
        assert "access-control-allow-origin" not in write.headers
        private = await client.get("/v1/feeds/wire-afp/items", headers={"Origin": PUBLISHER})
        assert "access-control-allow-origin" not in private.headers


def test_two_origin_headers_are_no_origin() -> None:
    scope_headers = [(b"origin", PUBLISHER.encode()), (b"origin", PUBLISHER.encode())]
    assert _one_header({"headers": scope_headers}, b"origin") is None


ORIGINS = StreamOrigins(own=("http://gw",), embed=(PUBLISHER,))


def test_a_publisher_origin_opens_public_streams_only() -> None:
    assert ORIGINS.check([PUBLISHER], private=False) == PUBLISHER
    assert ORIGINS.check(["http://gw"], private=True) is None
    assert ORIGINS.check([], private=False) is None
    for origins, private in (([PUBLISHER], True), ([FOREIGN], False)):
        with pytest.raises(ApiError) as caught:
            ORIGINS.check(origins, private=private)
        assert (caught.value.status, caught.value.code) == (403, "origin_not_allowed")


def test_sse_sends_cors_only_for_the_origin_it_is_given() -> None:
    with_cors = sse_headers(PUBLISHER)
    assert f"Access-Control-Allow-Origin: {PUBLISHER}\r\n".encode() in with_cors
    assert b"Vary: Origin\r\n" in with_cors and with_cors.endswith(b"\r\n\r\nretry: 1000\n\n")
    assert b"Access-Control" not in sse_headers(None)


def test_the_fragment_may_be_framed_by_publishers_only() -> None:
    framed = embed_headers([PUBLISHER, "http://127.0.0.1:8087"], PublicUrls("http://gw:8080"))
    assert f"frame-ancestors {PUBLISHER} http://127.0.0.1:8087;" in framed["Content-Security-Policy"]
    assert "X-Frame-Options" not in framed
    closed = embed_headers([], PublicUrls("http://gw:8080"))
    assert "frame-ancestors 'none'" in closed["Content-Security-Policy"] and closed["X-Frame-Options"] == "DENY"


def test_the_fragment_shows_newsroom_markup_as_text() -> None:
    now = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    item = Item.model_validate({
        "id": "01m8cng7dqz8mzsg2ge1ydk21g", "feed": "world", "version": 1, "status": "published",
        "headline": "</h3><script>alert(1)</script>", "body": "<img src=x onerror=alert(2)>", "tags": [],
        "urgency": "breaking", "pinned": False, "key_event": False,
        "published_at": now, "updated_at": now,
    })
    html = render_fragment("world", [item], now)
    assert "<script>alert" not in html and "&lt;/h3&gt;&lt;script&gt;" in html
    assert "&lt;img src=x" in html and "<img" not in html
    assert html.count("<script") == 1 and 'src="/static/embed/fragment.js"' in html
    assert 'href="/feeds/world"' in html and "is-breaking" in html

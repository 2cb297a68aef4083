"""Publishers' origins (``LIVEFEED_EMBED_ORIGINS``) through the real gateway: CORS on the public reads,
the streams' Origin check, SSE's CORS headers, the fragment's framing, the widget script. Every other
origin gets none of it, writes get no preflight, and a private feed's answers are never shared.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from deploy.stack import Stack
from tests.conftest import embed_host_origin
from tests.integration.test_private_feeds import token_for
from tests.utils.streams import next_event, next_message

pytestmark = pytest.mark.stack

FOREIGN = "http://evil.example"


@pytest.fixture(scope="module")
def publisher(stack: Stack) -> str:
    return embed_host_origin(stack.topology)


@pytest.fixture
async def reader(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        yield client


async def post(api: httpx.AsyncClient, feed: str, headline: str, **fields: Any) -> dict[str, Any]:
    response = await api.post(f"/v1/feeds/{feed}/items", json={"headline": headline, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def public_reads(feed: str, item_id: str) -> list[str]:
    return ["/v1/feeds", f"/v1/feeds/{feed}/items?limit=5", f"/v1/feeds/{feed}/key-events",
            f"/v1/feeds/{feed}/pinned", f"/v1/feeds/{feed}/items/{item_id}", "/embed/v1.js"]


def varies_by_origin(response: httpx.Response) -> bool:
    return "origin" in {v.strip().lower() for v in response.headers.get("vary", "").split(",")}


async def test_a_publisher_origin_may_read_the_public_routes_and_no_other_origin_may(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, feed: str, publisher: str
) -> None:
    posted = (await post(api, feed, "Cross-origin read", key_event=True, pinned=True))["item"]
    for path in public_reads(feed, posted["id"]):
        allowed = await reader.get(path, headers={"Origin": publisher})
        assert allowed.status_code == 200, (path, allowed.text)
        assert allowed.headers.get("access-control-allow-origin") == publisher, path
        assert varies_by_origin(allowed), path
        foreign = await reader.get(path, headers={"Origin": FOREIGN})
        assert foreign.status_code == 200, path
        assert "access-control-allow-origin" not in foreign.headers, path
        assert varies_by_origin(foreign), path


async def test_a_publisher_preflight_for_a_read_gets_204_and_nothing_else_does(
    reader: httpx.AsyncClient, feed: str, publisher: str
) -> None:
    path = f"/v1/feeds/{feed}/items"
    ok = await reader.options(path, headers={"Origin": publisher, "Access-Control-Request-Method": "GET",
                                             "Access-Control-Request-Headers": "if-none-match"})
    assert ok.status_code == 204, ok.text
    assert ok.headers["access-control-allow-origin"] == publisher
    assert ok.headers["access-control-allow-methods"] == "GET, HEAD"
    assert "if-none-match" in ok.headers["access-control-allow-headers"]
    refused = {
        "a foreign origin": {"Origin": FOREIGN, "Access-Control-Request-Method": "GET"},
        "a write": {"Origin": publisher, "Access-Control-Request-Method": "POST"},
        "a delete": {"Origin": publisher, "Access-Control-Request-Method": "DELETE"},
        "a reader token header": {"Origin": publisher, "Access-Control-Request-Method": "GET",
                                  "Access-Control-Request-Headers": "authorization"},
    }
    for name, headers in refused.items():
        answer = await reader.options(path, headers=headers)
        assert answer.status_code == 405, (name, answer.status_code, answer.text)
        assert answer.json()["error"] == "method_not_allowed", name
        assert "access-control-allow-origin" not in answer.headers, name
    token_check = await reader.options("/v1/tokens/check", headers={"Origin": publisher,
                                                                     "Access-Control-Request-Method": "POST"})
    assert token_check.status_code in (404, 405) and "access-control-allow-origin" not in token_check.headers


async def test_a_private_feed_is_never_shared_with_a_publisher_origin(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, publisher: str, ws_url: str
) -> None:
    feed = "private-embed-check"
    posted = (await post(api, feed, "Embargoed"))["item"]
    token = token_for(feed)
    for path in [f"/v1/feeds/{feed}/items", f"/v1/feeds/{feed}/items/{posted['id']}"]:
        answer = await reader.get(path, params={"token": token}, headers={"Origin": publisher})
        assert answer.status_code == 200, path
        assert "access-control-allow-origin" not in answer.headers, path
    preflight = await reader.options(f"/v1/feeds/{feed}/items", headers={
        "Origin": publisher, "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 405
    sse = await reader.get(f"/v1/feeds/{feed}/events", params={"token": token}, headers={"Origin": publisher})
    assert (sse.status_code, sse.json()["error"]) == (403, "origin_not_allowed")
    with pytest.raises(InvalidStatus) as caught:
        ws = await connect(f"{ws_url}/v1/feeds/{feed}/stream?token={token}", origin=publisher)  # type: ignore[arg-type]
        await ws.close()
    assert caught.value.response.status_code == 403
    fragment = await reader.get(f"/feeds/{feed}/embed", params={"token": token})
    assert fragment.status_code == 403 and "Embargoed" not in fragment.text
    assert "frame-ancestors 'none'" in fragment.headers["content-security-policy"]


async def test_the_streams_let_a_publisher_origin_in_with_cors_and_refuse_a_foreign_one(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, feed: str, publisher: str, ws_url: str
) -> None:
    ws = await connect(f"{ws_url}/v1/feeds/{feed}/stream", origin=publisher)  # type: ignore[arg-type]
    try:
        assert (await next_message(ws))["type"] == "hello"
        posted = await post(api, feed, "Live on a publisher's page")
        assert (await next_event(ws))["item"]["id"] == posted["item"]["id"]
    finally:
        await ws.close()
    with pytest.raises(InvalidStatus) as caught:
        ws = await connect(f"{ws_url}/v1/feeds/{feed}/stream", origin=FOREIGN)  # type: ignore[arg-type]
        await ws.close()
    assert caught.value.response.status_code == 403
    async with reader.stream("GET", f"/v1/feeds/{feed}/events", headers={"Origin": publisher}) as response:
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == publisher
        assert varies_by_origin(response)
    foreign = await reader.get(f"/v1/feeds/{feed}/events", headers={"Origin": FOREIGN})
    assert (foreign.status_code, foreign.json()["error"]) == (403, "origin_not_allowed")
    assert "access-control-allow-origin" not in foreign.headers


async def test_the_fragment_is_escaped_framable_by_publishers_only_and_has_no_inline_script(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, feed: str, publisher: str
) -> None:
    for n in range(7):
        await post(api, feed, f"Update {n}")
    await post(api, feed, "<script>alert(1)</script> & more", body="<img src=x onerror=alert(2)>",
               urgency="breaking")
    page = await reader.get(f"/feeds/{feed}/embed", params={"limit": 5})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert re.search(r"frame-ancestors ([^;]+)", csp).group(1) == publisher  # type: ignore[union-attr]
    assert "x-frame-options" not in page.headers
    assert "script-src 'self'" in csp
    text = page.text
    assert text.count('<article class="item') == 5
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in text and "<script>alert" not in text
    assert "&lt;img src=x" in text
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", text) == []
    assert "is-breaking" in text and f'href="/feeds/{feed}"' in text
    too_many = await reader.get(f"/feeds/{feed}/embed", params={"limit": 500})
    assert too_many.status_code == 422
    reader_page = await reader.get(f"/feeds/{feed}")
    assert "frame-ancestors 'none'" in reader_page.headers["content-security-policy"]


async def test_the_widget_script_is_javascript_cached_and_revalidated(reader: httpx.AsyncClient) -> None:
    script = await reader.get("/embed/v1.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "max-age=86400" in script.headers["cache-control"]
    assert "customElements.define" in script.text
    again = await reader.get("/embed/v1.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304 and again.content == b""

"""The gateway's micro-cache, on the real servers: public reads are kept about a second, and nothing
else is (writes, preflights, private feeds, authenticated reads, streams, health and docs).

The key scenario is the breaking-news one: a reader gets a page from the cache that is older than
the newest item, and its cursor still takes the stream on from exactly there, with no gap and no
duplicate. Every cached answer names its cache use in ``X-Cache-Status`` (deploy/nginx).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr
from websockets.asyncio.client import connect

from deploy.stack import Stack
from shared.reader_tokens import ReaderTokens
from tests.conftest import READER_TOKEN_KEY, embed_host_origin
from tests.utils.streams import next_event, next_message, open_stream

FRESH_FOR_S = 2.2
"""Past this a cached answer is stale: nginx keeps it 1 s counted in whole seconds, so 1 to 2 s."""
REFRESH_WAIT_S = 10.0
"""The bound on a background refresh reaching the cache, on a shared 2-core machine."""
FROM_CACHE = frozenset({"HIT", "STALE", "UPDATING"})
"""The statuses of an answer the gateway gave from its cache without asking history."""
FOREIGN_ORIGIN = "https://foreign.example"
CURSOR = re.compile(r'data-cursor="([^"]*)"')


@pytest.fixture
async def reader(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A reader's client: no newsroom token, so its reads may be cached."""
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        yield client


@pytest.fixture
def private_feed() -> str:
    return f"private-{uuid.uuid4().hex[:12]}"


def cache_status(response: httpx.Response) -> str | None:
    status: str | None = response.headers.get("x-cache-status")
    return status


def offset(cursor: str) -> int:
    return int(cursor.rsplit(".", 1)[1])


async def post(api: httpx.AsyncClient, feed: str, headline: str, *, reader_token: str | None = None,
               **fields: Any) -> dict[str, Any]:
    """Publish an item and wait until history has applied it, reading with a credential (never cached):
    the newsroom token, or for a private feed ``reader_token``."""
    response = await api.post(f"/v1/feeds/{feed}/items", json={"headline": headline, **fields})
    assert response.status_code == 201, response.text
    posted: dict[str, Any] = response.json()
    read_as = {"Authorization": f"Bearer {reader_token}"} if reader_token else None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = await api.get(f"/v1/feeds/{feed}/items", params={"limit": 1}, headers=read_as)
        cursor = page.json().get("cursor") if page.status_code == 200 else None
        if cursor is not None and offset(cursor) >= offset(posted["cursor"]):
            return posted
        await asyncio.sleep(0.1)
    raise AssertionError(f"history did not reach {posted['cursor']} within 30 s")


def public_reads(feed: str, item_id: str) -> list[str]:
    return [
        f"/feeds/{feed}", f"/feeds/{feed}.atom", f"/feeds/{feed}.json", f"/feeds/{feed}/embed",
        f"/v1/feeds/{feed}/items", f"/v1/feeds/{feed}/items?format=ninjs", f"/v1/feeds/{feed}/key-events",
        f"/v1/feeds/{feed}/pinned", f"/v1/feeds/{feed}/items/{item_id}",
        f"/v1/feeds/{feed}/items/{item_id}?format=ninjs",
        "/", "/v1/feeds",
    ]


async def test_a_public_read_is_a_hit_within_the_second_and_refreshed_after_it(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, feed: str
) -> None:
    first = await post(api, feed, "First update", pinned=True, key_event=True)
    for path in public_reads(feed, first["item"]["id"]):
        # Other tests read the index and the feed list too: their entry may be near its end, so
        # those two are first refreshed past the cache, which stores what it gets.
        shared = feed not in path
        one = await reader.get(path, headers={"Cache-Control": "no-cache"} if shared else None)
        two = await reader.get(path)
        assert one.status_code == 200, (path, one.text)
        assert cache_status(two) == "HIT", (path, two.headers)
        assert two.content == one.content, path

    page = await reader.get(f"/feeds/{feed}")
    second = await post(api, feed, "Second update")
    await asyncio.sleep(FRESH_FOR_S)
    stale = await reader.get(f"/feeds/{feed}")
    assert cache_status(stale) != "HIT", "an answer older than its second must not be a fresh hit"
    deadline = time.monotonic() + REFRESH_WAIT_S
    while second["item"]["id"] not in stale.text:
        assert stale.content == page.content, "only the page as it was, or the refreshed one"
        assert time.monotonic() < deadline, "the cached page was not refreshed"
        await asyncio.sleep(0.1)
        stale = await reader.get(f"/feeds/{feed}")
    assert cache_status(stale) in {"HIT", "MISS", "EXPIRED"}


async def test_each_query_string_is_its_own_entry(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, feed: str
) -> None:
    await post(api, feed, "Older")
    await post(api, feed, "Newer")
    one = await reader.get(f"/v1/feeds/{feed}/items?limit=1")
    two = await reader.get(f"/v1/feeds/{feed}/items?limit=2")
    assert cache_status(two) == "MISS"
    assert [len(r.json()["items"]) for r in (one, two)] == [1, 2]
    again = await reader.get(f"/v1/feeds/{feed}/items?limit=1")
    assert cache_status(again) == "HIT" and len(again.json()["items"]) == 1


async def test_each_origin_gets_its_own_cors_answer(
    stack: Stack, api: httpx.AsyncClient, reader: httpx.AsyncClient, feed: str
) -> None:
    publisher = embed_host_origin(stack.topology)
    await post(api, feed, "Read by a publisher's page")
    path = f"/v1/feeds/{feed}/items"
    for _ in range(2):  # the first round fills the cache, the second reads it
        allowed = await reader.get(path, headers={"Origin": publisher})
        foreign = await reader.get(path, headers={"Origin": FOREIGN_ORIGIN})
        none = await reader.get(path)
        assert allowed.headers.get("access-control-allow-origin") == publisher
        assert "access-control-allow-origin" not in foreign.headers
        assert "access-control-allow-origin" not in none.headers
    assert {cache_status(r) for r in (allowed, foreign, none)} == {"HIT"}


async def test_a_conditional_read_gets_a_304_from_the_cache_only_for_its_etag(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, feed: str
) -> None:
    await post(api, feed, "Polled by a feed reader")
    full = await reader.get(f"/feeds/{feed}.atom")
    etag = full.headers["etag"]
    same = await reader.get(f"/feeds/{feed}.atom", headers={"If-None-Match": etag})
    assert (same.status_code, cache_status(same), same.content) == (304, "HIT", b"")
    other = await reader.get(f"/feeds/{feed}.atom", headers={"If-None-Match": 'W/"something-else"'})
    assert (other.status_code, cache_status(other)) == (200, "HIT")
    assert other.content == full.content


async def test_writes_and_preflights_are_never_cached(
    stack: Stack, api: httpx.AsyncClient, reader: httpx.AsyncClient, feed: str
) -> None:
    posted = await post(api, feed, "To be edited")
    item = f"/v1/feeds/{feed}/items/{posted['item']['id']}"
    answers = [
        await api.post(f"/v1/feeds/{feed}/items", json={"headline": "Again"}),
        await api.post(f"/v1/feeds/{feed}/items", json={"headline": "Again"}),
        await api.patch(item, json={"body": "Edited once"}),
        await api.patch(item, json={"body": "Edited twice"}),
        await api.put(f"{item}/pin"),
        await api.put(f"{item}/pin"),
    ]
    preflight = {"Origin": embed_host_origin(stack.topology), "Access-Control-Request-Method": "GET"}
    answers += [await reader.options(f"/v1/feeds/{feed}/items", headers=preflight) for _ in range(2)]
    answers += [await api.delete(item), await api.delete(item)]
    assert [a.status_code for a in answers] == [201, 201, 200, 200, 200, 200, 204, 204, 200, 410]
    assert [cache_status(a) for a in answers if cache_status(a) in FROM_CACHE] == []
    assert (await api.get(item)).status_code == 410


async def test_a_private_feed_is_never_cached(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, private_feed: str
) -> None:
    tokens = ReaderTokens(SecretStr(READER_TOKEN_KEY))
    token = tokens.mint(private_feed, 600, now=time.time())[0]
    posted = await post(api, private_feed, "Embargoed until noon", reader_token=token)
    paths = [f"/feeds/{private_feed}", f"/v1/feeds/{private_feed}/items",
             f"/v1/feeds/{private_feed}/items/{posted['item']['id']}"]
    for path in paths:
        ways: list[tuple[str, dict[str, str]]] = [
            (f"{path}?token={token}", {}),
            (path, {"Authorization": f"Bearer {token}"}),
            (f"{path}?%74oken={token}", {}),  # a token name history decodes but nginx's $arg_token misses
        ]
        for url, headers in ways:
            for _ in range(2):
                answer = await reader.get(url, headers=headers)
                assert answer.status_code == 200, (url, headers, answer.text)
                assert answer.headers["cache-control"] == "private, no-store"
                assert cache_status(answer) not in FROM_CACHE, (url, headers)
        refused = await reader.get(path)
        assert refused.status_code == 401 and "Embargoed" not in refused.text


async def test_authenticated_reads_neither_use_nor_fill_the_cache(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, feed: str
) -> None:
    await post(api, feed, "Public, read by the newsroom")
    path = f"/v1/feeds/{feed}/items"
    for _ in range(2):
        assert cache_status(await api.get(path)) == "BYPASS"
        assert cache_status(await reader.get(path, params={"token": "not-a-reader-token"})) == "BYPASS"
    assert cache_status(await reader.get(path)) == "MISS", "an authenticated answer was stored"
    assert cache_status(await api.get(path)) == "BYPASS", "an authenticated read was answered from the cache"


async def test_streams_health_and_docs_are_never_cached(
    reader: httpx.AsyncClient, feed: str, ws_url: str, origin: str
) -> None:
    for _ in range(2):
        async with reader.stream("GET", f"/v1/feeds/{feed}/events") as sse:
            assert sse.status_code == 200 and "x-cache-status" not in sse.headers
        ws = await connect(f"{ws_url}/v1/feeds/{feed}/stream", origin=origin)  # type: ignore[arg-type]
        try:
            assert ws.response is not None and "x-cache-status" not in ws.response.headers
        finally:
            await ws.close()
        for path in ("/healthz", "/api/history/readyz", "/api/history/docs", "/api/history/openapi.json",
                     "/api/ingest/readyz", "/static/reader.js"):
            answer = await reader.get(path)
            assert answer.status_code == 200, path
            assert "x-cache-status" not in answer.headers, path


async def sse_events(response: httpx.Response, timeout: float) -> AsyncIterator[dict[str, Any]]:
    """The item events of a Server-Sent Events stream, every read bounded."""
    lines = response.aiter_lines()
    while True:
        line = await asyncio.wait_for(anext(lines), timeout)
        if line.startswith("data: "):
            message: dict[str, Any] = orjson.loads(line[len("data: "):])
            if message.get("type", "").startswith("item."):
                yield message


async def test_a_cached_page_goes_live_from_its_cursor_without_a_gap_or_a_duplicate(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, feed: str, ws_url: str, origin: str
) -> None:
    await post(api, feed, "Before the page")
    page = await reader.get(f"/feeds/{feed}")
    assert page.status_code == 200
    cursor = CURSOR.search(page.text).group(1)  # type: ignore[union-attr]
    assert cursor, "the page must carry its snapshot's cursor"
    during = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "While the page was cached"})).json()
    cached = await reader.get(f"/feeds/{feed}")
    assert cache_status(cached) in FROM_CACHE and cached.content == page.content
    assert during["item"]["id"] not in cached.text

    ws = await open_stream(ws_url, feed, origin, since=cursor)
    try:
        async with reader.stream("GET", f"/v1/feeds/{feed}/events", params={"since": cursor}) as sse:
            assert (await next_message(ws))["type"] == "hello"
            after = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "After the page"})).json()
            expected = [(during["item"]["id"], during["cursor"]), (after["item"]["id"], after["cursor"])]
            over_ws = [await next_event(ws) for _ in expected]
            events = sse_events(sse, 10)
            over_sse = [await anext(events) for _ in expected]
            for got in (over_ws, over_sse):
                assert [(e["item"]["id"], e["cursor"]) for e in got] == expected
            with pytest.raises(TimeoutError):
                await next_event(ws, 1.0)  # nothing after the two: no duplicate
    finally:
        await ws.close()


async def test_a_foreign_host_cannot_change_what_another_reader_gets(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, feed: str, base_url: str
) -> None:
    await post(api, feed, "Read from two hosts")
    for path in (f"/feeds/{feed}", f"/feeds/{feed}.atom", f"/feeds/{feed}.json", f"/feeds/{feed}/embed", "/"):
        await reader.get(path, headers={"Host": "evil.example"})
        honest = await reader.get(path)
        assert honest.status_code == 200, path
        assert "evil.example" not in honest.text, path
        assert "evil.example" not in str(honest.headers), path


async def test_a_read_that_asks_for_a_fresh_answer_gets_one_and_refreshes_the_cache(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, feed: str
) -> None:
    """A newsroom tool (the CLI) reads back its own write at once: Cache-Control: no-cache goes past the
    cache, and its answer replaces the cached one for every reader."""
    await post(api, feed, "Before")
    path = f"/v1/feeds/{feed}/items"
    cached = await reader.get(path)
    assert cache_status(await reader.get(path)) == "HIT"
    after = await post(api, feed, "After")
    fresh = await reader.get(path, headers={"Cache-Control": "no-cache"})
    assert cache_status(fresh) == "BYPASS"
    assert after["item"]["id"] in fresh.text and after["item"]["id"] not in cached.text
    again = await reader.get(path)
    assert cache_status(again) == "HIT" and again.content == fresh.content
    reload = await reader.get(path, headers={"Cache-Control": "max-age=0"})
    assert cache_status(reload) == "HIT", "a browser's plain reload is still served from the cache"


async def test_a_retraction_reaches_the_first_read_after_the_cached_copy_expired(
    api: httpx.AsyncClient, reader: httpx.AsyncClient, feed: str
) -> None:
    """A reader polling now and then (an aggregator, a crawler) must not get its previous poll's copy."""
    posted = await post(api, feed, "Taken down")
    item = f"/v1/feeds/{feed}/items/{posted['item']['id']}"
    paths = [item, f"/feeds/{feed}", f"/feeds/{feed}.atom"]
    for path in paths:
        assert (await reader.get(path)).status_code == 200
    await asyncio.sleep(FRESH_FOR_S)
    assert (await api.delete(item)).status_code == 200
    await post(api, feed, "After the takedown")
    for path in paths:
        answer = await reader.get(path)
        assert "Taken down" not in answer.text, (path, answer.status_code, cache_status(answer))
    assert (await reader.get(item)).status_code == 410


async def test_a_feed_made_private_is_no_longer_served_from_the_cache(
    stack: Stack, reader: httpx.AsyncClient, api: httpx.AsyncClient, feed: str
) -> None:
    """Each refresh is refused (401) once the feed is private: the refusal replaces the cached copy,
    instead of leaving the public copy to be served stale to every read that overlaps a refresh."""
    posted = await post(api, feed, "Public, then not")
    paths = [f"/feeds/{feed}", f"/v1/feeds/{feed}/items", f"/v1/feeds/{feed}/items/{posted['item']['id']}"]
    for path in paths:
        assert (await reader.get(path)).status_code == 200
    before = stack.extra_env.get("LIVEFEED_PRIVATE_FEEDS")
    stack.extra_env["LIVEFEED_PRIVATE_FEEDS"] = f"{before},{feed}" if before else feed
    try:
        stack.restart_service("history")
        await asyncio.sleep(FRESH_FOR_S)
        answers = await asyncio.gather(*(reader.get(path) for path in paths * 20))
        seen = {(a.status_code, cache_status(a)) for a in answers}
        # Only a read overlapping the one refresh may still get the copy from before (UPDATING,
        # at most about two seconds old); the refusal is then what everyone gets.
        assert {a.status_code for a in answers} >= {401}, sorted(seen)
        assert {(status, cached) for status, cached in seen if status != 401} <= {(200, "UPDATING")}, sorted(seen)
        again = [await reader.get(path) for path in paths]
        assert {(a.status_code, cache_status(a)) for a in again} == {(401, "HIT")}
    finally:
        if before is None:
            stack.extra_env.pop("LIVEFEED_PRIVATE_FEEDS", None)
        else:
            stack.extra_env["LIVEFEED_PRIVATE_FEEDS"] = before
        stack.restart_service("history")
        await history_ready(stack)


async def history_ready(stack: Stack, timeout_s: float = 60.0) -> None:
    """Wait until the restarted history has caught up with Kafka, so the tests after this one read a whole store."""
    url = f"http://{stack.topology.host}:{stack.topology.history}/readyz"
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5) as client:
        while (await client.get(url)).status_code != 200:
            assert time.monotonic() < deadline, f"history was not ready within {timeout_s} s"
            await asyncio.sleep(0.2)

"""Issue 4: history is exact, idempotent, bounded, and rebuilt from Kafka when Redis loses it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from deploy.stack import Stack
from shared import keys
from shared.cursor import Cursor
from shared.store import ItemStore
from shared.wire import Event, EventType


@pytest.fixture
async def redis(stack: Stack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host=stack.topology.host, port=stack.topology.redis)
    yield client
    await client.aclose()


def _event(feed: str, item_id: str, version: int, kind: EventType = EventType.published, **fields: Any) -> Event:
    item = {"id": item_id, "feed": feed, "version": version, "headline": f"v{version}", "tags": ["x"],
            "status": "retracted" if kind is EventType.retracted else "published", **fields}
    return Event(kind, feed, item, 0.0)


async def test_applying_an_event_twice_or_out_of_order_changes_nothing(redis: aioredis.Redis, feed: str) -> None:
    store = ItemStore(redis, max_items=100, max_age_s=3600)
    item_id = "a" * 26
    assert await store.apply(_event(feed, item_id, 1), Cursor("e", 0, 10)) == 1
    assert await store.apply(_event(feed, item_id, 2, EventType.updated), Cursor("e", 0, 11)) == 1
    assert await store.apply(_event(feed, item_id, 2, EventType.updated), Cursor("e", 0, 11)) == 0
    assert await store.apply(_event(feed, item_id, 1), Cursor("e", 0, 10)) == 0
    stored = await store.get(feed, item_id)
    assert stored is not None and stored.version == 2 and stored.seq == 10
    assert stored.item()["headline"] == "v2"
    listed = (await store.page(feed, limit=10))[1]
    assert [s.item()["id"] for s in listed] == [item_id]


async def test_retention_bounds_each_feed_and_keeps_key_events_and_pins(redis: aioredis.Redis, feed: str) -> None:
    store = ItemStore(redis, max_items=10, max_age_s=3600)
    for n in range(25):
        await store.apply(_event(feed, f"{n:026d}", 1, key_event=n == 2, pinned=n == 3), Cursor("e", 0, n))
    listed = (await store.page(feed, limit=100))[1]
    assert [s.seq for s in listed] == list(range(24, 14, -1))
    assert await redis.zcard(keys.key("tag", feed=feed, tag="x")) == 10
    assert [s.seq for s in (await store.page(feed, limit=100, key_events=True))[1]] == [2]
    assert [s.seq for s in (await store.page(feed, limit=100, pinned=True))[1]] == [3]
    trimmed = await store.get(feed, f"{0:026d}")
    assert trimmed is not None, "an item off the list keeps its state for the age limit (issue 12)"
    assert 0 < await redis.ttl(keys.key("item", feed=feed, id=f"{0:026d}")) <= 3600
    assert await redis.ttl(keys.key("item", feed=feed, id=f"{24:026d}")) > 3000


async def _snapshot(api: httpx.AsyncClient, feeds: list[str]) -> dict[str, Any]:
    return {f: (await api.get(f"/v1/feeds/{f}/items?limit=200")).json() for f in feeds}


async def _wait_ready(api: httpx.AsyncClient, timeout: float = 60) -> list[dict[str, Any]]:
    """Poll history's readiness until ready; return every status seen on the way."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await api.get("/api/history/readyz")
        seen.append(response.json())
        if response.status_code == 200:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"history not ready after {timeout}s: {seen[-1:]}")


async def _publish_mixed(api: httpx.AsyncClient, feeds: list[str]) -> None:
    """Publish, edit and retract in each feed; return once history has applied all of it."""
    for feed in feeds:
        ids = []
        for n in range(12):
            item = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": f"{feed} {n}", "tags": ["t"]})).json()
            ids.append(item["item"]["id"])
        await api.patch(f"/v1/feeds/{feed}/items/{ids[3]}", json={"headline": "edited"})
        last = (await api.delete(f"/v1/feeds/{feed}/items/{ids[5]}")).json()["cursor"]
        await _wait_head(api, feed, last)


async def _wait_head(api: httpx.AsyncClient, feed: str, cursor: str, timeout: float = 10) -> None:
    """Wait until the feed's list reflects ``cursor``: its own cursor (the partition's watermark,
    which other feeds' events move on too) has reached it."""
    deadline = time.monotonic() + timeout
    while _offset((await api.get(f"/v1/feeds/{feed}/items?limit=1")).json()["cursor"]) < _offset(cursor):
        assert time.monotonic() < deadline, f"history did not reach {cursor} in {timeout}s"
        await asyncio.sleep(0.02)


def _offset(cursor: str | None) -> int:
    return -1 if cursor is None else int(cursor.rsplit(".", 1)[1])


async def test_history_rebuilds_every_feed_when_redis_is_emptied(
    api: httpx.AsyncClient, redis: aioredis.Redis, stack: Stack, feed: str
) -> None:
    feeds = [f"{feed}-a", f"{feed}-b"]
    await _publish_mixed(api, feeds)
    await _wait_ready(api)
    before = await _snapshot(api, feeds)
    await redis.flushdb()
    seen = await _wait_ready(api)
    after = await _snapshot(api, feeds)
    assert after == before
    assert len(after[feeds[0]]["items"]) == 11
    log = (stack.run_dir / "logs" / "history.log").read_text()
    assert "rebuilding every feed from kafka" in log
    assert "rebuild complete" in log
    assert seen[0]["status"] == "rebuilding", "an emptied Redis was reported ready"


async def test_replaying_the_topic_over_existing_history_changes_nothing(
    api: httpx.AsyncClient, redis: aioredis.Redis, stack: Stack, feed: str
) -> None:
    """A crash between the Redis write and the offset commit replays events; history must not change."""
    feeds = [f"{feed}-a", f"{feed}-b"]
    await _publish_mixed(api, feeds)
    await _wait_ready(api)
    before = await _snapshot(api, feeds)
    stack.stop_process("history")
    watermarks = [key async for key in redis.scan_iter(match=keys.key("wm", partition="*"))]
    assert watermarks
    await redis.delete(*watermarks)
    await asyncio.to_thread(stack.start_service, "history")
    await _wait_ready(api)
    assert await _snapshot(api, feeds) == before

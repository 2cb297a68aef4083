"""Issue 9: a feed that stays quiet while its partition is busy still goes live from its snapshot."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
from aiokafka import AIOKafkaProducer

from deploy.stack import Stack
from services.ingest import lifecycle
from shared.kafka import feed_partitioner
from shared.models import ItemCreate
from tests.utils.streams import next_event, next_message, open_stream

BUSY_EVENTS = 20_000
PARTITIONS = 3


def neighbours(feed: str, count: int) -> list[str]:
    """Feeds whose events share ``feed``'s partition."""
    partition_of = feed_partitioner(PARTITIONS)
    names: list[str] = []
    while len(names) < count:
        name = f"busy-{uuid.uuid4().hex[:10]}"
        if partition_of(name) == partition_of(feed):
            names.append(name)
    return names


async def flood(stack: Stack, feeds: list[str], total: int) -> tuple[str, str]:
    """Produce ``total`` events of ``feeds`` straight into Kafka; return the last one's feed and id."""
    producer = AIOKafkaProducer(bootstrap_servers=f"{stack.topology.host}:{stack.topology.kafka}",
                                linger_ms=20, max_batch_size=1_048_576)
    await producer.start()
    try:
        last = ("", "")
        sends = []
        for n in range(total):
            now = lifecycle.now_utc()
            feed = feeds[n % len(feeds)]
            event = lifecycle.publish(feed, lifecycle.new_item_id(now), ItemCreate(headline=f"busy {n}"), now)
            sends.append(await producer.send("livefeed.events", event.serialize(), key=feed.encode()))
            last = (feed, event.item_id)
        await asyncio.wait_for(asyncio.gather(*sends), 60)
        return last
    finally:
        await producer.stop()


async def wait_until_listed(api: httpx.AsyncClient, feed: str, item_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = await api.get(f"/v1/feeds/{feed}/items", params={"limit": 1})
        if page.status_code == 200 and any(i["id"] == item_id for i in page.json()["items"]):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"history did not show {feed}/{item_id} within {timeout}s")


async def test_a_quiet_feed_goes_live_from_its_snapshot_after_its_partition_moved_on(
    stack: Stack, api: httpx.AsyncClient, feed: str, ws_url: str, origin: str
) -> None:
    quiet = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "The only update for a while"})
    assert quiet.status_code == 201
    last_feed, last_id = await flood(stack, neighbours(feed, 20), BUSY_EVENTS)
    await wait_until_listed(api, last_feed, last_id, 90)
    stack.restart_service("fanout")  # it now holds only the partition's recent events, none of the quiet feed's

    for _ in range(2):  # a snapshot, and the reload a reader makes after it
        snapshot = (await api.get(f"/v1/feeds/{feed}/items")).json()
        assert snapshot["items"][-1]["id"] == quiet.json()["item"]["id"]
        ws = await open_stream(ws_url, feed, origin, since=snapshot["cursor"])
        try:
            hello = await next_message(ws, 10)
            assert hello["type"] == "hello", hello
            news = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "The quiet feed speaks"})
            assert news.status_code == 201
            live = await next_event(ws, 10)
            assert live["item"]["id"] == news.json()["item"]["id"]
        finally:
            await ws.close()

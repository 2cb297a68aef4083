"""Issue 14: the compose topology without containers: 2 ingest, 2 history and 2 fanout instances behind the gateway.

The module starts its own stack (``deploy/stack.py``'s Topology with two instances of each
service, on the session stack's ports plus ``SHIFT``), so it leaves the session stack alone. The
two history instances share one consumer group: through a member killed -9 (the group moves its
partitions to the other, then back when it returns), a member paused past its session, and a Redis
that lost its data, history ends with every item once, in order, and no instance serves a partial
list meanwhile. ingest writes items into Redis too (write-through), so the tests also check what
only the consumers write: each partition's watermark.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from deploy.stack import Stack
from shared.kafka import feed_partitioner
from tests.conftest import TEST_TOKEN
from tests.utils.faults import KeyedWriter, ResumingReader, crash, offset, restore, settle, until
from tests.utils.stacks import own_stack

pytestmark = pytest.mark.timeout(300)

SHIFT = 500
"""Added to the session stack's shift (LIVEFEED_TEST_PORT_SHIFT): every port then ends in what no stack
on a whole-thousand shift uses (x501-x514, x580, x592-x599, x601, x701, x801, x880)."""
PARTITIONS = 3
GROUP = "livefeed-history"


@pytest.fixture(scope="module")
def replicas() -> Iterator[Stack]:
    with own_stack(SHIFT, "livefeed-replicas-", TEST_TOKEN, ingest_instances=2, history_instances=2,
                   fanout_instances=2) as stack:
        yield stack


@pytest.fixture
async def redis(replicas: Stack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host=replicas.topology.host, port=replicas.topology.redis)
    yield client
    await client.aclose()


@pytest.fixture
async def api(replicas: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=replicas.topology.base_url, timeout=15,
                                 headers={"Authorization": f"Bearer {TEST_TOKEN}"}) as client:
        yield client


def one_feed_per_partition() -> list[str]:
    """Fresh feeds, one in each partition, so both history instances own some of them."""
    partition_of = feed_partitioner(PARTITIONS)
    feeds: dict[int, str] = {}
    while len(feeds) < PARTITIONS:
        feed = f"r-{uuid.uuid4().hex[:10]}"
        feeds.setdefault(partition_of(feed), feed)
    return [feeds[p] for p in range(PARTITIONS)]


def history_url(stack: Stack, name: str) -> str:
    return f"http://{stack.topology.host}:{stack.topology.ports(name)['http']}"


async def group_members(stack: Stack) -> int:
    """Members of history's consumer group while it is stable; -1 while it rebalances."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.topology.kafka_bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([GROUP])
        group = response.groups[0]  # raw DescribeGroups: (error, group, state, protocol type, protocol, members, ...)
        return len(group[5]) if group[2] == "Stable" else -1
    finally:
        await admin.close()


async def members_become(stack: Stack, count: int, timeout: float) -> None:
    """Wait (bounded) until the history group is stable with ``count`` members: a rebalance has happened."""
    deadline = time.monotonic() + timeout
    seen = None
    while (seen := await group_members(stack)) != count:
        assert time.monotonic() < deadline, f"history's group has {seen} members, not {count}, after {timeout:g}s"
        await asyncio.sleep(0.3)


async def both_ready(stack: Stack, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        for name in stack.topology.instances("history"):
            last = "no answer"
            while True:
                with contextlib.suppress(httpx.TransportError):
                    answer = await client.get(f"{history_url(stack, name)}/readyz")
                    if answer.status_code == 200:
                        break
                    last = f"{answer.status_code} {answer.text[:300]}"
                assert time.monotonic() < deadline, f"{name} not ready within {timeout:g}s: {last}"
                await asyncio.sleep(0.2)


async def applied_up_to(redis: aioredis.Redis, writers: list[KeyedWriter], timeout: float) -> None:
    """Wait until each partition's watermark (written by history's consumers alone) covers its feed's last write."""
    deadline = time.monotonic() + timeout
    for writer in writers:
        cursor = writer.acked[-1]["cursor"]
        partition = cursor.split(".")[1]
        while int(await redis.get(f"lf:wm:{partition}") or -1) < offset(cursor):
            assert time.monotonic() < deadline, f"history has not applied partition {partition} up to {cursor}"
            await asyncio.sleep(0.2)


async def every_item_once_in_order(stack: Stack, writers: list[KeyedWriter]) -> None:
    """Each history instance lists each feed's acknowledged items once, newest first, and nothing else."""
    async with httpx.AsyncClient(timeout=10) as client:
        for name in stack.topology.instances("history"):
            for writer in writers:
                page = await client.get(f"{history_url(stack, name)}/v1/feeds/{writer.feed}/items",
                                        params={"limit": 200})
                assert page.status_code == 200, (name, page.text[:200])
                listed = [item["id"] for item in page.json()["items"]]
                acked = [a["item"]["id"] for a in reversed(writer.acked)]
                assert listed == acked, f"{name} lists {writer.feed} as {len(listed)} items, not the {len(acked)} acked"


async def post_some(writers: list[KeyedWriter], count: int, label: str) -> None:
    for n in range(count):
        await asyncio.gather(*(w.post({"headline": f"{w.feed} {label} {n}"}) for w in writers))


async def test_readers_across_fanouts_and_history_through_a_member_killed_and_one_paused(
    replicas: Stack, api: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    stack = replicas
    await both_ready(stack, 120)
    await members_become(stack, 2, 30)
    writers = [KeyedWriter(api, feed) for feed in one_feed_per_partition()]
    await post_some(writers, 1, "first")
    readers = [ResumingReader(transport, w.feed, w.acked[0]["cursor"])
               for w in writers for transport in ("ws", "ws", "sse")]
    origin = stack.topology.base_url
    ws_url = f"ws://{stack.topology.host}:{stack.topology.gateway}"
    tasks = [asyncio.create_task(r.run(ws_url, stack.topology.base_url, origin), name=f"{r.transport} {r.feed}")
             for r in readers]
    try:
        await until(lambda: all(r.connections for r in readers), 15, "every reader connected", tasks)
        per_fanout = {name: await stream_readers(stack, name) for name in stack.topology.instances("fanout")}
        assert all(count > 0 for count in per_fanout.values()), f"no reader went to some fanout: {per_fanout}"

        await post_some(writers, 5, "before")
        await crash(stack, "history-2", signal.SIGKILL)
        await post_some(writers, 5, "killed")
        await members_become(stack, 1, 40)  # its session ran out: the group gave its partitions to history
        await post_some(writers, 5, "alone")
        await restore(stack, "history-2")
        await post_some(writers, 5, "rejoining")
        await members_become(stack, 2, 40)
        await post_some(writers, 5, "back")

        with stack.paused("history-2"):
            await post_some(writers, 5, "paused")
            await members_become(stack, 1, 40)
            await post_some(writers, 5, "paused-alone")
        await members_become(stack, 2, 40)
        await post_some(writers, 5, "resumed")

        for reader in readers:
            reader.until(next(w for w in writers if w.feed == reader.feed).acked[-1]["cursor"])
        await settle(readers, tasks, 30)
        await applied_up_to(redis, writers, 30)
        await both_ready(stack, 30)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await restore(stack, "history-2")
    for reader in readers:
        acked = [a["cursor"] for a in next(w for w in writers if w.feed == reader.feed).acked[1:]]
        assert [cursor for cursor, *_ in reader.received] == acked, f"{reader.transport} reader of {reader.feed}"
    await every_item_once_in_order(stack, writers)
    assert stack.procs["history"].poll() is None, "history exited through the rebalances"


async def stream_readers(stack: Stack, name: str) -> float:
    """Readers connected to fanout instance ``name`` now (WS and SSE), from its own metrics port."""
    url = f"http://{stack.topology.host}:{stack.topology.ports(name)['metrics']}/metrics"
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(url)).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("livefeed_fanout_readers{"))


async def test_after_redis_loses_its_data_two_instances_rebuild_every_item_once_and_serve_no_partial_list(
    replicas: Stack, api: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    stack = replicas
    await both_ready(stack, 120)
    await members_become(stack, 2, 40)
    writers = [KeyedWriter(api, feed) for feed in one_feed_per_partition()]
    await post_some(writers, 40, "item")
    await applied_up_to(redis, writers, 30)
    logs = {name: stack.log_path(name) for name in stack.topology.instances("history")}
    before = {name: log.read_text(errors="replace").count("rebuilding every feed from kafka")
              for name, log in logs.items()}

    await redis.flushall()
    seen: dict[int, int] = {}
    partial: list[str] = []
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            ready = 0
            for name in stack.topology.instances("history"):
                for writer in writers:
                    page = await client.get(f"{history_url(stack, name)}/v1/feeds/{writer.feed}/items",
                                            params={"limit": 200})
                    seen[page.status_code] = seen.get(page.status_code, 0) + 1
                    if page.status_code == 200 and len(page.json()["items"]) != len(writer.acked):
                        partial.append(f"{name} {writer.feed}: {len(page.json()['items'])}/{len(writer.acked)}")
                ready += (await client.get(f"{history_url(stack, name)}/readyz")).status_code == 200
            if ready == 2 and seen.get(503):
                break
            assert time.monotonic() < deadline, f"not rebuilt within 60 s: answers {seen}"
            await asyncio.sleep(0.05)
    assert not partial, f"a partial list was served during the rebuild: {partial[:5]}"
    after = {name: log.read_text(errors="replace").count("rebuilding every feed from kafka")
             for name, log in logs.items()}
    assert sum(after.values()) - sum(before.values()) == 1, f"the store was emptied more than once: {after}"
    await applied_up_to(redis, writers, 30)
    await every_item_once_in_order(stack, writers)
    status: dict[str, Any] = (await api.get("/api/history/readyz")).json()
    assert status["status"] == "ready"

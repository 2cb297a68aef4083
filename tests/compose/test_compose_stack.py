"""The production path, run: docker-compose.yml scaled, a container killed, rescaled, redeployed, taken down.

The tests run in file order on one project (tests/compose/conftest.py): each leaves it running
for the next, and the last takes it down. Readers go through the gateway as browsers do, and
resume from their last cursor after any drop (tests/utils/faults.py ResumingReader); writers
retry each post with its Idempotency-Key until acknowledged. What must hold every time: each
reader ends with exactly the acknowledged items, in order, none twice.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from tests.compose.conftest import Compose, log
from tests.utils.faults import KeyedWriter, ResumingReader, offset, settle, until

pytestmark = pytest.mark.timeout(900)

READERS = 12


async def post(compose: Compose, feed: str, headline: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=compose.base_url, timeout=20,
                                 headers={"Authorization": f"Bearer {compose.token}"}) as api:
        return await KeyedWriter(api, feed).post({"headline": headline})


@asynccontextmanager
async def reading(compose: Compose, feed: str, since: str, count: int = READERS) -> AsyncIterator[list[ResumingReader]]:
    """``count`` resuming readers of ``feed`` from ``since`` through the gateway, half WebSocket, half SSE."""
    readers = [ResumingReader("ws" if n % 2 else "sse", feed, since) for n in range(count)]
    tasks = [asyncio.create_task(r.run(compose.ws_url, compose.base_url, compose.origin), name=f"reader {n}")
             for n, r in enumerate(readers)]
    try:
        await until(lambda: all(r.connections for r in readers), 30, "readers connected", tasks)
        yield readers
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def caught_up(readers: list[ResumingReader], posted: list[dict[str, Any]], timeout: float = 60) -> None:
    for reader in readers:
        reader.until(posted[-1]["cursor"])
    await settle(readers, [], timeout)


def assert_exactly(readers: list[ResumingReader], posted: list[dict[str, Any]]) -> None:
    """Every reader got the posted items, in order, none twice, with strictly rising cursors."""
    want = [p["item"]["id"] for p in posted]
    for reader in readers:
        got = [item_id for _, _, item_id, _ in reader.received]
        assert got == want, (f"{reader.transport} reader ({reader.connections} connections, drops "
                             f"{dict(reader.drops)}) got {len(got)} of {len(want)} events")
        offsets = [offset(cursor) for cursor, *_ in reader.received]
        assert offsets == sorted(set(offsets))


def spread(compose: Compose) -> dict[str, int]:
    return {name: compose.readers(name) for name in compose.names("fanout")}


async def write_while(compose: Compose, feed: str, stop: asyncio.Event, pace_s: float = 0.1) -> list[dict[str, Any]]:
    """Post items one after another until ``stop``; the acknowledged ones, in order."""
    async with httpx.AsyncClient(base_url=compose.base_url, timeout=20,
                                 headers={"Authorization": f"Bearer {compose.token}"}) as api:
        writer = KeyedWriter(api, feed, give_up_s=120)
        await writer.run(stop, "w", pace_s)
        log(f"writer: {len(writer.acked)} acknowledged, answers {dict(writer.answers)}, "
            f"slowest {writer.slowest_s:.1f} s")
        return writer.acked


@pytest.fixture
def feed() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


async def test_scaled_up_readers_spread_over_the_fanouts_and_each_gets_every_event_in_order(
    compose: Compose, feed: str,
) -> None:
    for service, count in compose.scale.items():
        assert len(compose.names(service)) == count, service
    genesis = await post(compose, feed, "genesis")
    async with reading(compose, feed, genesis["cursor"]) as readers:
        on = spread(compose)
        log(f"readers per fanout: {on}")
        assert all(on.values()), f"least_conn left a fanout without readers: {on}"
        posted = [await post(compose, feed, f"item {n}") for n in range(20)]
        await caught_up(readers, posted)
    assert_exactly(readers, posted)
    async with httpx.AsyncClient(base_url=compose.base_url, timeout=10) as reader:
        answer = await reader.get(f"/v1/feeds/{feed}/items", params={"limit": 100},
                                  headers={"Cache-Control": "no-cache"})
    assert answer.status_code == 200, answer.text
    listed = [item["id"] for item in reversed(answer.json()["items"])]
    assert listed == [genesis["item"]["id"], *(p["item"]["id"] for p in posted)], "history's list"


async def test_killing_a_fanout_container_while_events_flow_loses_and_repeats_nothing(
    compose: Compose, feed: str,
) -> None:
    genesis = await post(compose, feed, "genesis")
    async with reading(compose, feed, genesis["cursor"]) as readers:
        victim = compose.names("fanout")[1]
        on_victim = compose.readers(victim)
        assert on_victim, "no reader on the container to kill"
        stop = asyncio.Event()
        writing = asyncio.create_task(write_while(compose, feed, stop))
        await asyncio.sleep(2)
        killed = time.monotonic()
        compose.podman("kill", "--signal", "KILL", victim)
        await until(lambda: sum(r.connections > 1 for r in readers) >= on_victim, 45, "the victim's readers back",
                    [writing])
        back = time.monotonic() - killed
        await asyncio.sleep(2)
        stop.set()
        posted = await writing
        await caught_up(readers, posted)
    log(f"fanout container killed with {on_victim} of {READERS} readers: all back {back:.1f} s later, "
        f"{len(posted)} items each, no gap, no duplicate")
    assert_exactly(readers, posted)
    compose.up()
    compose.wait_healthy("fanout", compose.scale["fanout"], 120)


async def test_scaling_fanout_3_to_5_to_2_needs_no_gateway_restart(compose: Compose, feed: str) -> None:
    gateway = compose.names("gateway")[0]
    gateway_started = json.loads(compose.podman("inspect", gateway))[0]["State"]["StartedAt"]
    genesis = await post(compose, feed, "genesis")
    async with reading(compose, feed, genesis["cursor"]) as early:
        compose.scale["fanout"] = 5
        compose.up()
        took = compose.wait_healthy("fanout", 5, 180)
        await asyncio.sleep(6)  # the gateway asks DNS again every 5 s (resolver valid=5s)
        async with reading(compose, feed, genesis["cursor"]) as late:
            on = spread(compose)
            log(f"scaled to 5 fanouts ({took:.0f} s to healthy): readers per fanout {on}")
            new = compose.names("fanout")[3:]
            assert all(on[name] for name in new), f"the new fanouts took no reader: {on}"
            posted = [await post(compose, feed, f"at 5 {n}") for n in range(10)]
            await caught_up([*early, *late], posted)
            compose.scale["fanout"] = 2
            compose.up()
            await until(lambda: len(compose.names("fanout")) == 2, 60, "fanout scaled to 2", [])
            posted += [await post(compose, feed, f"at 2 {n}") for n in range(10)]
            await caught_up([*early, *late], posted)
            on = spread(compose)
            log(f"scaled to 2: readers per fanout {on}")
            assert sum(on.values()) == 2 * READERS, f"not every reader is back on the 2 fanouts: {on}"
    assert_exactly([*early, *late], posted)
    assert json.loads(compose.podman("inspect", gateway))[0]["State"]["StartedAt"] == gateway_started, \
        "the gateway was restarted"


async def test_a_redeploy_with_up_build_drops_no_reader_for_good(compose: Compose, feed: str) -> None:
    """A new image or setting recreates every livefeed container; readers and writers ride it out."""
    before = {service: compose.names(service) for service in ("fanout", "history", "ingest")}
    genesis = await post(compose, feed, "genesis")
    async with reading(compose, feed, genesis["cursor"]) as readers:
        stop = asyncio.Event()
        writing = asyncio.create_task(write_while(compose, feed, stop, pace_s=0.2))
        compose.env["LIVEFEED_LOG_LEVEL"] = "WARNING"
        took = await asyncio.to_thread(compose.up, "--build")
        for service, count in compose.scale.items():
            await asyncio.to_thread(compose.wait_healthy, service, count, 180)
        after = {service: compose.names(service) for service in before}
        await asyncio.sleep(3)
        stop.set()
        posted = await writing
        await caught_up(readers, posted, 90)
    log(f"redeploy (up -d --build) took {took:.0f} s; readers reconnected "
        f"{sum(r.connections - 1 for r in readers)} times; {len(posted)} items each, no gap, no duplicate")
    for service in before:
        assert not set(before[service]) & set(after[service]) or _recreated(compose, after[service]), service
    assert all(r.connections > 1 for r in readers), "the redeploy recreated no fanout"
    assert_exactly(readers, posted)


def _recreated(compose: Compose, names: list[str]) -> bool:
    """Containers keep their names when compose recreates them: compare the config instead."""
    return all(json.loads(compose.podman("inspect", n))[0]["Config"]["Env"].count("LIVEFEED_LOG_LEVEL=WARNING")
               for n in names)


def test_down_leaves_nothing(compose: Compose) -> None:
    compose.run("down", "-v", "--remove-orphans", "-t", "20", timeout=300)
    assert compose.leftovers() == {"containers": [], "volumes": [], "networks": []}

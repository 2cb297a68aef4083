"""Issue 4: gap-free resume under load, against the real stack.

Readers of two feeds, with different tag filters, over WebSocket and SSE, drop their
connections at random (abruptly or cleanly, during replay or live) and come back with their
last cursor while writers publish, edit and retract hundreds of items. At the end each
reader's final view of every item must equal Kafka's, its events in Kafka order, none twice,
and the only events it may lack are those of items retracted since (a resume never sends a
retracted item's words again).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from deploy.stack import Stack
from tests.utils.kafka import Record, kafka_events
from tests.utils.streams import next_event, next_message, open_stream

TAGS = ("a", "b", "c")


@dataclass
class Reader:
    feed: str
    tags: frozenset[str] | None
    transport: str
    cursor: str
    received: list[Record] = field(default_factory=list)
    connections: int = 0

    @property
    def tags_param(self) -> str | None:
        return ",".join(sorted(self.tags)) if self.tags else None

    def take(self, message: dict[str, Any]) -> None:
        item = message["item"]
        self.received.append((message["cursor"], message["type"], item["id"], item["version"]))
        self.cursor = message["cursor"]


async def ws_session(reader: Reader, ws_url: str, origin: str, lifetime: float | None, target: str | None) -> None:
    ws = await open_stream(ws_url, reader.feed, origin, since=reader.cursor, tags=reader.tags_param)
    reader.connections += 1
    try:
        hello = await next_message(ws)
        assert hello["type"] == "hello", f"expected hello, got {hello}"
        assert hello["cursor"] == reader.cursor
        end = None if lifetime is None else time.monotonic() + lifetime
        while target is None or reader.cursor != target:
            timeout = 10.0 if end is None else end - time.monotonic()
            if timeout <= 0:
                return
            try:
                message = await next_event(ws, timeout=timeout)
            except TimeoutError:
                if end is None:
                    raise
                return
            reader.take(message)
    finally:
        if random.random() < 0.5:
            ws.transport.abort()
        else:
            await ws.close()


async def sse_session(reader: Reader, base_url: str, origin: str, lifetime: float | None, target: str | None) -> None:
    headers = {"Origin": origin, "Last-Event-ID": reader.cursor, "Accept": "text/event-stream"}
    params = {"tags": reader.tags_param} if reader.tags else {}

    async def consume() -> None:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(10, read=15)) as client,
            client.stream("GET", f"/v1/feeds/{reader.feed}/events", headers=headers, params=params) as resp,
        ):
            assert resp.status_code == 200
            reader.connections += 1
            event, data = "message", ""
            async for line in resp.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and data:
                    message = orjson.loads(data)
                    assert event != "reset", f"unexpected reset: {message}"
                    if event == "hello":
                        assert message["cursor"] == reader.cursor
                    elif message["type"].startswith("item."):
                        reader.take(message)
                        if target is not None and reader.cursor == target:
                            return
                    event, data = "message", ""

    if lifetime is None:
        await asyncio.wait_for(consume(), 20)
    else:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consume(), lifetime)


@pytest.mark.timeout(180)
async def test_readers_that_drop_and_resume_see_exactly_the_published_sequence(
    stack: Stack, api: httpx.AsyncClient, base_url: str, ws_url: str, origin: str, feed: str
) -> None:
    rng = random.Random(4)
    feeds = [f"{feed}-x", f"{feed}-y"]
    genesis = {f: (await api.post(f"/v1/feeds/{f}/items", json={"headline": "genesis"})).json()["cursor"]
               for f in feeds}
    epoch = genesis[feeds[0]].split(".")[0]
    filters: list[frozenset[str] | None] = [None, frozenset({"a"}), frozenset({"b"}), frozenset({"a", "c"})]
    readers = [Reader(f, tags, kind, genesis[f]) for f in feeds for tags in filters for kind in ("ws", "ws")]
    readers += [Reader(f, tags, "sse", genesis[f]) for f in feeds for tags in (None, frozenset({"b"}))]
    publishing = asyncio.Event()
    publishing.set()

    async def run_reader(reader: Reader) -> None:
        while publishing.is_set():
            # An SSE session only counts once its response has begun, which through the gateway on
            # a loaded machine can take longer than a WebSocket's hello: give it time to begin.
            lifetime = rng.uniform(0.01, 0.3) if reader.transport == "ws" else rng.uniform(0.4, 0.9)
            if reader.transport == "ws":
                await ws_session(reader, ws_url, origin, lifetime, None)
            else:
                await sse_session(reader, base_url, origin, lifetime, None)
            await asyncio.sleep(rng.uniform(0, 0.05))

    live: dict[str, list[str]] = {f: [] for f in feeds}

    async def writer(f: str, ops: int) -> None:
        for _ in range(ops):
            roll = rng.random()
            tags = sorted(t for t in TAGS if rng.random() < 0.4)
            if roll < 0.6 or len(live[f]) < 3:
                response = await api.post(f"/v1/feeds/{f}/items", json={"headline": "news", "tags": tags})
                assert response.status_code == 201, response.text
                live[f].append(response.json()["item"]["id"])
            elif roll < 0.85:
                item_id = rng.choice(live[f])
                response = await api.patch(f"/v1/feeds/{f}/items/{item_id}", json={"tags": tags, "body": "edit"})
                assert response.status_code in (200, 410), response.text
            else:
                item_id = rng.choice(live[f])
                response = await api.delete(f"/v1/feeds/{f}/items/{item_id}")
                assert response.status_code in (200, 410), response.text
                if item_id in live[f]:
                    live[f].remove(item_id)

    reader_tasks = [asyncio.create_task(run_reader(r)) for r in readers]
    await asyncio.gather(*(writer(f, 60) for f in feeds for _ in range(3)))
    # On a fast run the writers can finish before a slow-starting SSE reader has resumed a few
    # times: keep every reader cycling (each session resumes from its cursor) until it has.
    deadline = time.monotonic() + 30
    while any(reader.connections <= 3 for reader in readers):
        assert time.monotonic() < deadline, "a reader never got to reconnect three times"
        await asyncio.sleep(0.1)
    publishing.clear()
    await asyncio.wait_for(asyncio.gather(*reader_tasks), 30)

    in_kafka = await kafka_events(stack, set(feeds), epoch)
    total = sum(len(v) for v in in_kafka.values())
    assert total >= 300, total
    for reader in readers:
        genesis_offset = int(genesis[reader.feed].rsplit(".", 1)[1])
        expected = [
            record for record, tags in in_kafka[reader.feed]
            if int(record[0].rsplit(".", 1)[1]) > genesis_offset
            and (reader.tags is None or not reader.tags.isdisjoint(tags) or record[1] == "item.retracted")
        ]
        if expected and reader.cursor != expected[-1][0]:
            final = ws_session if reader.transport == "ws" else sse_session
            url = ws_url if reader.transport == "ws" else base_url
            await asyncio.wait_for(final(reader, url, origin, None, expected[-1][0]), 20)
        assert reader.connections > 3, "the reader did not reconnect often enough to test anything"
        retracted = {record[2] for record, _ in in_kafka[reader.feed] if record[1] == "item.retracted"}
        assert_same_view(reader, expected, retracted)


def assert_same_view(reader: Reader, expected: list[Record], retracted: set[str]) -> None:
    """The reader got Kafka's events in order, and missed only the scrubbed ones of retracted items.

    A resume replays a retracted item's tombstone alone (its earlier events would bring its words
    back), so every other item's final state equals Kafka's, a retracted item is gone or a
    tombstone, and nothing else is missing.
    """
    where = f"{reader.transport} reader of {reader.feed} tags={reader.tags}"
    offsets = [int(cursor.rsplit(".", 1)[1]) for cursor, *_ in reader.received]
    assert offsets == sorted(set(offsets)), f"{where}: events out of order or twice"
    assert set(reader.received) <= set(expected), f"{where}: got events Kafka does not hold"
    got = set(reader.received)
    missed = [record for record in expected if record not in got]
    assert all(item_id in retracted for _, _, item_id, _ in missed), f"{where}: missed {missed}"
    final = {item_id: (kind, version) for _, kind, item_id, version in expected}
    seen = {item_id: (kind, version) for _, kind, item_id, version in reader.received}
    for item_id, state in final.items():
        if item_id in retracted:
            shown = seen.get(item_id)
            assert shown is None or shown == state or shown[0] == "item.retracted", f"{where}: {item_id} {shown}"
        else:
            assert seen.get(item_id) == state, f"{where}: {item_id} is {seen.get(item_id)}, Kafka says {state}"


async def test_a_cursor_older_than_the_buffer_gets_an_explicit_reset(
    api: httpx.AsyncClient, base_url: str, ws_url: str, origin: str, feed: str
) -> None:
    first = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "old"})).json()["cursor"]
    for start in range(0, 310, 31):
        await asyncio.gather(*(api.post(f"/v1/feeds/{feed}/items", json={"headline": f"n{n}"})
                               for n in range(start, start + 31)))
    ws = await open_stream(ws_url, feed, origin, since=first)
    message = await next_message(ws)
    assert message["type"] == "reset"
    assert message["reason"] == "cursor_too_old"
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == 4000
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.get(f"/v1/feeds/{feed}/events", headers={"Last-Event-ID": first})
        assert "event: reset" in response.text
    snapshot = (await api.get(f"/v1/feeds/{feed}/items?limit=1")).json()
    resumed = await open_stream(ws_url, feed, origin, since=snapshot["cursor"])
    try:
        assert (await next_message(resumed)) == {"type": "hello", "feed": feed, "cursor": snapshot["cursor"]}
    finally:
        await resumed.close()


async def test_a_cursor_from_another_topic_epoch_gets_a_reset(ws_url: str, origin: str, feed: str) -> None:
    ws = await open_stream(ws_url, feed, origin, since="00000000.0.5")
    message = await next_message(ws)
    assert message["type"] == "reset" and message["reason"] == "epoch_changed"


async def test_sse_streams_live_events_with_ids_and_checks_origin(
    api: httpx.AsyncClient, base_url: str, origin: str, feed: str
) -> None:
    first = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "one"})).json()["cursor"]
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        foreign = await client.get(f"/v1/feeds/{feed}/events", headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        async with client.stream("GET", f"/v1/feeds/{feed}/events", params={"since": first},
                                 headers={"Origin": origin}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            second = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "two"})).json()
            seen: list[str] = []
            while f"id: {second['cursor']}" not in seen:
                seen.append(await asyncio.wait_for(anext(lines), 5))
            data = await asyncio.wait_for(anext(lines), 5)
            assert orjson.loads(data.removeprefix("data: "))["item"] == second["item"]
            assert "event: hello" in seen


async def test_heartbeats_keep_an_idle_stream_alive(ws_url: str, origin: str, feed: str) -> None:
    ws = await open_stream(ws_url, feed, origin)
    try:
        await next_message(ws)
        beat = await next_message(ws, timeout=8, skip_heartbeats=False)
        assert beat == {"type": "heartbeat"}
    finally:
        await ws.close()


async def test_a_reader_resumes_exactly_across_a_fanout_restart(
    stack: Stack, api: httpx.AsyncClient, ws_url: str, origin: str, feed: str
) -> None:
    seen = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "before"})).json()["cursor"]
    stack.stop_process("fanout")
    missed = [(await api.post(f"/v1/feeds/{feed}/items", json={"headline": f"while down {n}"})).json()
              for n in range(3)]
    await asyncio.to_thread(stack.start_service, "fanout")
    ws = await open_stream(ws_url, feed, origin, since=seen)
    try:
        assert (await next_message(ws))["type"] == "hello"
        got = [await next_event(ws) for _ in missed]
        assert [g["cursor"] for g in got] == [m["cursor"] for m in missed]
        after = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "after"})).json()
        assert (await next_event(ws))["cursor"] == after["cursor"]
    finally:
        await ws.close()

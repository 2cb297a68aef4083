"""Issue 9: cursors the stream cannot continue are told so, and a rebuild never serves part of a feed."""

from __future__ import annotations

import asyncio
import time

import httpx
import redis.asyncio as aioredis
from websockets.exceptions import ConnectionClosed

from deploy.stack import Stack
from tests.utils.streams import next_message, open_stream


async def test_a_cursor_kafka_never_reached_gets_a_reset_not_silence(
    stack: Stack, api: httpx.AsyncClient, feed: str, ws_url: str, origin: str
) -> None:
    posted = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "Now"})
    epoch, partition, _ = posted.json()["cursor"].split(".")
    ws = await open_stream(ws_url, feed, origin, since=f"{epoch}.{partition}.999999999")
    try:
        assert (await next_message(ws, 10))["type"] == "hello"
        reset = await next_message(ws, 8.5)  # the grace (5 s) and one overdue tick (1 s), with room
        assert reset["type"] == "reset" and reset["reason"] == "cursor_ahead"
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4000
        else:
            raise AssertionError("the stream stayed open after its reset")
    finally:
        await ws.close()


async def test_during_a_rebuild_a_list_is_complete_or_a_503(
    stack: Stack, api: httpx.AsyncClient, feed: str, base_url: str
) -> None:
    ids = set()
    for n in range(30):
        response = await api.post(f"/v1/feeds/{feed}/items", json={"headline": f"Update {n}"})
        ids.add(response.json()["item"]["id"])
    deadline = time.monotonic() + 20
    while (await api.get(f"/v1/feeds/{feed}/items", params={"limit": 50})).json().get("items", []).__len__() < 30:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)

    redis = aioredis.Redis(host=stack.topology.host, port=stack.topology.redis)
    try:
        await redis.flushall()
    finally:
        await redis.aclose()
    answers: dict[int, int] = {}
    deadline = time.monotonic() + 90
    while True:
        page = await api.get(f"/v1/feeds/{feed}/items", params={"limit": 50})
        answers[page.status_code] = answers.get(page.status_code, 0) + 1
        if page.status_code == 503:
            assert page.json()["error"] in ("rebuilding", "store_unavailable")
            assert page.headers["retry-after"].isdigit()
        else:
            assert page.status_code == 200
            assert {i["id"] for i in page.json()["items"]} == ids, "a partial list was served during the rebuild"
            if (await api.get(f"{base_url}/api/history/readyz")).status_code == 200:
                break
        assert time.monotonic() < deadline, answers
        await asyncio.sleep(0.02)
    assert answers.get(503, 0) > 0, answers

"""Issue 9: Kafka is the only hard dependency of publishing; reads degrade to a fast 503 without Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable

import httpx

from deploy.stack import Stack
from tests.utils.streams import next_event, next_message, open_stream


async def timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


async def headlines_in_history(api: httpx.AsyncClient, feed: str, timeout: float, want: int) -> list[str]:
    """The feed's headlines once history lists at least ``want`` items (and is answering again)."""
    deadline = time.monotonic() + timeout
    while True:
        page = await api.get(f"/v1/feeds/{feed}/items", params={"limit": 50})
        if page.status_code == 200 and len(page.json()["items"]) >= want:
            return [i["headline"] for i in page.json()["items"]]
        assert time.monotonic() < deadline, f"history has not caught up: {page.status_code} {page.text[:200]}"
        await asyncio.sleep(0.2)


async def test_with_redis_paused_posts_go_through_and_reads_answer_503_fast(
    stack: Stack, api: httpx.AsyncClient, feed: str, ws_url: str, origin: str, base_url: str
) -> None:
    first = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "Before the outage"})
    assert first.status_code == 201
    item_id = first.json()["item"]["id"]
    history_pid = stack.procs["history"].pid
    # From the first item's cursor: opened without one, the stream starts wherever the fanout has read
    # to, and a fanout not yet past the first item would send it as live, ahead of "During".
    ws = await open_stream(ws_url, feed, origin, since=first.json()["cursor"])
    key = {"Idempotency-Key": uuid.uuid4().hex}
    try:
        assert (await next_message(ws))["type"] == "hello"
        with stack.paused("redis"):
            post, post_s = await timed(api.post(f"/v1/feeds/{feed}/items", json={"headline": "During"}, headers=key))
            assert post.status_code == 201, post.text
            assert post_s < 3.0
            new_feed, _ = await timed(api.post(f"/v1/feeds/{feed}-new/items", json={"headline": "New feed"}))
            assert new_feed.status_code == 201, new_feed.text

            for method, path, body in [
                ("GET", f"/v1/feeds/{feed}/items", None),
                ("GET", f"/v1/feeds/{feed}/items/{item_id}", None),
                ("GET", f"/feeds/{feed}", None),
                ("PATCH", f"/v1/feeds/{feed}/items/{item_id}", {"headline": "Edited"}),
                ("DELETE", f"/v1/feeds/{feed}/items/{item_id}", None),
            ]:
                answer, answer_s = await timed(api.request(method, path, json=body))
                assert answer.status_code == 503, (method, path, answer.status_code, answer.text[:200])
                assert answer.headers["retry-after"].isdigit()
                assert answer.json()["error"] == "store_unavailable"
                assert answer_s < 1.5, (method, path, answer_s)

            ready = await api.get(f"{base_url}/api/history/readyz")
            assert ready.status_code == 503
            assert ready.json()["status"] == "redis_unavailable"
            live = await next_event(ws, 5)
            assert live["item"]["headline"] == "During"
            await asyncio.sleep(2)  # the consumer meets the paused Redis several times meanwhile

        # The lock SETs the paused Redis took but never answered must not hold the item now.
        edit, edit_s = await timed(api.patch(f"/v1/feeds/{feed}/items/{item_id}", json={"body": "Edited after"}))
        assert edit.status_code == 200, edit.text
        assert edit_s < 3.0, f"the edit waited {edit_s:.1f}s for a lock nobody holds"
        assert (await next_event(ws, 5))["item"]["body"] == "Edited after"
        again = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "During"}, headers=key)
        assert again.status_code == 201
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json()["item"]["id"] == post.json()["item"]["id"]
        assert await headlines_in_history(api, feed, 30, 2) == ["During", "Before the outage"]
        assert stack.procs["history"].pid == history_pid and stack.procs["history"].poll() is None
        with contextlib.suppress(TimeoutError):
            repeat = await next_event(ws, 1)
            raise AssertionError(f"the reader got an event twice: {repeat}")
    finally:
        await ws.close()


async def test_a_retry_after_the_key_store_was_unreachable_makes_no_second_item(
    stack: Stack, api: httpx.AsyncClient, feed: str, ws_url: str, origin: str
) -> None:
    """The retry reaches a restarted ingest (no kept answer) and Redis never saw the key."""
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"headline": "Said once"}
    ws = await open_stream(ws_url, feed, origin)
    try:
        assert (await next_message(ws))["type"] == "hello"
        with stack.paused("redis"):
            first = await api.post(f"/v1/feeds/{feed}/items", json=body, headers=key)
            assert first.status_code == 201
        assert (await next_event(ws, 5))["item"]["headline"] == "Said once"
        await headlines_in_history(api, feed, 30, 1)
        stack.restart_service("ingest")
        retry = await api.post(f"/v1/feeds/{feed}/items", json=body, headers=key)
        assert retry.status_code == 201
        later = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "Next"})
        assert later.status_code == 201
        assert (await next_event(ws, 5))["item"]["headline"] == "Next"
        assert await headlines_in_history(api, feed, 30, 2) == ["Next", "Said once"]
    finally:
        await ws.close()

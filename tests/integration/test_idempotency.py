"""Issue 4: a retried write with the same Idempotency-Key publishes exactly one event."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.utils.streams import next_event, next_message, open_stream


async def test_retry_returns_the_original_and_publishes_once(
    api: httpx.AsyncClient, ws_url: str, origin: str, feed: str
) -> None:
    ws = await open_stream(ws_url, feed, origin)
    try:
        await next_message(ws)
        key = {"Idempotency-Key": uuid.uuid4().hex}
        first = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "once"}, headers=key)
        second = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "once"}, headers=key)
        assert first.status_code == second.status_code == 201
        assert first.json() == second.json()
        assert second.headers.get("Idempotent-Replayed") == "true"
        await api.post(f"/v1/feeds/{feed}/items", json={"headline": "marker"})
        assert (await next_event(ws))["item"]["headline"] == "once"
        assert (await next_event(ws))["item"]["headline"] == "marker", "the retry published a second event"
    finally:
        await ws.close()
    assert [i["headline"] for i in (await api.get(f"/v1/feeds/{feed}/items")).json()["items"]] == ["marker", "once"]


async def test_concurrent_retries_of_one_key_publish_once(api: httpx.AsyncClient, feed: str) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    responses = await asyncio.gather(
        *(api.post(f"/v1/feeds/{feed}/items", json={"headline": "storm"}, headers=key) for _ in range(10))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["item"]["id"] for r in responses}) == 1
    assert len({r.json()["cursor"] for r in responses}) == 1
    assert len((await api.get(f"/v1/feeds/{feed}/items")).json()["items"]) == 1


async def test_same_key_with_another_body_is_refused(api: httpx.AsyncClient, feed: str) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    assert (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "a"}, headers=key)).status_code == 201
    clash = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "b"}, headers=key)
    assert clash.status_code == 422
    assert clash.json()["fields"][0]["field"] == "Idempotency-Key"
    assert len((await api.get(f"/v1/feeds/{feed}/items")).json()["items"]) == 1


async def test_idempotent_edits_and_retractions(api: httpx.AsyncClient, feed: str) -> None:
    item = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "x"})).json()["item"]
    url = f"/v1/feeds/{feed}/items/{item['id']}"
    key = {"Idempotency-Key": uuid.uuid4().hex}
    edits = await asyncio.gather(*(api.patch(url, json={"body": "fixed"}, headers=key) for _ in range(5)))
    assert {e.json()["item"]["version"] for e in edits} == {2}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await api.delete(url, headers=key)
    retry = await api.delete(url, headers=key)
    assert first.status_code == retry.status_code == 200
    assert first.json() == retry.json()

"""Issue 3's walking skeleton, through the gateway, on the real servers."""

from __future__ import annotations

import asyncio
import time

import httpx

from shared.kafka import feed_partitioner
from tests.utils.streams import next_event, next_message, open_stream


async def test_post_reaches_a_connected_reader_and_history_lists_it_first(
    api: httpx.AsyncClient, ws_url: str, origin: str, feed: str
) -> None:
    ws = await open_stream(ws_url, feed, origin)
    try:
        hello = await next_message(ws)
        assert hello["type"] == "hello" and hello["feed"] == feed
        await api.post(f"/v1/feeds/{feed}/items", json={"headline": "first"})
        started = time.monotonic()
        response = await api.post(
            f"/v1/feeds/{feed}/items",
            json={"headline": "Breaking: it works", "body": "Body text", "tags": ["demo"], "urgency": "breaking"},
        )
        assert response.status_code == 201, response.text
        posted = response.json()
        assert posted["item"]["headline"] == "Breaking: it works"
        assert posted["item"]["version"] == 1
        assert posted["cursor"]
        first = await next_event(ws, timeout=1.0)
        second = await next_event(ws, timeout=1.0)
        assert time.monotonic() - started < 1.0
        assert first["item"]["headline"] == "first"
        epoch, partition, _ = first["cursor"].split(".")
        assert hello["cursor"].split(".")[:2] == [epoch, partition], "hello must name the feed's partition"
        assert int(partition) == feed_partitioner(3)(feed)
        assert second == {
            "type": "item.published",
            "cursor": posted["cursor"],
            "feed": feed,
            "ts": second["ts"],
            "item": posted["item"],
        }
    finally:
        await ws.close()
    listing = (await api.get(f"/v1/feeds/{feed}/items")).json()
    assert [i["headline"] for i in listing["items"]] == ["Breaking: it works", "first"]
    assert listing["items"][0] == posted["item"]


async def test_ids_sort_in_publish_order(api: httpx.AsyncClient, feed: str) -> None:
    ids = []
    for n in range(5):
        response = await api.post(f"/v1/feeds/{feed}/items", json={"headline": f"item {n}"})
        ids.append(response.json()["item"]["id"])
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


async def test_writes_need_a_token(base_url: str, auth: dict[str, str], feed: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as anonymous:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
            response = await anonymous.post(f"/v1/feeds/{feed}/items", json={"headline": "x"}, headers=headers)
            assert response.status_code == 401
            assert response.json()["fields"][0]["field"] == "Authorization"
        assert (await anonymous.get(f"/v1/feeds/{feed}/items")).json()["items"] == []
        assert (await anonymous.post("/v1/tokens/check", headers={"Authorization": "Bearer wrong"})).status_code == 401
    async with httpx.AsyncClient(base_url=base_url, timeout=10, headers=auth) as newsroom:
        assert (await newsroom.post("/v1/tokens/check")).status_code == 204


async def test_bad_input_is_refused_with_the_field_named_and_nothing_published(
    api: httpx.AsyncClient, ws_url: str, origin: str, feed: str
) -> None:
    ws = await open_stream(ws_url, feed, origin)
    try:
        await next_message(ws)
        cases: list[tuple[dict[str, object], int, str]] = [
            ({"content": b'{"headline": "x",'}, 400, "body"),
            ({"json": {"body": "no headline"}}, 422, "headline"),
            ({"json": {"headline": 42}}, 422, "headline"),
            ({"json": {"headline": "x", "tags": "not-a-list"}}, 422, "tags"),
            ({"json": {"headline": "x", "urgency": "urgent"}}, 422, "urgency"),
            ({"json": {"headline": "x", "body": "y" * 10_001}}, 422, "body"),
            ({"json": {"headline": "x", "body": "y" * 70_000}}, 413, "body"),
            ({"json": {"headline": "x", "surprise": True}}, 422, "surprise"),
            ({"json": {"headline": "   "}}, 422, "headline"),
        ]
        for kwargs, status, field in cases:
            if "content" in kwargs:
                kwargs = {**kwargs, "headers": {"Content-Type": "application/json"}}
            response = await api.post(f"/v1/feeds/{feed}/items", **kwargs)  # type: ignore[arg-type]
            assert response.status_code == status, (kwargs, response.text)
            body = response.json()
            assert field in [f["field"] for f in body["fields"]], body
            assert body["message"]
        bad_feed = await api.post("/v1/feeds/Not_A_Slug/items", json={"headline": "x"})
        assert bad_feed.status_code == 422
        assert bad_feed.json()["fields"][0]["field"] == "feed"
        await api.post(f"/v1/feeds/{feed}/items", json={"headline": "the only good one"})
        event = await next_event(ws, timeout=2.0)
        assert event["item"]["headline"] == "the only good one", "a refused request reached Kafka"
    finally:
        await ws.close()
    items = (await api.get(f"/v1/feeds/{feed}/items")).json()["items"]
    assert [i["headline"] for i in items] == ["the only good one"]


async def test_markup_is_stored_and_streamed_as_the_same_text(api: httpx.AsyncClient, feed: str) -> None:
    headline = "Test item with markup that must render as text: <script>alert(1)</script> & <b>bold</b>"
    body = "<img src=x onerror=alert(2)> \"quotes\" 'apostrophes' — dashes, emoji 🇺🇦, right-to-left: مرحبا."
    response = await api.post(f"/v1/feeds/{feed}/items", json={"headline": headline, "body": body})
    assert response.status_code == 201
    item = (await api.get(f"/v1/feeds/{feed}/items")).json()["items"][0]
    assert (item["headline"], item["body"]) == (headline, body)


async def test_stream_refuses_foreign_origins_and_bad_requests(ws_url: str, origin: str, feed: str) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus
    from websockets.typing import Origin

    for url, sent_origin, status in [
        (f"{ws_url}/v1/feeds/{feed}/stream", "http://evil.example", 403),
        (f"{ws_url}/v1/feeds/{feed}/stream?since=garbage", origin, 400),
        (f"{ws_url}/v1/feeds/{feed}/stream?tags=Bad!", origin, 400),
    ]:
        try:
            await asyncio.wait_for(connect(url, origin=Origin(sent_origin)), 5)
        except InvalidStatus as exc:
            assert exc.response.status_code == status
        else:
            raise AssertionError(f"{url} was accepted")


async def test_the_openapi_pages_work_behind_the_gateway(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for service, path in (("ingest", "/v1/feeds/{feed}/items"), ("history", "/v1/feeds/{feed}/key-events")):
            page = await client.get(f"/api/{service}/docs")
            assert page.status_code == 200 and "openapi.json" in page.text
            spec = (await client.get(f"/api/{service}/openapi.json")).json()
            assert path in spec["paths"]


async def test_every_answer_carries_a_request_id(api: httpx.AsyncClient, feed: str) -> None:
    response = await api.get(f"/v1/feeds/{feed}/items", headers={"X-Request-ID": "ignored-by-the-gateway"})
    assert len(response.headers["x-request-id"]) == 32
    assert response.headers["x-request-id"] != "ignored-by-the-gateway"

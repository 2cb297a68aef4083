"""Issue 9: a retraction removes the words everywhere a reader can reach; Kafka keeps them for the audit."""

from __future__ import annotations

import httpx
import orjson

from deploy.stack import Stack
from tests.utils.kafka import kafka_events
from tests.utils.streams import next_message, open_stream

SECRET = "Named source 7f3a"


async def test_no_reader_gets_a_retracted_items_words_back(
    stack: Stack, api: httpx.AsyncClient, feed: str, ws_url: str, origin: str
) -> None:
    before = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "Earlier update"})
    assert before.status_code == 201
    cursor = before.json()["cursor"]
    # A reader there all along: once it has the retraction, so has the fanout, and a resume
    # from then on must not bring the words back (before it, the fanout had not heard of it).
    watcher = await open_stream(ws_url, feed, origin, since=cursor)
    posted = await api.post(f"/v1/feeds/{feed}/items", json={"headline": f"Quote from {SECRET}", "body": SECRET,
                                                             "tags": ["politics"]})
    item_id = posted.json()["item"]["id"]
    edited = await api.patch(f"/v1/feeds/{feed}/items/{item_id}", json={"body": f"{SECRET}, corrected"})
    assert edited.status_code == 200
    retracted = await api.delete(f"/v1/feeds/{feed}/items/{item_id}")
    assert retracted.status_code == 200
    assert SECRET not in retracted.text
    assert retracted.json()["item"]["status"] == "retracted"
    try:
        while (await next_message(watcher, 10))["type"] != "item.retracted":
            pass
    finally:
        await watcher.close()

    for tags in (None, "politics"):
        ws = await open_stream(ws_url, feed, origin, since=cursor, tags=tags)
        try:
            received = []
            while True:
                message = await next_message(ws, 10)
                received.append(orjson.dumps(message).decode())
                if message["type"] == "item.retracted":
                    break
            assert not any(SECRET in m for m in received), received
        finally:
            await ws.close()

    gone = await api.get(f"/v1/feeds/{feed}/items/{item_id}")
    assert gone.status_code == 410 and SECRET not in gone.text
    listing = await api.get(f"/v1/feeds/{feed}/items")
    assert SECRET not in listing.text
    page = await api.get(f"/feeds/{feed}")
    assert SECRET not in page.text

    audit = await kafka_events(stack, {feed}, cursor.split(".")[0])
    assert [kind for (_, kind, _, _), _ in audit[feed]] == [
        "item.published", "item.published", "item.updated", "item.retracted"]

"""Issue 3: when Kafka cannot take a write, ingest says 503 and stores nothing; then it recovers.

This test stops the session's Kafka broker and starts it again, so the tests after it also
check that every service recovers from a broker restart by itself.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from deploy.stack import Stack
from tests.utils.kafka import kafka_events
from tests.utils.streams import next_event, next_message, open_stream


@pytest.mark.timeout(180)
async def test_a_kafka_outage_is_a_clean_503_and_a_retry_afterwards_publishes_once(
    stack: Stack, api: httpx.AsyncClient, ws_url: str, origin: str, feed: str
) -> None:
    assert (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "before"})).status_code == 201
    key = {"Idempotency-Key": uuid.uuid4().hex}
    stack.stop_process("kafka")
    try:
        started = time.monotonic()
        response = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "during"}, headers=key, timeout=60)
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "kafka_unavailable"
        assert "Retry-After" in response.headers
        assert time.monotonic() - started < 40
        listed = (await api.get(f"/v1/feeds/{feed}/items")).json()["items"]
        assert [i["headline"] for i in listed] == ["before"], "a refused write reached history"
    finally:
        await asyncio.to_thread(stack.start_kafka)
    deadline = time.monotonic() + 60
    while True:
        retry = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "during"}, headers=key, timeout=60)
        if retry.status_code == 201:
            break
        assert retry.status_code == 503, retry.text
        assert time.monotonic() < deadline, "ingest did not recover within 60 s of Kafka's return"
        await asyncio.sleep(0.5)
    ws = await open_stream(ws_url, feed, origin, since=retry.json()["cursor"])
    try:
        await next_message(ws, timeout=30)
        after = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "after"})).json()
        assert (await next_event(ws, timeout=30))["cursor"] == after["cursor"]
    finally:
        await ws.close()
    deadline = time.monotonic() + 30
    while True:
        listed = [i["headline"] for i in (await api.get(f"/v1/feeds/{feed}/items")).json()["items"]]
        if listed == ["after", "during", "before"]:
            break
        assert time.monotonic() < deadline, listed
        await asyncio.sleep(0.2)
    epoch = after["cursor"].split(".")[0]
    in_kafka = [record for record, _ in (await kafka_events(stack, {feed}, epoch))[feed]]
    assert [r[1] for r in in_kafka] == ["item.published"] * 3, "the refused write was stored after all"


@pytest.mark.timeout(120)
async def test_with_kafka_paused_every_post_gets_its_503_within_the_kafka_timeout(
    stack: Stack, api: httpx.AsyncClient, feed: str
) -> None:
    """A paused broker keeps its connections and accepts new ones, then never answers: each of
    several writes in a row must still get its 503 within LIVEFEED_KAFKA_TIMEOUT_S (5 s)."""
    assert (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "before"})).status_code == 201
    with stack.paused("kafka"):
        for n in range(4):
            started = time.monotonic()
            response = await api.post(f"/v1/feeds/{feed}/items", json={"headline": f"during {n}"}, timeout=60)
            took = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert response.json()["error"] in ("kafka_unavailable", "kafka_unacknowledged")
            assert response.headers["retry-after"].isdigit()
            assert took < 7.0, f"write {n} waited {took:.1f}s for its 503"
    deadline = time.monotonic() + 60
    while (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "after"}, timeout=60)).status_code != 201:
        assert time.monotonic() < deadline, "ingest did not recover within 60 s of Kafka's return"
        await asyncio.sleep(0.5)

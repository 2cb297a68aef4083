"""CMS integration (issue 12): a publish with an ``external_id`` makes one item per feed, whoever repeats it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from deploy.stack import Stack
from tests.conftest import TEST_TOKEN, bearer
from tests.utils.streams import next_event, open_stream

ROOT = Path(__file__).resolve().parents[2]


async def items(api: httpx.AsyncClient, feed: str) -> list[dict[str, Any]]:
    page = await api.get(f"/v1/feeds/{feed}/items", params={"limit": 200})
    assert page.status_code == 200, page.text
    found: list[dict[str, Any]] = page.json()["items"]
    return found


async def test_a_resync_answers_the_existing_item_and_publishes_nothing(api: httpx.AsyncClient, feed: str) -> None:
    body = {"headline": "Council approves budget", "body": "By 7 votes to 2.", "external_id": "cms:article/4711"}
    first = await api.post(f"/v1/feeds/{feed}/items", json=body)
    assert first.status_code == 201, first.text
    item = first.json()["item"]
    assert item["external_id"] == "cms:article/4711"

    again = await api.post(f"/v1/feeds/{feed}/items", json=body)
    assert again.status_code == 200, again.text
    assert again.headers["external-id-replayed"] == "true"
    assert again.json()["item"] == item

    edited = await api.patch(f"/v1/feeds/{feed}/items/{item['id']}", json={"headline": "Council approves budget 7-2"})
    assert edited.status_code == 200
    after_edit = await api.post(f"/v1/feeds/{feed}/items", json=body)
    assert after_edit.status_code == 200
    assert after_edit.json()["item"]["version"] == 2
    assert after_edit.json()["item"]["headline"] == "Council approves budget 7-2"

    other = await api.post(f"/v1/feeds/{feed}/items", json={**body, "body": "By 6 votes to 3."})
    assert other.status_code == 409, other.text
    assert other.json()["error"] == "external_id_conflict" and other.json()["id"] == item["id"]
    assert other.json()["fields"][0]["field"] == "external_id"

    elsewhere = await api.post(f"/v1/feeds/{feed}-b/items", json=body)
    assert elsewhere.status_code == 201 and elsewhere.json()["item"]["id"] != item["id"]
    assert [i["id"] for i in await items(api, feed)] == [item["id"]]

    assert (await api.delete(f"/v1/feeds/{feed}/items/{item['id']}")).status_code == 200
    retracted = await api.post(f"/v1/feeds/{feed}/items", json=body)
    assert retracted.status_code == 410 and retracted.json()["id"] == item["id"]
    assert await items(api, feed) == []


async def test_external_id_is_validated_and_not_editable(api: httpx.AsyncClient, feed: str) -> None:
    for bad in ("", "x" * 201, "line\nbreak", "caf\u00e9"):
        refused = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "x", "external_id": bad})
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["fields"][0]["field"] == "external_id"
        assert "^" not in refused.json()["message"]
    posted = (await api.post(f"/v1/feeds/{feed}/items", json={"headline": "x", "external_id": "x" * 200})).json()
    edit = await api.patch(f"/v1/feeds/{feed}/items/{posted['item']['id']}", json={"external_id": "other"})
    assert edit.status_code == 422


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def second_ingest(stack: Stack) -> Iterator[str]:
    """Another ingest process on the same Kafka and Redis, reached directly (the gateway knows one)."""
    port = _free_port()
    env = {**os.environ, **stack.env(), "LIVEFEED_INGEST_PORT": str(port),
           "LIVEFEED_INGEST_METRICS_PORT": str(_free_port()), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "services.ingest.main"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the second ingest exited"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the second ingest did not start"
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


async def test_racing_resyncs_through_two_ingest_processes_make_one_item(
    stack: Stack, api: httpx.AsyncClient, feed: str
) -> None:
    body = {"headline": "Storm warning for the coast", "external_id": f"urn:cms:{uuid.uuid4()}"}
    with second_ingest(stack) as other_url:
        async with httpx.AsyncClient(base_url=other_url, headers=bearer(TEST_TOKEN), timeout=30) as other:
            answers = await asyncio.gather(*[
                client.post(f"/v1/feeds/{feed}/items", json=body) for _ in range(4) for client in (api, other)
            ])
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201], [a.text for a in answers]
    assert len({a.json()["item"]["id"] for a in answers}) == 1
    assert len(await items(api, feed)) == 1


async def test_a_resync_while_redis_is_down_makes_no_second_item_for_readers(
    stack: Stack, api: httpx.AsyncClient, feed: str, ws_url: str, origin: str
) -> None:
    body = {"headline": "Bridge reopens", "external_id": "cms-991"}
    first = (await api.post(f"/v1/feeds/{feed}/items", json=body)).json()["item"]
    ws = await open_stream(ws_url, feed, origin)
    try:
        with stack.paused("redis"):
            during = await api.post(f"/v1/feeds/{feed}/items", json=body)
            assert during.status_code in (200, 201), during.text
        marker = await api.post(f"/v1/feeds/{feed}/items", json={"headline": "Marker"})
        assert marker.status_code == 201
        assert (await next_event(ws, 10))["item"]["id"] == marker.json()["item"]["id"]
    finally:
        await ws.close()
    deadline = time.monotonic() + 20
    while len(found := await items(api, feed)) < 2:
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.2)
    assert sorted(i["id"] for i in found) == sorted([first["id"], marker.json()["item"]["id"]])

    deadline = time.monotonic() + 10
    while (after := await api.post(f"/v1/feeds/{feed}/items", json=body)).status_code == 503:
        assert after.json()["error"] == "store_unavailable" and time.monotonic() < deadline, after.text
        await asyncio.sleep(0.2)
    assert after.status_code == 200, after.text
    assert after.json()["item"]["id"] == first["id"], "the answer names the item readers have"


async def test_concurrent_resyncs_while_redis_is_down_name_at_most_one_new_item(
    stack: Stack, api: httpx.AsyncClient, feed: str
) -> None:
    """20 re-syncs at once during an outage answered 10 201s with 10 ids readers never see (outside review)."""
    body = {"headline": "Ferry cancelled", "external_id": f"urn:cms:{uuid.uuid4()}"}
    with stack.paused("redis"):
        answers = await asyncio.gather(*[api.post(f"/v1/feeds/{feed}/items", json=body) for _ in range(20)])
    created = [a for a in answers if a.status_code == 201]
    assert len(created) <= 1, [a.json()["item"]["id"] for a in created]
    assert all(a.status_code in (200, 201, 503) for a in answers), [a.text for a in answers]

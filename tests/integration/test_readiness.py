"""Issue 11: every service's ``/readyz`` says whether it can do its work, and says it fast.

Ingest is ready while Kafka answers (Redis is reported, not required); fanout while its pump has
caught up and Kafka answers its fetches. The Kafka test pauses the session's broker (SIGSTOP: a
hung broker keeps its sockets open, the hard case) and resumes it whatever happens.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from deploy.stack import Stack
from services.fanout.pump import FETCH_STALE_S
from services.ingest.ready import PROBE_TIMEOUT_S

pytestmark = pytest.mark.stack


def readyz_urls(stack: Stack) -> dict[str, str]:
    t = stack.topology
    return {
        "ingest": f"http://{t.host}:{t.ingest}/readyz",
        "history": f"http://{t.host}:{t.history}/readyz",
        "fanout-ws": f"http://{t.host}:{t.fanout}/readyz",
        "fanout-sse": f"http://{t.host}:{t.fanout_sse}/readyz",
        "gateway-ingest": f"{t.base_url}/api/ingest/readyz",
        "gateway-history": f"{t.base_url}/api/history/readyz",
    }


async def wait_all_ready(client: httpx.AsyncClient, stack: Stack, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for name, url in readyz_urls(stack).items():
        while (response := await client.get(url)).status_code != 200:
            assert time.monotonic() < deadline, f"{name} not ready again within {timeout:g}s: {response.text}"
            await asyncio.sleep(0.5)


async def test_every_service_is_ready_with_the_same_body_shape(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        await wait_all_ready(client, stack)
        for name, url in readyz_urls(stack).items():
            response = await client.get(url)
            assert response.status_code == 200, (name, response.text)
            assert response.headers["content-type"].startswith("application/json"), name
            assert response.json()["status"] == "ready", (name, response.text)
        ingest = (await client.get(readyz_urls(stack)["ingest"])).json()
        assert ingest["kafka"] == "ok" and ingest["redis"] == "ok", ingest
        fanout = (await client.get(readyz_urls(stack)["fanout-ws"])).json()
        assert set(fanout["lag"]) == {"0", "1", "2"}, fanout


@pytest.mark.timeout(180)
async def test_with_kafka_paused_ingest_and_fanout_turn_unready_in_bounded_time_and_recover(stack: Stack) -> None:
    urls = readyz_urls(stack)
    async with httpx.AsyncClient(timeout=30) as client:
        await wait_all_ready(client, stack)
        with stack.paused("kafka"):
            await asyncio.sleep(1.1)  # past the cached answer from before the pause
            started = time.monotonic()
            answers = await asyncio.gather(*(client.get(urls["ingest"]) for _ in range(50)))
            took = time.monotonic() - started
            assert {a.status_code for a in answers} == {503}, answers[0].text
            assert took < PROBE_TIMEOUT_S + 3, f"50 probes took {took:.1f}s"
            body = answers[0].json()
            assert body["status"] == "kafka_unavailable" and body["kafka"] != "ok", body
            assert body["redis"] == "ok", body
            assert answers[0].headers["retry-after"].isdigit()

            deadline = time.monotonic() + FETCH_STALE_S + 15
            while (fanout := await client.get(urls["fanout-sse"])).status_code != 503:
                assert time.monotonic() < deadline, f"fanout still ready with Kafka paused: {fanout.text}"
                await asyncio.sleep(0.5)
            assert fanout.json()["status"] == "kafka_stalled"
            assert fanout.headers["retry-after"].isdigit()
            assert (await client.get(urls["fanout-ws"])).status_code == 503
        await wait_all_ready(client, stack)

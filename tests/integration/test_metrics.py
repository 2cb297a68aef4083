"""Issue 11, observability: each service's metrics move when traffic flows, on the service's own port only.

Every scrape goes to a real service's metrics port; the traffic goes through the gateway, as a
reader's and a newsroom's does. Assertions compare two scrapes (a delta), so other traffic in
the session cannot make them pass or fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from deploy.stack import Stack
from tests.utils.streams import next_event, open_stream

pytestmark = pytest.mark.stack

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SERVICES = ("ingest", "history", "fanout")


def metrics_url(stack: Stack, service: str) -> str:
    t = stack.topology
    port = {"ingest": t.ingest_metrics, "history": t.history_metrics, "fanout": t.fanout_metrics}[service]
    return f"http://{t.host}:{port}/metrics"


async def scrape(stack: Stack, service: str) -> Samples:
    """Every sample of ``service``'s metrics port, by name and labels."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(metrics_url(stack, service))
    assert response.status_code == 200, response.text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def partitions_of(samples: Samples, name: str, service: str) -> set[str]:
    return {dict(labels)["partition"] for sample, labels in samples
            if sample == name and dict(labels).get("service") == service}


async def until(check: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    """Wait (bounded) until ``check()`` is true; a metric updated by the event loop or a tick takes a moment."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"{what} within {timeout:g}s"
        await asyncio.sleep(0.1)


async def test_each_service_serves_metrics_on_its_own_port_and_none_through_the_gateway(
    stack: Stack, base_url: str
) -> None:
    for service in SERVICES:
        samples = await scrape(stack, service)
        assert any(name.startswith("livefeed_") for name, _ in samples), service
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for path in ("/metrics", "/api/ingest/metrics", "/api/history/metrics", "/v1/metrics"):
            response = await client.get(path)
            assert response.status_code == 404, (path, response.status_code)
            assert "livefeed_" not in response.text, path


@pytest.mark.timeout(120)
async def test_traffic_moves_the_request_produce_fanout_and_lag_metrics(
    stack: Stack, api: httpx.AsyncClient, ws_url: str, origin: str, feed: str
) -> None:
    before = {service: await scrape(stack, service) for service in SERVICES}
    t = stack.topology

    ws = await open_stream(ws_url, feed, origin)
    try:
        async with (httpx.AsyncClient(base_url=stack.topology.base_url, timeout=30) as sse_client,
                    sse_client.stream("GET", f"/v1/feeds/{feed}/events") as sse):
            assert sse.status_code == 200
            lines = sse.aiter_lines()

            async def readers_up() -> bool:
                now = await scrape(stack, "fanout")
                return all(value(now, "livefeed_fanout_readers", transport=kind)
                           >= value(before["fanout"], "livefeed_fanout_readers", transport=kind) + 1
                           for kind in ("ws", "sse"))

            await until(readers_up, "both readers counted as connected")
            posted = []
            for n in range(2):
                response = await api.post(f"/v1/feeds/{feed}/items", json={"headline": f"metrics {n}"})
                assert response.status_code == 201, response.text
                posted.append(response.json()["cursor"])
                assert (await next_event(ws, timeout=15))["cursor"] == posted[-1]
            seen = 0
            async with asyncio.timeout(15):
                async for line in lines:
                    if line.startswith("id: "):
                        seen += 1
                        if seen == 2:
                            break
    finally:
        await ws.close()

    assert (await api.get(f"/v1/feeds/{feed}/items")).status_code == 200
    assert (await api.get(f"/v1/feeds/{feed}/items/01jaaaaaaaaaaaaaaaaaaaaaaa")).status_code == 404
    assert (await api.get("/v1/no-such-route")).status_code == 404
    with pytest.raises(InvalidStatus) as refused:
        await asyncio.wait_for(connect(f"ws://{t.host}:{t.fanout}/v1/feeds/{feed}/stream",
                                       origin="http://evil.example"), 10)  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(f"http://{t.host}:{t.fanout_sse}/v1/feeds/NOT_A_FEED/events")).status_code == 400

    async def readers_down() -> bool:
        now = await scrape(stack, "fanout")
        return all(value(now, "livefeed_fanout_readers", transport=kind)
                   == value(before["fanout"], "livefeed_fanout_readers", transport=kind) for kind in ("ws", "sse"))

    await until(readers_down, "both readers counted as gone")
    after = {service: await scrape(stack, service) for service in SERVICES}

    def moved(scraped: str, name: str, **labels: str) -> float:
        return value(after[scraped], name, **labels) - value(before[scraped], name, **labels)

    requests = "livefeed_http_requests_total"
    assert moved("ingest", requests, service="ingest", route="/v1/feeds/{feed}/items", method="POST",
                 status="201") == 2
    assert moved("ingest", "livefeed_http_request_duration_seconds_count", service="ingest",
                 route="/v1/feeds/{feed}/items", method="POST") == 2
    assert moved("history", requests, service="history", route="/v1/feeds/{feed}/items", method="GET",
                 status="200") >= 1
    assert moved("history", requests, service="history", route="/v1/feeds/{feed}/items/{item_id}", method="GET",
                 status="404") == 1
    assert moved("history", requests, service="history", route="unmatched", method="GET", status="404") >= 1
    assert not any(feed in dict(labels).get("route", "") for _, labels in after["history"]), \
        "a raw path became a label"
    assert moved("ingest", "livefeed_kafka_produce_duration_seconds_count", outcome="acknowledged") == 2
    assert moved("fanout", "livefeed_fanout_deliveries_total") >= 4, "2 events to 2 readers"
    assert moved("fanout", "livefeed_fanout_publish_to_delivery_seconds_count") >= 2
    assert moved("fanout", "livefeed_fanout_refused_handshakes_total", transport="ws",
                 reason="origin_not_allowed") == 1
    assert moved("fanout", "livefeed_fanout_refused_handshakes_total", transport="sse",
                 reason="bad_stream_request") == 1
    for consumer in ("history", "fanout"):
        assert partitions_of(after[consumer], "livefeed_kafka_consumer_lag", consumer) == {"0", "1", "2"}, consumer

"""Issue 11: fanout logs no line per connection at the default level; connections are counted in metrics.

With 900 churning readers an INFO line per connection opened and closed was 7.6 MB in 12
minutes. Here 200 WebSocket and 200 SSE readers connect through the gateway, read their hello
and leave, and a few handshakes are refused: fanout's log may grow by a few lines at most.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from deploy.stack import Stack
from tests.utils.streams import next_message, open_stream

pytestmark = pytest.mark.stack

READERS = 200
AT_ONCE = 25
LINES_ALLOWED = 3


def log_lines(stack: Stack, name: str) -> int:
    return len(stack.log_path(name).read_bytes().splitlines())


async def ws_reader(ws_url: str, feed: str, origin: str) -> None:
    ws = await open_stream(ws_url, feed, origin)
    try:
        assert (await next_message(ws, timeout=15))["type"] == "hello"
    finally:
        await ws.close()


async def sse_reader(client: httpx.AsyncClient, feed: str) -> None:
    async with client.stream("GET", f"/v1/feeds/{feed}/events") as response:
        assert response.status_code == 200
        async with asyncio.timeout(15):
            async for line in response.aiter_lines():
                if line == "event: hello":
                    return


async def refused(ws_url: str, feed: str) -> None:
    with pytest.raises(InvalidStatus):
        await asyncio.wait_for(connect(f"{ws_url}/v1/feeds/{feed}/stream", origin="http://evil.example"),  # type: ignore[arg-type]
                               10)


@pytest.mark.timeout(180)
async def test_churning_readers_leave_fanouts_log_as_it_was(stack: Stack, ws_url: str, origin: str, feed: str) -> None:
    before = log_lines(stack, "fanout")
    async with httpx.AsyncClient(base_url=stack.topology.base_url, timeout=30) as client:
        for start in range(0, READERS, AT_ONCE):
            batch = range(start, min(READERS, start + AT_ONCE))
            await asyncio.gather(*(ws_reader(ws_url, feed, origin) for _ in batch),
                                 *(sse_reader(client, feed) for _ in batch))
        await asyncio.gather(*(refused(ws_url, feed) for _ in range(20)))
    await asyncio.sleep(2)  # closing handshakes finish and anything they log is written
    grown = log_lines(stack, "fanout") - before
    tail = stack.log_path("fanout").read_text(errors="replace").splitlines()[before:][:5]
    assert grown <= LINES_ALLOWED, f"fanout wrote {grown} lines for {2 * READERS} connections: {tail}"

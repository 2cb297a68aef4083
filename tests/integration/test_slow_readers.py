"""A reader that stops reading is dropped once its backlog passes the limit; nobody else waits."""

from __future__ import annotations

import asyncio
import base64
import os
import socket

import httpx
import pytest

from deploy.stack import Stack
from tests.utils.streams import next_event, next_message, open_stream


async def _stalled_reader(stack: Stack, feed: str, origin: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket reader with a tiny receive window that never reads after the handshake."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (stack.topology.host, stack.topology.fanout))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /v1/feeds/{feed}/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


@pytest.mark.timeout(120)
async def test_a_stalled_reader_is_dropped_and_a_live_one_gets_everything(
    stack: Stack, api: httpx.AsyncClient, ws_url: str, origin: str, feed: str
) -> None:
    stalled_reader, stalled_writer = await _stalled_reader(stack, feed, origin)
    live = await open_stream(ws_url, feed, origin)
    await next_message(live)
    body = "x" * 9000
    count = 700
    received: list[str] = []

    async def read_all() -> None:
        while len(received) < count:
            received.append((await next_event(live, timeout=30))["cursor"])

    reading = asyncio.create_task(read_all())
    posted: list[str] = []
    for start in range(0, count, 35):
        responses = await asyncio.gather(
            *(api.post(f"/v1/feeds/{feed}/items", json={"headline": f"n{n}", "body": body})
              for n in range(start, start + 35))
        )
        posted += [r.json()["cursor"] for r in responses]
    await asyncio.wait_for(reading, 60)
    await live.close()
    assert sorted(received, key=lambda c: int(c.rsplit(".", 1)[1])) == sorted(
        posted, key=lambda c: int(c.rsplit(".", 1)[1]))
    assert received == sorted(received, key=lambda c: int(c.rsplit(".", 1)[1])), "events out of order"

    drained = 0
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        while True:
            chunk = await asyncio.wait_for(stalled_reader.read(65536), 10)
            if not chunk:
                raise asyncio.IncompleteReadError(b"", None)
            drained += len(chunk)
    assert drained < count * len(body), "the stalled reader was never dropped"
    stalled_writer.close()
    health = await api.get(f"http://{stack.topology.host}:{stack.topology.fanout}/healthz")
    assert health.status_code == 200

"""Small helpers to read a feed's stream in tests, every wait bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect


async def open_stream(
    ws_url: str, feed: str, origin: str, *, since: str | None = None, tags: str | None = None
) -> ClientConnection:
    query = []
    if since:
        query.append(f"since={since}")
    if tags:
        query.append(f"tags={tags}")
    url = f"{ws_url}/v1/feeds/{feed}/stream" + ("?" + "&".join(query) if query else "")
    return await asyncio.wait_for(connect(url, origin=origin), 10)  # type: ignore[arg-type]


async def next_message(ws: ClientConnection, timeout: float = 5.0, *, skip_heartbeats: bool = True) -> dict[str, Any]:
    while True:
        raw = await asyncio.wait_for(ws.recv(), timeout)
        message: dict[str, Any] = orjson.loads(raw)
        if not (skip_heartbeats and message["type"] == "heartbeat"):
            return message


async def next_event(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next item event, skipping hello and heartbeats."""
    while True:
        message = await next_message(ws, timeout)
        if message["type"].startswith("item."):
            return message

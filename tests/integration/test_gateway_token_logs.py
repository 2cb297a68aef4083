"""The gateway's error log never holds a reader token a browser sent in a URL (``?token=``).

nginx quotes the request line in its error lines. A body over ``client_max_body_size`` on a GET
is one sure way to make it write one, so each test sends that and then reads the gateway's log.
"""

from __future__ import annotations

import asyncio
import uuid

from deploy.stack import Stack

TOO_LARGE = 1024 * 1024


async def provoke_error_line(stack: Stack, path: str) -> None:
    """Send ``GET path`` announcing a body nginx refuses (413), which nginx logs at error level."""
    t = stack.topology
    reader, writer = await asyncio.wait_for(asyncio.open_connection(t.host, t.gateway), 5)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {t.host}\r\nContent-Length: {TOO_LARGE}\r\n\r\n".encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        assert b" 413 " in status_line, status_line
    finally:
        writer.close()


async def logged_after(stack: Stack, paths: list[str]) -> str:
    log = stack.log_path("gateway")
    start = log.stat().st_size
    for path in paths:
        await provoke_error_line(stack, path)
    await asyncio.sleep(0.5)
    with log.open("rb") as f:
        f.seek(start)
        return f.read().decode(errors="replace")


async def test_a_token_in_a_read_stream_or_page_url_is_not_in_the_gateway_log(stack: Stack) -> None:
    secret = f"secret{uuid.uuid4().hex}"
    feed = f"private-{uuid.uuid4().hex[:12]}"
    paths = [f"/v1/feeds/{feed}/stream?token={secret}", f"/v1/feeds/{feed}/events?token={secret}",
             f"/feeds/{feed}?token={secret}", f"/v1/feeds/{feed}/items?token={secret}",
             f"/api/history/v1/feeds/{feed}/items?token={secret}"]
    assert secret not in await logged_after(stack, paths)


async def test_the_same_error_elsewhere_is_logged(stack: Stack) -> None:
    """The control: the trigger does write the request line, where no browser puts a token."""
    marker = f"marker{uuid.uuid4().hex}"
    assert marker in await logged_after(stack, [f"/api/ingest/healthz?probe={marker}"])

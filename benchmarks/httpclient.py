"""A minimal HTTP/1.1 keep-alive client on asyncio protocols, for the publisher and HTTP load.

On a 2-core machine the client's CPU comes out of the system under test. This one writes
pre-built request bytes and parses only the status line and the body's length (``Content-Length``
or chunked), so the publisher and the Python fallback of the HTTP load (when wrk is missing)
cost little. Paths that are not measured, such as the peers' readiness probe, use httpx.

Kept instead of httpx or aiohttp on these figures: the client's own CPU per request against a
static local server, from ``python -m benchmarks.costs --only http`` (this 2-core Xeon, 2026-11-27):

===============  =====================  =====================  ==================================
client           closed loop, 4 conns   closed loop, 32 conns  timetable, 400 posts/s
===============  =====================  =====================  ==================================
this one         48 us (11,500/s)       41 us (17,600/s)       272 us, 11 % of a core
aiohttp 3.14.5   95 us (8,500/s)        84 us (8,300/s)        472 us, 19 % of a core
httpx 0.28.1     1,122 us (817/s)       2,955 us (316/s)       kept up only 216/s, 69 % of a core
===============  =====================  =====================  ==================================

httpx would cap the load below what the server does (ingest and history each answer about 1,400
requests/s in docs/benchmarks/results.json) and cannot hold the publisher's top rate. aiohttp
would not cap it, but would double the publisher's CPU, taken from the fanout while it is being
measured on a machine that is then 99 % busy, and would add itself and seven packages to the locks.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import cast

from .hist import Histogram

__all__ = ["HttpConnection", "HttpLoadResult", "build_request", "http_load"]


def build_request(
    method: str, host: str, port: int, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    """The bytes of one request; headers other than Host and Content-Length come from ``headers``."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed mid-response"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None or self.waiter.done():
            return
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buf[:head_end].lower()
        status = int(self.buf[9:12])
        body_start = head_end + 4
        marker = head.find(b"content-length:")
        if marker >= 0:
            line_end = head.find(b"\r\n", marker)
            length = int(head[marker + 15 : line_end if line_end >= 0 else len(head)])
            if len(self.buf) - body_start < length:
                return
            body = self.buf[body_start : body_start + length]
            self.buf = self.buf[body_start + length :]
        elif b"transfer-encoding: chunked" in head:
            decoded = _dechunk(self.buf, body_start)
            if decoded is None:
                return
            body, used = decoded
            self.buf = self.buf[used:]
        else:
            body, self.buf = self.buf[body_start:], b""
        self.waiter.set_result((status, body))


def _dechunk(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    """A chunked body starting at ``pos``: its bytes and where it ends, or None if incomplete."""
    parts: list[bytes] = []
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(buf[pos:line_end].split(b";")[0], 16)
        start = line_end + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n", start)
            return None if trailer_end < 0 else (b"".join(parts), trailer_end + 2)
        if len(buf) < start + size + 2:
            return None
        parts.append(buf[start : start + size])
        pos = start + size + 2


class HttpConnection:
    """One keep-alive connection; :meth:`send` writes a request and awaits its response."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._protocol: _Protocol | None = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
        return protocol

    async def send(self, request: bytes, timeout_s: float = 15.0) -> tuple[int, bytes]:
        """Status and body of the answer to ``request``; reconnects if the server closed."""
        if self._protocol is None or self._protocol.lost:
            self._protocol = await self._open()
        protocol = self._protocol
        protocol.waiter = asyncio.get_running_loop().create_future()
        assert protocol.transport is not None
        protocol.transport.write(request)
        try:
            return await asyncio.wait_for(protocol.waiter, timeout_s)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None


@dataclass
class HttpLoadResult:
    """Closed-loop HTTP load: requests per second, latency, and answers by status."""

    requests: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    hist: Histogram = field(default_factory=Histogram)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def http_load(
    host: str, port: int, request: bytes, *, connections: int, duration_s: float, max_requests: int = 2_000_000
) -> HttpLoadResult:
    """``connections`` clients each sending ``request`` back to back for ``duration_s`` seconds."""
    result = HttpLoadResult()
    deadline = time.monotonic() + duration_s

    async def client() -> None:
        conn = HttpConnection(host, port)
        try:
            while time.monotonic() < deadline and result.requests < max_requests:
                started = time.perf_counter()
                try:
                    status, _ = await conn.send(request, timeout_s=max(deadline - time.monotonic(), 0.1) + 5)
                except (OSError, TimeoutError, ConnectionError):
                    result.errors += 1
                    await asyncio.sleep(0.01)
                    continue
                result.hist.add((time.perf_counter() - started) * 1000.0)
                result.requests += 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            conn.close()

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(connections)))
    result.seconds = time.monotonic() - started
    return result

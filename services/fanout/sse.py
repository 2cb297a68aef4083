"""The SSE adapter: the fanout's Server-Sent Events port, a small HTTP/1.1 server for one kind of request.

It reads a bounded request head in bounded time (:class:`~services.fanout.streams.HeadReader`),
answers ``/healthz``, ``/readyz`` and every refusal in JSON (a private feed without a good reader token
included), and streams each accepted reader through :class:`~services.fanout.readers.Readers`
until it leaves. When the reader token of a stream expires, an ``event: reauth`` ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
from typing import Any

import orjson

from shared.errors import ApiError
from shared.metrics import FANOUT_REFUSED
from shared.reader_tokens import ReadAccess
from shared.settings import FanoutSettings
from shared.wire import reset_message

from .health import WORKER_HEADER, Health
from .hub import ResetNeeded, Subscriber
from .readers import Readers
from .sinks import SseSink
from .streams import HeadReader, RequestHead, StreamOrigins, authorize, parse_stream_request, refusal, sse_chunk

__all__ = ["HEAD_TIMEOUT_S", "SSE_HEADERS", "serve", "sse_headers"]

_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-cache, no-store\r\n"
    b"X-Accel-Buffering: no\r\n"
    b"Connection: close\r\n"
)
_SSE_START = b"\r\nretry: 1000\n\n"


def sse_headers(cors_origin: str | None = None, worker: int | None = None) -> bytes:
    """The stream's response head and its ``retry`` line; with CORS for ``cors_origin`` (an allowed Origin),
    and naming the worker process that serves it.

    ``Vary: Origin`` is always sent, so no cache in between gives one origin's answer to another.
    """
    cors = b"" if cors_origin is None else b"Access-Control-Allow-Origin: " + cors_origin.encode("latin-1") + b"\r\n"
    named = b"" if worker is None else f"{WORKER_HEADER}: {worker}\r\n".encode()
    return _SSE_HEAD + named + b"Vary: Origin\r\n" + cors + _SSE_START


SSE_HEADERS = sse_headers()
"""The head of a stream answered without CORS (no Origin, or a private feed)."""
HEAD_TIMEOUT_S = 10.0
"""A whole SSE request head must arrive within this (slowloris bound); browsers and nginx send it at once."""
LINGER_S = 2.0
LINGER_BYTES = 65536
"""After an answer to a refused request, read and drop at most this much for at most LINGER_S: closing
with unread input sends a TCP reset, which can destroy the answer before the client reads it."""


async def serve(readers: Readers, access: ReadAccess, settings: FanoutSettings, health: Health) -> asyncio.Server:
    """Open the SSE port; it serves until the returned server is closed."""
    handler = functools.partial(_connection, readers, access, StreamOrigins.from_settings(settings), settings, health)
    return await asyncio.start_server(
        handler, settings.fanout_host, settings.fanout_sse_port, limit=16384, backlog=1024,
        reuse_port=settings.fanout_workers > 1,
    )


async def _connection(
    readers: Readers, access: ReadAccess, origins: StreamOrigins, settings: FanoutSettings, health: Health,
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
) -> None:
    """Serve one connection: a stream until the reader leaves, or one JSON answer; then close it."""
    sub: Subscriber | None = None
    try:
        head = await _read_head_in_time(reader)
        if head is None:
            return
        _check_head(head, origins)
        answer = health.answer(head.target)
        if answer is not None:
            status, body, headers = answer
            await _answer(reader, writer, status, body, {**headers, WORKER_HEADER: str(health.worker)})
            return
        sub = _join(readers, access, origins, head, SseSink(writer.transport, settings.fanout_queue_limit),
                    health.worker)
        if sub is None:
            return
        while await reader.read(1024):
            pass
    except ApiError as exc:
        FANOUT_REFUSED.labels("sse", exc.code).inc()
        await _answer(reader, writer, exc.status, exc.body(), exc.headers)
    except ConnectionError:
        pass
    finally:
        if sub is not None:
            readers.leave(sub)
        writer.close()


def _check_head(head: RequestHead, origins: StreamOrigins) -> None:
    """Raise an :class:`~shared.errors.ApiError` for a method other than GET or an Origin no stream allows.

    :func:`_join` checks the Origin again once it knows whether the feed is private.
    """
    if head.method != "GET":
        raise refusal(405, "method_not_allowed", "method", "Use GET.")
    origins.check(head.origins, private=False)


def _join(
    readers: Readers, access: ReadAccess, origins: StreamOrigins, head: RequestHead, sink: SseSink, worker: int
) -> Subscriber | None:
    """Start the stream ``head`` asks for; ``None`` if its cursor needs a reset (then sent, and the stream ends).

    Raises an :class:`~shared.errors.ApiError` for a bad request, a private feed without a
    reader token that grants it, or a full fanout.
    """
    request = parse_stream_request(head.target, "events", head.headers.get("last-event-id"))
    cors_origin = origins.check(head.origins, private=request.feed in access.private)
    expires = authorize(access, request, head.authorizations)
    readers.check_room()
    try:
        return readers.join(request, sink, functools.partial(_greeting, cors_origin, worker),
                            now=asyncio.get_running_loop().time(), expires=expires)
    except ResetNeeded as exc:
        reset = reset_message(request.feed, exc.reason.value, None)
        sink.write(sse_headers(cors_origin, worker) + sse_chunk(reset, event="reset"))
        return None


def _greeting(cors_origin: str | None, worker: int, hello: bytes) -> bytes:
    """The response head, then the hello event: the first bytes of every stream."""
    return sse_headers(cors_origin, worker) + sse_chunk(hello, event="hello")


async def _read_head_in_time(reader: asyncio.StreamReader) -> RequestHead | None:
    """:func:`_read_head`, or a 408 :class:`~shared.errors.ApiError` if it takes over ``HEAD_TIMEOUT_S``."""
    try:
        return await asyncio.wait_for(_read_head(reader), HEAD_TIMEOUT_S)
    except TimeoutError:
        raise refusal(
            408, "request_timeout", "headers", f"The request head did not arrive within {HEAD_TIMEOUT_S:g} s."
        ) from None


async def _read_head(reader: asyncio.StreamReader) -> RequestHead | None:
    """The SSE request head, never reading past the head limit; ``None`` if the peer left before finishing it."""
    head_reader = HeadReader()
    while head_reader.room > 0:
        data = await reader.read(head_reader.room)
        if not data:
            return None
        head = head_reader.feed(data)
        if head is not None:
            return head
    return None


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int,
                  body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    """Send a final JSON answer, then half-close and drain (bounded) so the peer gets to read it.

    ``headers`` are our own (``WWW-Authenticate``), never a value from the request. The caller
    closes the connection afterwards.
    """
    payload = orjson.dumps(body)
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    writer.write(
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n{extra}Connection: close\r\n\r\n".encode() + payload
    )
    if writer.can_write_eof():
        writer.write_eof()
    drained = 0
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(LINGER_S):
            while drained < LINGER_BYTES and (chunk := await reader.read(LINGER_BYTES)):
                drained += len(chunk)

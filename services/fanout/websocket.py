"""The WebSocket adapter: the fanout's WebSocket port, from the handshake checks to one reader's stream.

The websockets library speaks the protocol. This module answers ``/healthz``, refuses a bad or
unwelcome request before the upgrade with a JSON body naming the field, and streams each
accepted reader through :class:`~services.fanout.readers.Readers` until it leaves.
"""

from __future__ import annotations

import asyncio
import functools
import http
from typing import Any

import orjson
from websockets.asyncio import server as ws_server
from websockets.asyncio.server import Server, ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Origin

from shared.errors import ApiError
from shared.settings import FanoutSettings
from shared.wire import reset_message

from .hub import ResetNeeded
from .readers import Readers
from .sinks import RESET_CLOSE_CODE, WsSink
from .streams import StreamRequest, check_origin, parse_stream_request, refusal, ws_text_frame

__all__ = ["serve"]


async def serve(readers: Readers, settings: FanoutSettings) -> Server:
    """Open the WebSocket port; it serves until the returned server is closed."""
    return await ws_server.serve(
        functools.partial(_stream, readers, settings.fanout_queue_limit),
        settings.fanout_host,
        settings.fanout_port,
        process_request=functools.partial(_check, readers, settings.allowed_origins),
        origins=[*(Origin(o) for o in settings.allowed_origins), None],
        compression=None,
        max_size=4096,
        max_queue=4,
        ping_interval=settings.heartbeat_s,
        ping_timeout=settings.heartbeat_s,
        server_header=None,
        backlog=4096,
    )


def _check(readers: Readers, allowed_origins: list[str], conn: ServerConnection, request: Request) -> Response | None:
    """Refuse a bad stream request before the upgrade, with a JSON body naming the field.

    The Origin and Upgrade checks are made here too, so their refusals are JSON like every
    other (websockets' own, kept as a second line, answer in plain text). It keeps nothing:
    :func:`_stream` reads the request again from ``conn``.
    """
    if request.path == "/healthz":
        return _json_response(200, {"status": "ok", "readers": readers.count})
    try:
        parse_stream_request(request.path, "stream")
        check_origin(request.headers.get_all("Origin"), allowed_origins)
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            raise refusal(426, "upgrade_required", "Upgrade", "This is a WebSocket endpoint: send Upgrade: websocket.")
        readers.check_room()
    except ApiError as exc:
        return _json_response(exc.status, exc.body())
    return None


async def _stream(readers: Readers, limit: int, conn: ServerConnection) -> None:
    """Stream to one upgraded reader until it leaves."""
    request = _accepted_stream(conn)
    if request is None:
        await conn.close(1011, "not ready")
        return
    try:
        sub = readers.join(request, WsSink(conn, limit), ws_text_frame, now=asyncio.get_running_loop().time())
    except ResetNeeded as exc:
        await conn.send(reset_message(request.feed, exc.reason.value, None).decode())
        await conn.close(RESET_CLOSE_CODE, "reset: reload history")
        return
    try:
        async for _ in conn:
            pass
    except ConnectionClosed:
        pass
    finally:
        readers.leave(sub)


def _accepted_stream(conn: ServerConnection) -> StreamRequest | None:
    """The stream a completed handshake asked for, parsed again from the request websockets keeps on ``conn``."""
    if conn.request is None:
        return None
    try:
        return parse_stream_request(conn.request.path, "stream")
    except ApiError:
        return None


def _json_response(status: int, body: dict[str, Any]) -> Response:
    payload = orjson.dumps(body)
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                       ("Connection", "close")])
    if status == 426:
        headers["Upgrade"] = "websocket"
    return Response(status, http.HTTPStatus(status).phrase, headers, payload)

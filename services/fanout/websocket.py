"""The WebSocket adapter: the fanout's WebSocket port, from the handshake checks to one reader's stream.

The websockets library speaks the protocol. This module answers ``/healthz`` and ``/readyz``
(:mod:`.health`), refuses a bad or unwelcome request before the upgrade with a JSON body naming
the field (a private feed without a good reader token included), and streams each accepted
reader through :class:`~services.fanout.readers.Readers` until it leaves. Reader tokens are kept
out of websockets' own log lines (:class:`RedactTokens`).

Close codes a reader may see besides the standard ones: 4000 (``reset``: reload history, then
resume) and 4401 with reason ``reader_token_expired`` (the reader token ran out mid-stream, after
a ``reauth`` message: get a new token, then resume from the last cursor).
"""

from __future__ import annotations

import asyncio
import functools
import http
import logging
import re
from typing import Any

import orjson
from websockets.asyncio import server as ws_server
from websockets.asyncio.server import Server, ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Origin

from shared.errors import ApiError
from shared.metrics import FANOUT_REFUSED
from shared.reader_tokens import ReadAccess
from shared.settings import FanoutSettings
from shared.wire import reauth_message, reset_message

from .health import WORKER_HEADER, Health
from .hub import ResetNeeded
from .readers import Readers
from .sinks import REAUTH_CLOSE_CODE, REAUTH_CLOSE_REASON, RESET_CLOSE_CODE, WsSink
from .streams import StreamOrigins, StreamRequest, authorize, parse_stream_request, refusal, ws_text_frame

__all__ = ["RedactTokens", "serve"]

_SECRETS = re.compile(r"(?i)(\btoken=|\bbearer\s+)[^\s&]+")


class RedactTokens(logging.Filter):
    """Keeps reader tokens out of websockets' log lines: at debug level it logs every request line
    and header, ``?token=`` and ``Authorization: Bearer`` included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRETS.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_LOGGER = logging.getLogger("websockets.server")
_LOGGER.addFilter(RedactTokens())


async def serve(readers: Readers, access: ReadAccess, settings: FanoutSettings, health: Health) -> Server:
    """Open the WebSocket port; it serves until the returned server is closed."""
    origins = StreamOrigins.from_settings(settings)
    return await ws_server.serve(
        functools.partial(_stream, readers, access, settings.fanout_queue_limit),
        settings.fanout_host,
        settings.fanout_port,
        process_request=functools.partial(_check, readers, access, health, origins),
        process_response=functools.partial(_name_worker, health.worker),
        logger=_LOGGER,
        origins=[*(Origin(o) for o in origins.every), None],
        compression=None,
        max_size=4096,
        max_queue=4,
        ping_interval=settings.heartbeat_s,
        ping_timeout=settings.heartbeat_s,
        server_header=None,
        backlog=4096,
        reuse_port=settings.fanout_workers > 1,
    )


def _name_worker(worker: int, conn: ServerConnection, request: Request, response: Response) -> None:
    """Name the worker process on every answer of this port, the 101 of a stream included."""
    response.headers[WORKER_HEADER] = str(worker)


def _check(
    readers: Readers, access: ReadAccess, health: Health, origins: StreamOrigins, conn: ServerConnection,
    request: Request,
) -> Response | None:
    """Refuse a bad stream request before the upgrade, with a JSON body naming the field.

    The Origin and Upgrade checks are made here too, so their refusals are JSON like every
    other (websockets' own, kept as a second line, answer in plain text). It keeps nothing:
    :func:`_stream` reads the request again from ``conn``.
    """
    answer = health.answer(request.path)
    if answer is not None:
        return _json_response(*answer)
    try:
        stream = parse_stream_request(request.path, "stream")
        origins.check(request.headers.get_all("Origin"), private=stream.feed in access.private)
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            raise refusal(426, "upgrade_required", "Upgrade", "This is a WebSocket endpoint: send Upgrade: websocket.")
        authorize(access, stream, request.headers.get_all("Authorization"))
        readers.check_room()
    except ApiError as exc:
        FANOUT_REFUSED.labels("ws", exc.code).inc()
        return _json_response(exc.status, exc.body(), exc.headers)
    return None


async def _stream(readers: Readers, access: ReadAccess, limit: int, conn: ServerConnection) -> None:
    """Stream to one upgraded reader until it leaves (or its reader token expires).

    The token passed :func:`_check` a moment ago; it is checked again for its expiry, so one that
    ran out in between is closed like any expired stream.
    """
    request = _accepted_stream(conn)
    if request is None or conn.request is None:
        await conn.close(1011, "not ready")
        return
    try:
        expires = authorize(access, request, conn.request.headers.get_all("Authorization"))
    except ApiError:
        await conn.send(reauth_message(request.feed, REAUTH_CLOSE_REASON).decode())
        await conn.close(REAUTH_CLOSE_CODE, REAUTH_CLOSE_REASON)
        return
    try:
        sub = readers.join(request, WsSink(conn, limit), ws_text_frame, now=asyncio.get_running_loop().time(),
                           expires=expires)
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


def _json_response(status: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> Response:
    payload = orjson.dumps(body)
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                       ("Connection", "close"), *(extra or {}).items()])
    if status == 426:
        headers["Upgrade"] = "websocket"
    return Response(status, http.HTTPStatus(status).phrase, headers, payload)

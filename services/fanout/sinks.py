"""Where a reader's bytes go: one small class per kind of stream, writing straight to the transport.

Writing a pre-built frame to the transport needs no await, so an event reaches every reader in
one pass of the event loop. A reader whose pending output passes the limit is too slow to keep
up: it is disconnected (it will resume from its cursor), so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from shared.wire import heartbeat_message

from .streams import Encoded, ws_text_frame

__all__ = ["SseSink", "WsSink"]

log = logging.getLogger("livefeed.fanout")

_WS_HEARTBEAT = ws_text_frame(heartbeat_message())
_SSE_HEARTBEAT = b": heartbeat\n\n"


class WsSink:
    __slots__ = ("conn", "limit", "transport")

    dropped = 0

    def __init__(self, conn: ServerConnection, limit: int) -> None:
        self.conn = conn
        self.transport = conn.transport
        self.limit = limit

    def deliver(self, encoded: Encoded) -> None:
        self.write(encoded.ws())

    def heartbeat(self) -> None:
        self.write(_WS_HEARTBEAT)

    def write(self, frame: bytes) -> None:
        if self.conn.protocol.state is not State.OPEN:
            return
        if self.transport.get_write_buffer_size() > self.limit:
            self.drop()
            return
        self.transport.write(frame)

    def drop(self) -> None:
        WsSink.dropped += 1
        log.warning("dropping a slow websocket reader", extra={"pending": self.transport.get_write_buffer_size()})
        self.transport.abort()


class SseSink:
    __slots__ = ("limit", "transport")

    dropped = 0

    def __init__(self, transport: asyncio.WriteTransport, limit: int) -> None:
        self.transport = transport
        self.limit = limit

    def deliver(self, encoded: Encoded) -> None:
        self.write(encoded.sse())

    def heartbeat(self) -> None:
        self.write(_SSE_HEARTBEAT)

    def write(self, chunk: bytes) -> None:
        if self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() > self.limit:
            SseSink.dropped += 1
            log.warning("dropping a slow SSE reader")
            self.transport.abort()
            return
        self.transport.write(chunk)

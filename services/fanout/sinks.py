"""Where a reader's bytes go: one small class per kind of stream, writing straight to the transport.

Writing a pre-built frame to the transport needs no await, so an event reaches every reader in
one pass of the event loop. A reader whose pending output passes the limit is too slow to keep
up: it is disconnected (it will resume from its cursor), so memory stays bounded.

Each write is a send() syscall, and on loopback that syscall is most of the fanout's CPU, so
:func:`deliver_coalesced` writes the events of one Kafka batch to each reader in a single
write (the frames joined once per distinct sequence, shared by every reader of a feed and
filter). Under a burst, or whenever the fanout falls behind, batches grow and the cost per
event falls; a lone event still goes out at once, in one pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from shared.wire import heartbeat_message

from .streams import Encoded, sse_chunk, ws_text_frame

__all__ = ["SseSink", "WsSink", "deliver_coalesced"]

log = logging.getLogger("livefeed.fanout")

RESET_CLOSE_CODE = 4000
"""The WebSocket close code that tells a reader to reload history before resuming."""

_closing: set[asyncio.Task[None]] = set()

_WS_HEARTBEAT = ws_text_frame(heartbeat_message())
_SSE_HEARTBEAT = b": heartbeat\n\n"


class WsSink:
    __slots__ = ("conn", "limit", "transport")

    KIND = "ws"

    dropped = 0

    def __init__(self, conn: ServerConnection, limit: int) -> None:
        self.conn = conn
        self.transport = conn.transport
        self.limit = limit

    def deliver(self, encoded: Encoded) -> None:
        self.write(encoded.ws())

    @staticmethod
    def encode(messages: Sequence[Encoded]) -> bytes:
        """Several events as one buffer of consecutive frames."""
        return b"".join([m.ws() for m in messages])

    def heartbeat(self) -> None:
        self.write(_WS_HEARTBEAT)

    def write(self, frame: bytes) -> None:
        if self.conn.protocol.state is not State.OPEN:
            return
        if self.transport.get_write_buffer_size() > self.limit:
            self.drop()
            return
        self.transport.write(frame)

    def reset(self, message: bytes) -> None:
        """Tell the reader to reload history, then close with the reset code."""
        self.write(ws_text_frame(message))
        task = asyncio.get_running_loop().create_task(self.conn.close(RESET_CLOSE_CODE, "reset: reload history"))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    def drop(self) -> None:
        WsSink.dropped += 1
        log.warning("dropping a slow websocket reader", extra={"pending": self.transport.get_write_buffer_size()})
        self.transport.abort()


class SseSink:
    __slots__ = ("limit", "transport")

    KIND = "sse"

    dropped = 0

    def __init__(self, transport: asyncio.WriteTransport, limit: int) -> None:
        self.transport = transport
        self.limit = limit

    def deliver(self, encoded: Encoded) -> None:
        self.write(encoded.sse())

    @staticmethod
    def encode(messages: Sequence[Encoded]) -> bytes:
        """Several events as one buffer of consecutive SSE chunks."""
        return b"".join([m.sse() for m in messages])

    def heartbeat(self) -> None:
        self.write(_SSE_HEARTBEAT)

    def reset(self, message: bytes) -> None:
        """Tell the reader to reload history, then end the stream."""
        self.write(sse_chunk(message, event="reset"))
        self.transport.close()

    def write(self, chunk: bytes) -> None:
        if self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() > self.limit:
            SseSink.dropped += 1
            log.warning("dropping a slow SSE reader")
            self.transport.abort()
            return
        self.transport.write(chunk)


def deliver_coalesced(deliveries: Sequence[tuple[Encoded, Sequence[Any]]]) -> None:
    """Write ``(message, subscribers)`` pairs, in order, with one write per reader.

    Each reader gets its events in the order given (the hub's Kafka order), so ordering and
    resume are as with one write per event; the slow-reader limit is checked per write as before.
    Readers with the same sequence of events (a feed and filter) share one joined buffer.
    """
    if len(deliveries) == 1:
        message, recipients = deliveries[0]
        for sub in recipients:
            sub.sink.deliver(message)
        return
    per_sink: dict[WsSink | SseSink, list[Encoded]] = {}
    for message, recipients in deliveries:
        for sub in recipients:
            queued = per_sink.get(sub.sink)
            if queued is None:
                per_sink[sub.sink] = [message]
            else:
                queued.append(message)
    joined: dict[tuple[str, tuple[Encoded, ...]], bytes] = {}
    for sink, messages in per_sink.items():
        if len(messages) == 1:
            sink.deliver(messages[0])
            continue
        key = (sink.KIND, tuple(messages))
        data = joined.get(key)
        if data is None:
            data = joined[key] = sink.encode(messages)
        sink.write(data)

"""Where a reader's bytes go: one sink per connection, writing pre-built frames straight to its transport.

Writing a pre-built frame to the transport needs no await, so an event reaches every reader in
one pass of the event loop. A reader whose pending output passes the limit is too slow to keep
up: it is disconnected (it will resume from its cursor), so memory stays bounded. That policy
lives once, in :class:`Sink`; :class:`WsSink` and :class:`SseSink` only say how they frame.

Each write is a send() syscall, and on loopback that syscall is most of the fanout's CPU, so
:func:`deliver_coalesced` writes the events of one Kafka batch to each reader in a single
write (the frames joined once per distinct sequence, shared by every reader of a feed and
filter). Under a burst, or whenever the fanout falls behind, batches grow and the cost per
event falls; a lone event still goes out at once, in one pass.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from shared.metrics import FANOUT_DROPS
from shared.wire import heartbeat_message

from .streams import Encoded, sse_chunk, ws_text_frame

__all__ = ["REAUTH_CLOSE_CODE", "REAUTH_CLOSE_REASON", "RESET_CLOSE_CODE", "Sink", "SseSink", "WsSink",
           "deliver_coalesced"]

log = logging.getLogger("livefeed.fanout")

RESET_CLOSE_CODE = 4000
"""The WebSocket close code that tells a reader to reload history before resuming."""
REAUTH_CLOSE_CODE = 4401
"""The WebSocket close code that tells a reader its reader token expired: get a new one, then resume
from its cursor (4000 + the HTTP status a new connection with that token would get)."""
REAUTH_CLOSE_REASON = "reader_token_expired"

_closing: set[asyncio.Task[None]] = set()
_SLOW_DROPS = FANOUT_DROPS.labels("slow_reader")
_RESET_DROPS = FANOUT_DROPS.labels("reset")
_REAUTH_DROPS = FANOUT_DROPS.labels("reauth")


class Sink(ABC):
    """One reader's connection, and the slow-reader policy every kind of stream shares.

    Every write goes through :meth:`write`: nothing is written to a connection that is no longer
    open, and a reader with more than ``limit`` bytes pending is aborted (one more in its class's
    ``dropped`` and in ``livefeed_fanout_drops_total``; the log line is at debug, as every
    per-connection line) instead of being written to.
    """

    __slots__ = ("limit", "transport")

    KIND: ClassVar[str]
    """The kind of stream, so that readers of one kind share a joined buffer."""
    HEARTBEAT: ClassVar[bytes]
    """What keeps an idle stream of this kind alive."""
    dropped: ClassVar[int] = 0
    """Readers of this kind dropped for being too slow, since the process started."""

    def __init__(self, transport: asyncio.WriteTransport, limit: int) -> None:
        self.transport = transport
        self.limit = limit

    def write(self, data: bytes) -> None:
        """Write ``data`` now, or drop the reader if its pending output is over the limit."""
        if not self.is_open():
            return
        pending = self.transport.get_write_buffer_size()
        if pending > self.limit:
            type(self).dropped += 1
            _SLOW_DROPS.inc()
            log.debug("dropping a slow reader", extra={"stream": self.KIND, "pending": pending})
            self.transport.abort()
            return
        self.transport.write(data)

    def deliver(self, encoded: Encoded) -> None:
        self.write(self.frame(encoded))

    def encode(self, messages: Sequence[Encoded]) -> bytes:
        """Several events as one buffer, for one write."""
        return b"".join([self.frame(m) for m in messages])

    def heartbeat(self) -> None:
        self.write(self.HEARTBEAT)

    def reset(self, message: bytes) -> None:
        """Tell the reader to reload history (``message``), then end its stream."""
        _RESET_DROPS.inc()
        self.write(self.control_frame(message, "reset"))
        self.close(RESET_CLOSE_CODE, "reset: reload history")

    def reauth(self, message: bytes) -> None:
        """Tell the reader its token expired (``message``, a ``reauth``), then end its stream."""
        _REAUTH_DROPS.inc()
        self.write(self.control_frame(message, "reauth"))
        self.close(REAUTH_CLOSE_CODE, REAUTH_CLOSE_REASON)

    @abstractmethod
    def is_open(self) -> bool:
        """Whether the stream still takes events."""

    @abstractmethod
    def frame(self, encoded: Encoded) -> bytes:
        """One event as this kind of stream writes it."""

    @abstractmethod
    def control_frame(self, message: bytes, event: str) -> bytes:
        """A control message (``reset``, ``reauth``) as this kind of stream writes it."""

    @abstractmethod
    def close(self, code: int, reason: str) -> None:
        """End the stream after a control message; a WebSocket says why with ``code`` and ``reason``."""


class WsSink(Sink):
    """A WebSocket reader: each event is one unmasked text frame."""

    __slots__ = ("conn",)

    KIND = "ws"
    HEARTBEAT = ws_text_frame(heartbeat_message())

    def __init__(self, conn: ServerConnection, limit: int) -> None:
        super().__init__(conn.transport, limit)
        self.conn = conn

    def is_open(self) -> bool:
        return self.conn.protocol.state is State.OPEN

    def frame(self, encoded: Encoded) -> bytes:
        return encoded.ws()

    def control_frame(self, message: bytes, event: str) -> bytes:
        return ws_text_frame(message)

    def close(self, code: int, reason: str) -> None:
        """Close with ``code``, in the background: the closing handshake awaits."""
        task = asyncio.get_running_loop().create_task(self.conn.close(code, reason))
        _closing.add(task)
        task.add_done_callback(_closing.discard)


class SseSink(Sink):
    """A Server-Sent Events reader: each event is an SSE chunk whose id is its cursor."""

    __slots__ = ()

    KIND = "sse"
    HEARTBEAT = b": heartbeat\n\n"

    def is_open(self) -> bool:
        return not self.transport.is_closing()

    def frame(self, encoded: Encoded) -> bytes:
        return encoded.sse()

    def control_frame(self, message: bytes, event: str) -> bytes:
        return sse_chunk(message, event=event)

    def close(self, code: int, reason: str) -> None:
        """End the response: SSE has no close code, the control message before it says why."""
        self.transport.close()


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
    per_sink: dict[Sink, list[Encoded]] = {}
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

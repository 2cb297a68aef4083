"""The readers connected now: their hub subscriptions and their sinks, kept in step for both adapters.

The WebSocket and SSE adapters admit, join and drop readers here the same way; the app's tick
sends heartbeats to every sink. Nothing here awaits: a join writes the greeting and the replay
in the same step as the subscription, so no live event can come between them.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.wire import hello_message

from .hub import Hub, Subscriber
from .sinks import Sink
from .streams import StreamRequest, refusal

__all__ = ["Readers"]


class Readers:
    """The hub's readers and the sinks that write to them, up to ``max_readers`` at once."""

    def __init__(self, hub: Hub, max_readers: int) -> None:
        self.hub = hub
        self.max_readers = max_readers
        self._sinks: set[Sink] = set()

    @property
    def count(self) -> int:
        return self.hub.subscribers

    def check_room(self) -> None:
        """Raise a 503 :class:`~shared.errors.ApiError` if this fanout already has all the readers it takes."""
        if self.hub.subscribers >= self.max_readers:
            raise refusal(503, "too_many_readers", "connection", "This fanout is full; retry shortly.")

    def join(self, request: StreamRequest, sink: Sink, greeting: Callable[[bytes], bytes], *, now: float) -> Subscriber:
        """Subscribe ``sink`` to the stream ``request`` asks for; write the hello, then what it missed.

        ``greeting`` frames the hello message (and whatever must precede it on the wire). Raises
        :class:`~services.fanout.hub.ResetNeeded`, keeping nothing, when the cursor cannot be
        continued. The caller must call :meth:`leave` with the result once the reader is gone.
        """
        sub, replay, position = self.hub.subscribe(request.feed, request.since, request.tags, sink, now=now)
        self._sinks.add(sink)
        sink.write(greeting(hello_message(request.feed, position)))
        for encoded in replay:
            sink.deliver(encoded)
        return sub

    def leave(self, sub: Subscriber) -> None:
        """Forget a reader; harmless if it is already gone (the hub may have dropped it as overdue)."""
        self._sinks.discard(sub.sink)
        self.hub.unsubscribe(sub)

    def heartbeat(self) -> None:
        """Write a heartbeat to every reader, which also drops any that is too far behind."""
        for sink in list(self._sinks):
            sink.heartbeat()


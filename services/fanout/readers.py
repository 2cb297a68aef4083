"""The readers connected now: their hub subscriptions and their sinks, kept in step for both adapters.

The WebSocket and SSE adapters admit, join and drop readers here the same way; the app's tick
sends heartbeats to every sink and ends the streams whose reader token expired
(:meth:`Readers.expired`). Nothing here awaits: a join writes the greeting and the replay
in the same step as the subscription, so no live event can come between them.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.metrics import FANOUT_READERS
from shared.wire import hello_message

from .expiry import Expiries
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
        self._expiries: Expiries[Subscriber] = Expiries()

    @property
    def count(self) -> int:
        return self.hub.subscribers

    def check_room(self) -> None:
        """Raise a 503 :class:`~shared.errors.ApiError` if this fanout already has all the readers it takes."""
        if self.hub.subscribers >= self.max_readers:
            raise refusal(503, "too_many_readers", "connection", "This fanout is full; retry shortly.")

    def join(
        self, request: StreamRequest, sink: Sink, greeting: Callable[[bytes], bytes], *, now: float,
        expires: float | None = None,
    ) -> Subscriber:
        """Subscribe ``sink`` to the stream ``request`` asks for; write the hello, then what it missed.

        ``greeting`` frames the hello message (and whatever must precede it on the wire).
        ``expires`` is when the reader token the stream was opened with runs out (Unix seconds;
        None for a public feed): from then on :meth:`expired` returns the reader. Raises
        :class:`~services.fanout.hub.ResetNeeded`, keeping nothing, when the cursor cannot be
        continued. The caller must call :meth:`leave` with the result once the reader is gone.
        """
        sub, replay, position = self.hub.subscribe(request.feed, request.since, request.tags, sink, now=now)
        self._sinks.add(sink)
        FANOUT_READERS.labels(sink.KIND).inc()
        if expires is not None:
            self._expiries.add(sub, expires)
        sink.write(greeting(hello_message(request.feed, position)))
        for encoded in replay:
            sink.deliver(encoded)
        return sub

    def leave(self, sub: Subscriber) -> None:
        """Forget a reader; harmless if it is already gone (the hub may have dropped it as overdue)."""
        self._forget(sub.sink)
        self._expiries.discard(sub)
        self.hub.unsubscribe(sub)

    def expired(self, now: float) -> list[Subscriber]:
        """Forget and return the readers whose token expired by ``now`` (Unix seconds), soonest first.

        The caller must tell each one to re-authenticate and end its stream.
        """
        due = self._expiries.due(now)
        for sub in due:
            self._forget(sub.sink)
            self.hub.unsubscribe(sub)
        return due

    def _forget(self, sink: Sink) -> None:
        """Drop ``sink`` from the readers (and from the connected-readers gauge) unless already gone."""
        if sink in self._sinks:
            self._sinks.remove(sink)
            FANOUT_READERS.labels(sink.KIND).dec()

    def heartbeat(self) -> None:
        """Write a heartbeat to every reader, which also drops any that is too far behind."""
        for sink in list(self._sinks):
            sink.heartbeat()


"""The fanout's core, without I/O: which reader gets which event, and where a resume starts.

Events go in through :meth:`Hub.publish` in Kafka order; readers come and go through
:meth:`Hub.subscribe` and :meth:`Hub.unsubscribe`. The hub keeps the recent events of each
feed so that a reader reconnecting with a cursor gets exactly what it missed. Subscribing
computes the replay and registers the reader in one synchronous step, so no event can fall
between the replay and the live stream, and none can be sent twice.

The adapters (``websocket.py``, ``sse.py``) write what the hub returns; nothing here awaits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.cursor import Cursor
from shared.wire import Event

from .streams import Encoded

__all__ = ["Delivery", "Hub", "ResetNeeded", "ResetReason", "Subscriber"]


class ResetReason(StrEnum):
    cursor_too_old = "cursor_too_old"
    epoch_changed = "epoch_changed"
    wrong_partition = "wrong_partition"


class ResetNeeded(Exception):
    """The reader's cursor cannot be continued: it must reload history and resume from there."""

    def __init__(self, reason: ResetReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class Subscriber:
    """One reader of one feed. ``sink`` is the adapter's handle (a connection); the hub never uses it."""

    __slots__ = ("feed", "floor", "sink", "tags")

    def __init__(self, feed: str, tags: frozenset[str] | None, sink: Any, floor: int) -> None:
        self.feed = feed
        self.tags = tags
        self.sink = sink
        self.floor = floor


@dataclass(slots=True)
class Delivery:
    """One event to write, encoded once, and the readers to write it to."""

    message: Encoded
    recipients: list[Subscriber]


@dataclass(slots=True)
class _FeedLog:
    partition: int
    complete_from: int
    entries: deque[tuple[int, frozenset[str], Encoded]] = field(default_factory=deque)
    groups: dict[frozenset[str] | None, set[Subscriber]] = field(default_factory=dict)
    waiting: list[Subscriber] = field(default_factory=list)
    last: int = -1


class Hub:
    """Routes events to readers by feed and tag filter, and replays from a cursor."""

    def __init__(self, epoch: str, *, buffer: int, partition_of: Callable[[str], int]) -> None:
        """``partition_of`` maps a feed to its partition, as the producer's partitioner does."""
        self.epoch = epoch
        self.buffer = buffer
        self.partition_of = partition_of
        self.subscribers = 0
        self._feeds: dict[str, _FeedLog] = {}
        self._start: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._pending: dict[str, list[Subscriber]] = {}

    def start_partition(self, partition: int, offset: int) -> None:
        """Declare that events of ``partition`` are published from ``offset`` on, without gaps."""
        self._start[partition] = offset
        self._last[partition] = offset - 1

    def publish(self, partition: int, offset: int, event: Event) -> Delivery:
        """Record ``event`` (at ``partition``/``offset``) and return whom to send it to."""
        log = self._feeds.get(event.feed)
        if log is None:
            log = self._feeds[event.feed] = _FeedLog(partition, self._start.get(partition, offset))
            for sub in self._pending.pop(event.feed, ()):
                self._wait_or_join(log, sub)
        cursor = Cursor(self.epoch, partition, offset)
        message = Encoded(event.message(cursor), cursor)
        tags = event.tags
        log.entries.append((offset, tags, message))
        log.last = offset
        self._last[partition] = offset
        if len(log.entries) > self.buffer:
            evicted, _, _ = log.entries.popleft()
            log.complete_from = evicted + 1
        recipients: list[Subscriber] = []
        for wanted, members in log.groups.items():
            if members and (wanted is None or not wanted.isdisjoint(tags)):
                recipients.extend(members)
        if log.waiting:
            self._release(log, offset, tags, recipients)
        return Delivery(message, recipients)

    def subscribe(
        self, feed: str, since: Cursor | None, tags: frozenset[str] | None, sink: Any
    ) -> tuple[Subscriber, list[Encoded], Cursor | None]:
        """Register a reader; return it, the messages it missed since ``since``, and its position.

        Raises :class:`ResetNeeded` when the events after ``since`` are no longer all here.
        The reader must write the returned messages before any later :class:`Delivery`.
        """
        log = self._feeds.get(feed)
        if since is None:
            position = self._position(feed, log)
            sub = Subscriber(feed, tags, sink, floor=-1 if position is None else position.offset)
            self._join(feed, log, sub)
            return sub, [], position
        if since.epoch != self.epoch:
            raise ResetNeeded(ResetReason.epoch_changed)
        if log is None:
            start = self._start.get(since.partition)
            if start is None or since.partition != self.partition_of(feed):
                raise ResetNeeded(ResetReason.wrong_partition)
            if since.offset < start - 1:
                raise ResetNeeded(ResetReason.cursor_too_old)
            replay: list[Encoded] = []
        else:
            if since.partition != log.partition:
                raise ResetNeeded(ResetReason.wrong_partition)
            if since.offset < log.complete_from - 1:
                raise ResetNeeded(ResetReason.cursor_too_old)
            replay = [
                message
                for offset, event_tags, message in log.entries
                if offset > since.offset and (tags is None or not tags.isdisjoint(event_tags))
            ]
        sub = Subscriber(feed, tags, sink, floor=since.offset)
        self._join(feed, log, sub)
        return sub, replay, since

    def unsubscribe(self, sub: Subscriber) -> None:
        log = self._feeds.get(sub.feed)
        if log is not None:
            group = log.groups.get(sub.tags)
            if group is not None and sub in group:
                group.discard(sub)
                self.subscribers -= 1
                return
            if sub in log.waiting:
                log.waiting.remove(sub)
                self.subscribers -= 1
                return
        pending = self._pending.get(sub.feed)
        if pending is not None and sub in pending:
            pending.remove(sub)
            self.subscribers -= 1
            if not pending:
                del self._pending[sub.feed]

    def feeds(self) -> int:
        return len(self._feeds)

    def _position(self, feed: str, log: _FeedLog | None) -> Cursor | None:
        """Where a reader starting now stands: after the last event this process has seen.

        For a feed with no event yet that is the last offset seen in its partition, so even
        the first reader of a new feed gets a cursor it can resume from.
        """
        if log is not None:
            return Cursor(self.epoch, log.partition, log.last)
        partition = self.partition_of(feed)
        last = self._last.get(partition)
        return None if last is None else Cursor(self.epoch, partition, last)

    def _join(self, feed: str, log: _FeedLog | None, sub: Subscriber) -> None:
        self.subscribers += 1
        if log is None:
            self._pending.setdefault(feed, []).append(sub)
        else:
            self._wait_or_join(log, sub)

    @staticmethod
    def _wait_or_join(log: _FeedLog, sub: Subscriber) -> None:
        """A reader whose cursor is ahead of this process waits until the hub catches up."""
        if sub.floor > log.last:
            log.waiting.append(sub)
        else:
            log.groups.setdefault(sub.tags, set()).add(sub)

    @staticmethod
    def _release(log: _FeedLog, offset: int, tags: frozenset[str], recipients: list[Subscriber]) -> None:
        """Move waiting readers the feed has now caught up with into the live groups.

        A reader whose cursor is before ``offset`` also gets this event; one at ``offset`` has it.
        """
        still: list[Subscriber] = []
        for sub in log.waiting:
            if sub.floor > offset:
                still.append(sub)
                continue
            log.groups.setdefault(sub.tags, set()).add(sub)
            if sub.floor < offset and (sub.tags is None or not sub.tags.isdisjoint(tags)):
                recipients.append(sub)
        log.waiting = still

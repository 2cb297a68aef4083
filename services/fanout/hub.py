"""The fanout's core, without I/O: which reader gets which event, and where a resume starts.

Events go in through :meth:`Hub.publish` in Kafka order; readers come and go through
:meth:`Hub.subscribe` and :meth:`Hub.unsubscribe`. The hub keeps the recent events of each
feed so that a reader reconnecting with a cursor gets exactly what it missed. Subscribing
computes the replay and registers the reader in one synchronous step, so no event can fall
between the replay and the live stream, and none can be sent twice.

Two rules keep what readers get equal to Kafka's final state without repeating it:
a retraction scrubs the item's earlier events from the buffer (a resume never sends retracted
text again), and an event whose version the feed has already seen (a retried publish) reaches
no reader.

``pump.py`` feeds it from Kafka; the adapters (``websocket.py`` and ``sse.py``, through
``readers.py`` and ``sinks.py``) write what it returns. Nothing here awaits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.cursor import Cursor
from shared.wire import Event, EventType

from .streams import Encoded

__all__ = ["Delivery", "Hub", "ResetNeeded", "ResetReason", "Subscriber"]


class ResetReason(StrEnum):
    cursor_too_old = "cursor_too_old"
    cursor_ahead = "cursor_ahead"
    epoch_changed = "epoch_changed"
    wrong_partition = "wrong_partition"


class ResetNeeded(Exception):
    """The reader's cursor cannot be continued: it must reload history and resume from there."""

    def __init__(self, reason: ResetReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class Subscriber:
    """One reader of one feed. ``sink`` is the adapter's handle (a connection); the hub never uses it.

    ``floor`` is the offset the reader has everything up to (its cursor): it is sent only
    events after it. ``since`` is when it subscribed, for :meth:`Hub.overdue`.
    """

    __slots__ = ("feed", "floor", "since", "sink", "tags")

    def __init__(self, feed: str, tags: frozenset[str] | None, sink: Any, floor: int, since: float = 0.0) -> None:
        self.feed = feed
        self.tags = tags
        self.sink = sink
        self.floor = floor
        self.since = since


@dataclass(slots=True)
class Delivery:
    """One event to write, encoded once, and the readers to write it to."""

    message: Encoded
    recipients: list[Subscriber]


@dataclass(slots=True)
class _Entry:
    offset: int
    tags: frozenset[str] | None
    """What a tag filter matches on; None (a retraction) matches every filter."""
    item_id: str
    message: Encoded


@dataclass(slots=True)
class _FeedLog:
    partition: int
    complete_from: int
    entries: deque[_Entry] = field(default_factory=deque)
    groups: dict[frozenset[str] | None, set[Subscriber]] = field(default_factory=dict)
    waiting: list[Subscriber] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    ops: dict[str, tuple[str, float]] = field(default_factory=dict)
    last: int = -1


class Hub:
    """Routes events to readers by feed and tag filter, and replays from a cursor."""

    def __init__(
        self, epoch: str, *, buffer: int, partition_of: Callable[[str], int], op_ttl_s: float = 86_400
    ) -> None:
        """``partition_of`` maps a feed to its partition, as the producer's partitioner does.

        ``op_ttl_s`` is how long an Idempotency-Key is remembered: within it, a second publish
        with the same :attr:`Event.op <shared.wire.Event.op>` is a repeat.
        """
        self.epoch = epoch
        self.buffer = buffer
        self.partition_of = partition_of
        self.op_ttl_ms = op_ttl_s * 1000
        self.subscribers = 0
        self.versions_kept = 4 * buffer
        self._feeds: dict[str, _FeedLog] = {}
        self._start: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._end: dict[int, int] = {}
        self._pending: dict[str, list[Subscriber]] = {}

    def start_partition(self, partition: int, offset: int) -> None:
        """Declare that events of ``partition`` are published from ``offset`` on, without gaps."""
        self._start[partition] = offset
        self._last[partition] = offset - 1

    def note_end(self, partition: int, end: int) -> None:
        """Record Kafka's end offset of ``partition`` (the next offset it will write), for :meth:`overdue`."""
        self._end[partition] = end

    def publish(self, partition: int, offset: int, event: Event) -> Delivery:
        """Record ``event`` (at ``partition``/``offset``) and return whom to send it to.

        An event with a version the feed has seen already for its item is a repeat (a retried
        publish): it moves the position on but is neither kept nor sent.
        """
        log = self._feeds.get(event.feed)
        if log is None:
            log = self._feeds[event.feed] = _FeedLog(partition, self._start.get(partition, offset))
            for sub in self._pending.pop(event.feed, ()):
                self._wait_or_join(log, sub)
        cursor = Cursor(self.epoch, partition, offset)
        message = Encoded(event.message(cursor), cursor)
        item_id = event.item_id
        log.last = offset
        self._last[partition] = offset
        recipients: list[Subscriber] = []
        if not self._newer(log, item_id, event.version) or self._repeated(log, event):
            if log.waiting:
                self._release(log, offset, frozenset(), [])
            return Delivery(message, recipients)
        tags: frozenset[str] | None = event.tags
        if event.type is EventType.retracted:
            log.entries = deque(entry for entry in log.entries if entry.item_id != item_id)
            tags = None  # its scrubbed events may have been a filter's only news of the item
        log.entries.append(_Entry(offset, tags, item_id, message))
        if len(log.entries) > self.buffer:
            log.complete_from = log.entries.popleft().offset + 1
        for wanted, members in log.groups.items():
            if members and _matches(wanted, tags):
                recipients.extend(members)
        if log.waiting:
            self._release(log, offset, tags, recipients)
        return Delivery(message, recipients)

    def subscribe(
        self, feed: str, since: Cursor | None, tags: frozenset[str] | None, sink: Any, *, now: float = 0.0
    ) -> tuple[Subscriber, list[Encoded], Cursor | None]:
        """Register a reader; return it, the messages it missed since ``since``, and its position.

        Raises :class:`ResetNeeded` when the events after ``since`` are no longer all here.
        The reader must write the returned messages before any later :class:`Delivery`.
        ``now`` (any monotonic clock) dates the subscription for :meth:`overdue`.
        """
        log = self._feeds.get(feed)
        if since is None:
            position = self._position(feed, log)
            sub = Subscriber(feed, tags, sink, floor=-1 if position is None else position.offset, since=now)
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
                entry.message
                for entry in log.entries
                if entry.offset > since.offset and _matches(tags, entry.tags)
            ]
        sub = Subscriber(feed, tags, sink, floor=since.offset, since=now)
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

    def overdue(self, *, now: float, grace: float) -> list[Subscriber]:
        """Unsubscribe and return the readers whose cursor is still ahead of Kafka after ``grace``.

        Such a cursor names an offset Kafka has not written (a made-up cursor, or one from a
        topic that was recreated with the same id): the reader would wait in silence forever.
        The caller must send each one a ``reset`` (:attr:`ResetReason.cursor_ahead`) and close it.
        A reader whose cursor Kafka has reached is only waiting for this process to catch up.
        """
        late: list[Subscriber] = []
        waiting = [sub for log in self._feeds.values() for sub in log.waiting]
        waiting += [sub for subs in self._pending.values() for sub in subs]
        for sub in waiting:
            end = self._end.get(self.partition_of(sub.feed))
            if end is not None and sub.floor >= end and now - sub.since >= grace:
                self.unsubscribe(sub)
                late.append(sub)
        return late

    def feeds(self) -> int:
        return len(self._feeds)

    def _repeated(self, log: _FeedLog, event: Event) -> bool:
        """Whether ``event`` repeats an earlier keyed publish (same ``op``, another item id)."""
        if event.op is None:
            return False
        first = log.ops.get(event.op)
        if first is not None and first[0] != event.item_id and event.accepted_ms - first[1] < self.op_ttl_ms:
            return True
        log.ops[event.op] = (event.item_id, event.accepted_ms)
        if len(log.ops) > self.versions_kept:
            del log.ops[next(iter(log.ops))]
        return False

    def _newer(self, log: _FeedLog, item_id: str, version: int) -> bool:
        """Whether ``version`` is new for the item, remembering it (the most recent items only)."""
        seen = log.versions.pop(item_id, None)
        if seen is not None and version <= seen:
            log.versions[item_id] = seen
            return False
        log.versions[item_id] = version
        if len(log.versions) > self.versions_kept:
            del log.versions[next(iter(log.versions))]
        return True

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

    def _wait_or_join(self, log: _FeedLog, sub: Subscriber) -> None:
        """A reader whose cursor is ahead of this process waits until the hub catches up.

        The hub has caught up once it has seen the cursor's offset in the feed's partition:
        a quiet feed's cursor is usually past the feed's own last event.
        """
        if sub.floor > max(log.last, self._last.get(log.partition, -1)):
            log.waiting.append(sub)
        else:
            log.groups.setdefault(sub.tags, set()).add(sub)

    @staticmethod
    def _release(log: _FeedLog, offset: int, tags: frozenset[str] | None, recipients: list[Subscriber]) -> None:
        """Move waiting readers the feed has now caught up with into the live groups.

        A reader whose cursor is before ``offset`` also gets this event; one at ``offset`` has it.
        """
        still: list[Subscriber] = []
        for sub in log.waiting:
            if sub.floor > offset:
                still.append(sub)
                continue
            log.groups.setdefault(sub.tags, set()).add(sub)
            if sub.floor < offset and _matches(sub.tags, tags):
                recipients.append(sub)
        log.waiting = still


def _matches(wanted: frozenset[str] | None, tags: frozenset[str] | None) -> bool:
    """Whether a reader filtering on ``wanted`` (None: no filter) gets an event matching ``tags``."""
    return wanted is None or tags is None or not wanted.isdisjoint(tags)

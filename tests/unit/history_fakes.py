"""Recording fakes of history's own Redis interfaces (``ItemStore``'s consumer calls and ``Rebuilds``) and
of the aiokafka calls the consumer makes, for the consumer's unit tests.

:class:`SharedRedis` is the one Redis several history instances share; :class:`Store` and
:class:`FakeRebuilds` follow the rules of the store's and ``rebuild.py``'s Lua scripts on it (the
generation and watermark checks, the fenced lock), so two consumers can be run against each other.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, cast

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from services.history.consumer import HistoryConsumer
from services.history.rebuild import Ledger, Rebuilds
from shared.cursor import Cursor
from shared.settings import HistorySettings
from shared.store import ItemStore
from shared.wire import Event, EventType

EPOCH = "f733f5e9"
TOPIC = "livefeed.events"
P0, P1, P2 = (TopicPartition(TOPIC, n) for n in range(3))
_tokens = itertools.count(1)


@dataclass
class Record:
    offset: int
    value: bytes


def record(offset: int, item_id: str = "01m8cng7dqz8mzsg2ge1ydk21g") -> Record:
    item = {"id": item_id, "feed": "world", "version": 1, "headline": f"h{offset}"}
    return Record(offset, Event(EventType.published, "world", item, 1.0).serialize())


@dataclass
class SharedRedis:
    """What the scripts read and write: epoch, generation, watermarks, the rebuild hash, the lock, and every
    (partition, offset) that changed the store, in order."""

    epoch: str | None = EPOCH
    generation: str | None = "g0"
    watermarks: dict[int, int] = field(default_factory=dict)
    rebuilding: dict[int, int] = field(default_factory=dict)
    lock: str | None = None
    stored: list[tuple[int, int]] = field(default_factory=list)
    wipes: int = 0

    def flush(self) -> None:
        """Redis lost everything (FLUSHALL, restarted without its file)."""
        self.epoch = self.generation = self.lock = None
        self.watermarks.clear()
        self.rebuilding.clear()
        self.stored.clear()


class Store:
    """The consumer's calls on ItemStore, on a :class:`SharedRedis`; ``answer`` forces apply's result."""

    def __init__(self, redis: SharedRedis | None = None, answer: int | None = None) -> None:
        self.redis = redis or SharedRedis()
        self.answer = answer
        self.applied: list[tuple[str, Cursor]] = []

    async def watermark(self, partition: int) -> int | None:
        return self.redis.watermarks.get(partition)

    async def apply(self, event: Event, cursor: Cursor, *, watermark: bool = False, generation: str = "") -> int:
        assert watermark
        r = self.redis
        if self.answer is not None:
            result = self.answer
        elif r.epoch is None or (generation and r.generation != generation):
            result = -1
        elif cursor.partition in r.watermarks and r.watermarks[cursor.partition] >= cursor.offset:
            result = 0
        else:
            r.watermarks[cursor.partition] = cursor.offset
            r.stored.append((cursor.partition, cursor.offset))
            result = 1
        if result == 1:
            self.applied.append((str(event.item["headline"]), cursor))
        return result


class FakeRebuilds:
    """``Rebuilds`` on a :class:`SharedRedis`, fenced like its scripts; ``calls`` records what was asked."""

    def __init__(self, redis: SharedRedis) -> None:
        self.redis = redis
        self.calls: list[str] = []

    async def read(self) -> Ledger:
        r = self.redis
        return Ledger(r.epoch, r.generation, dict(r.rebuilding))

    async def adopt(self, epoch: str) -> None:
        r = self.redis
        if r.epoch == epoch and r.generation is None and r.lock is None:
            r.generation = f"g{next(_tokens)}"
            self.calls.append("adopt")

    async def claim(self, held: str | None = None) -> str | None:
        if self.redis.lock is not None:
            return held if held == self.redis.lock else None
        self.redis.lock = f"t{next(_tokens)}"
        self.calls.append("claim")
        return self.redis.lock

    async def begin(self, token: str, targets: dict[int, int]) -> bool:
        r = self.redis
        if r.lock != token:
            return False
        r.epoch = r.generation = None
        r.rebuilding = dict(targets)
        self.calls.append(f"begin {sorted(targets.items())}")
        return True

    async def wipe(self, token: str) -> bool:
        r = self.redis
        if r.lock != token:
            return False
        r.watermarks.clear()
        r.stored.clear()
        r.wipes += 1
        self.calls.append("wipe")
        return True

    async def finish(self, token: str, epoch: str) -> str | None:
        r = self.redis
        if r.lock != token:
            return None
        r.epoch, r.generation, r.lock = epoch, f"g{next(_tokens)}", None
        self.calls.append("finish")
        return r.generation

    async def mark(self, generation: str, targets: dict[int, int]) -> None:
        if self.redis.generation == generation:
            for partition, target in targets.items():
                self.redis.rebuilding.setdefault(partition, target)

    async def clear(self, generation: str, partition: int, reached: int) -> None:
        r = self.redis
        if r.generation == generation and r.rebuilding.get(partition, reached + 1) <= reached:
            del r.rebuilding[partition]


class Consumer:
    """The calls HistoryConsumer makes on an AIOKafkaConsumer, recorded; ``ends`` are the partitions' ends."""

    def __init__(self, assigned: set[TopicPartition], ends: dict[TopicPartition, int] | None = None) -> None:
        self.assigned = assigned
        self.ends = ends or {}
        self.seeks: dict[TopicPartition, int] = {}
        self.to_beginning: list[TopicPartition] = []
        self.commits: list[dict[TopicPartition, int]] = []
        self.refuse_commits = False

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self.to_beginning.extend(partitions)

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in partitions}

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends.get(tp, 0) for tp in partitions}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.refuse_commits:
            raise CommitFailedError("the group dropped this member")
        if not set(offsets) <= self.assigned:
            raise IllegalStateError(f"Partition {set(offsets) - self.assigned} is not assigned")
        self.commits.append(offsets)


def history(store: Store | None = None, rebuilds: FakeRebuilds | None = None) -> HistoryConsumer:
    """A consumer on ``store`` (and the rebuild state of the same Redis), as positioned under its generation."""
    store = store or Store()
    consumer = HistoryConsumer(HistorySettings(), cast(ItemStore, store), EPOCH,
                               cast(Rebuilds, rebuilds or FakeRebuilds(store.redis)))
    consumer.generation = store.redis.generation
    return consumer


def kafka(consumer: Consumer) -> Any:
    """The fake, typed as the aiokafka consumer the methods take."""
    return consumer

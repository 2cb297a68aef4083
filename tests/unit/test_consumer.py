"""The history consumer's decisions without Kafka or Redis: readiness, positioning, applying, rewinding.

A recording fake consumer (assignment, seek, commit, offsets) and a fake store (watermarks, apply,
reset) stand in for aiokafka and Redis; the consumer's own logic is the real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from services.history.consumer import HistoryConsumer, Readiness
from shared.cursor import Cursor
from shared.settings import HistorySettings
from shared.store import ItemStore
from shared.wire import Event, EventType

EPOCH = "f733f5e9"
TOPIC = "livefeed.events"
P0, P1, P2 = (TopicPartition(TOPIC, n) for n in range(3))


@dataclass
class Record:
    offset: int
    value: bytes


def record(offset: int, item_id: str = "01m8cng7dqz8mzsg2ge1ydk21g") -> Record:
    item = {"id": item_id, "feed": "world", "version": 1, "headline": f"h{offset}"}
    return Record(offset, Event(EventType.published, "world", item, 1.0).serialize())


class Store:
    """Watermarks per partition, and every apply and reset asked of it."""

    def __init__(self, watermarks: dict[int, int | None] | None = None, answer: int = 1) -> None:
        self.watermarks = watermarks or {}
        self.answer = answer
        self.applied: list[tuple[str, Cursor]] = []
        self.resets: list[str] = []

    async def watermark(self, partition: int) -> int | None:
        return self.watermarks.get(partition)

    async def apply(self, event: Event, cursor: Cursor, *, watermark: bool = False) -> int:
        assert watermark
        self.applied.append((str(event.item["headline"]), cursor))
        return self.answer

    async def reset(self, epoch: str) -> None:
        self.resets.append(epoch)
        self.watermarks = {}


class Consumer:
    """The calls HistoryConsumer makes on an AIOKafkaConsumer, recorded."""

    def __init__(self, assigned: set[TopicPartition], ends: dict[TopicPartition, int] | None = None) -> None:
        self.assigned = assigned
        self.ends = ends or {}
        self.seeks: dict[TopicPartition, int] = {}
        self.to_beginning: list[TopicPartition] = []
        self.commits: list[dict[TopicPartition, int]] = []

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

    refuse_commits = False

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.refuse_commits:
            raise CommitFailedError("the group dropped this member")
        self.commits.append(offsets)


def history(store: Store | None = None) -> HistoryConsumer:
    return HistoryConsumer(HistorySettings(), cast(ItemStore, store or Store()), EPOCH)


# Status


def test_a_new_consumer_is_starting_with_nothing_applied() -> None:
    assert history().status() == {"status": "starting", "epoch": EPOCH, "applied": 0, "rebuild_lag": {}}


def test_while_redis_fails_the_status_says_so_and_why_then_recovers() -> None:
    consumer = history()
    consumer.state = Readiness.ready
    consumer._redis_failed(ConnectionError("refused"), 0.4)
    status = consumer.status()
    assert status["status"] == "redis_unavailable"
    assert status["error"] == "redis unavailable (ConnectionError); retrying in 0.4s"
    consumer._redis_answers()
    assert consumer.status()["status"] == "ready"
    assert "error" not in consumer.status()


def test_the_error_names_the_latest_failure_and_backoff() -> None:
    consumer = history()
    consumer._redis_failed(ConnectionError("refused"), 0.2)
    consumer._redis_failed(TimeoutError("slow"), 0.8)
    assert consumer.status()["error"] == "redis unavailable (TimeoutError); retrying in 0.8s"


async def test_a_rebuild_reports_its_lag_per_partition_never_below_zero() -> None:
    consumer = history()
    kafka = Consumer({P0, P1}, ends={P0: 50, P1: 10})
    await consumer.position(cast(Any, kafka), {P0, P1})
    consumer._next[P0] = 20
    consumer._next[P1] = 12
    assert consumer.status()["rebuild_lag"] == {"0": 30, "1": 0}


# Positioning on assignment


async def test_partitions_with_a_watermark_resume_right_after_it_and_history_is_ready() -> None:
    consumer = history(Store({0: 41, 1: 7}))
    kafka = Consumer({P0, P1})
    await consumer.position(cast(Any, kafka), {P0, P1})
    assert kafka.seeks == {P0: 42, P1: 8}
    assert kafka.to_beginning == []
    assert consumer.state is Readiness.ready


async def test_a_partition_without_a_watermark_is_read_from_the_beginning_as_a_rebuild() -> None:
    consumer = history(Store({0: 41}))
    kafka = Consumer({P0, P1}, ends={P1: 300})
    await consumer.position(cast(Any, kafka), {P0, P1})
    assert kafka.seeks == {P0: 42}
    assert kafka.to_beginning == [P1]
    assert consumer.state is Readiness.rebuilding
    assert consumer.status()["rebuild_lag"] == {"1": 300}


async def test_a_rebuild_is_ready_once_every_assigned_partition_reaches_its_target() -> None:
    consumer = history()
    kafka = Consumer({P0, P1}, ends={P0: 5, P1: 3})
    await consumer.position(cast(Any, kafka), {P0, P1})
    consumer._next[P0] = 5
    consumer._check_caught_up(cast(Any, kafka))
    assert consumer.status()["status"] == "rebuilding"
    consumer._next[P1] = 3
    consumer._check_caught_up(cast(Any, kafka))
    assert consumer.status()["status"] == "ready"
    assert consumer.status()["rebuild_lag"] == {}


async def test_a_partition_taken_away_during_a_rebuild_does_not_hold_readiness_back() -> None:
    consumer = history()
    kafka = Consumer({P0, P1}, ends={P0: 5, P1: 3})
    await consumer.position(cast(Any, kafka), {P0, P1})
    consumer._next[P0] = 5
    kafka.assigned = {P0}
    consumer._check_caught_up(cast(Any, kafka))
    assert consumer.state is Readiness.ready


def test_a_ready_consumer_stays_ready_when_checked() -> None:
    consumer = history()
    consumer.state = Readiness.ready
    consumer._check_caught_up(cast(Any, Consumer(set())))
    assert consumer.state is Readiness.ready


# Applying batches


async def test_records_are_applied_in_order_at_their_cursors_then_committed() -> None:
    store = Store()
    consumer = history(store)
    kafka = Consumer({P0, P2})
    await consumer._apply_batches(cast(Any, kafka), {P0: [record(5), record(6)], P2: [record(9)]})
    assert store.applied == [("h5", Cursor(EPOCH, 0, 5)), ("h6", Cursor(EPOCH, 0, 6)), ("h9", Cursor(EPOCH, 2, 9))]
    assert kafka.commits == [{P0: 7}, {P2: 10}]
    assert consumer._next == {P0: 7, P2: 10}
    assert consumer.applied == 3


async def test_a_commit_kafka_refuses_leaves_the_stored_records_stored_and_does_not_stop_history() -> None:
    """A member the group dropped (a long pause) cannot commit; Redis's watermark still places it."""
    store = Store()
    consumer = history(store)
    kafka = Consumer({P0, P2})
    kafka.refuse_commits = True
    await consumer._apply_batches(cast(Any, kafka), {P0: [record(5)], P2: [record(9)]})
    assert store.applied == [("h5", Cursor(EPOCH, 0, 5))]
    assert consumer._next == {P0: 6}


async def test_a_record_that_changed_nothing_is_committed_but_not_counted() -> None:
    store = Store(answer=0)
    consumer = history(store)
    kafka = Consumer({P0})
    await consumer._apply_batches(cast(Any, kafka), {P0: [record(5)]})
    assert kafka.commits == [{P0: 6}]
    assert consumer.applied == 0


async def test_a_record_that_is_not_an_event_is_skipped_and_committed() -> None:
    store = Store()
    consumer = history(store)
    kafka = Consumer({P0})
    await consumer._apply_batches(cast(Any, kafka), {P0: [record(1), Record(2, b"garbage"), record(3)]})
    assert [cursor.offset for _, cursor in store.applied] == [1, 3]
    assert kafka.commits == [{P0: 4}]


async def test_when_redis_lost_its_data_history_rebuilds_instead_of_committing() -> None:
    store = Store({0: 99}, answer=-1)
    consumer = history(store)
    consumer.state = Readiness.ready
    kafka = Consumer({P0, P1}, ends={P0: 120, P1: 4})
    await consumer._apply_batches(cast(Any, kafka), {P0: [record(100)], P1: [record(3)]})
    assert store.resets == [EPOCH]
    assert kafka.commits == []
    assert set(kafka.to_beginning) == {P0, P1}
    assert consumer.state is Readiness.rebuilding
    assert consumer.status()["rebuild_lag"] == {"0": 120, "1": 4}


# Rewinding after a Redis failure


def test_a_rewind_seeks_each_partition_back_to_its_first_unstored_record() -> None:
    consumer = history()
    consumer._next = {P0: 10, P1: 20}
    kafka = Consumer({P0, P1})
    consumer._rewind(cast(Any, kafka), {P0: [record(10), record(11)], P1: [record(20)]})
    assert kafka.seeks == {P0: 10, P1: 20}


def test_a_rewind_leaves_a_partition_whose_batch_was_stored() -> None:
    consumer = history()
    consumer._next = {P0: 12, P1: 20}
    kafka = Consumer({P0, P1})
    consumer._rewind(cast(Any, kafka), {P0: [record(10), record(11)], P1: [record(20), record(21)]})
    assert kafka.seeks == {P1: 20}


def test_a_rewind_of_a_partition_never_stored_goes_back_to_the_batchs_first_record() -> None:
    consumer = history()
    kafka = Consumer({P0})
    consumer._rewind(cast(Any, kafka), {P0: [record(30), record(31)]})
    assert kafka.seeks == {P0: 30}


def test_a_rewind_skips_partitions_no_longer_assigned_and_empty_batches() -> None:
    consumer = history()
    consumer._next = {P0: 10, P1: 20}
    kafka = Consumer({P1})
    consumer._rewind(cast(Any, kafka), {P0: [record(10)], P1: []})
    assert kafka.seeks == {}

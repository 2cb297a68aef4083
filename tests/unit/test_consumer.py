"""The history consumer's decisions without Kafka or Redis: readiness, positioning, applying, rewinding.

A recording fake consumer (assignment, seek, commit, offsets) and a fake store (watermarks, apply,
reset) stand in for aiokafka and Redis; the consumer's own logic is the real one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiokafka import TopicPartition

from services.history.consumer import Readiness, _Positioner
from shared.cursor import Cursor
from tests.unit.history_fakes import (
    EPOCH,
    P0,
    P1,
    P2,
    Consumer,
    FakeRebuilds,
    Record,
    SharedRedis,
    Store,
    history,
    kafka,
    record,
)


@pytest.fixture(autouse=True)
def three_partitions(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The topic has partitions 0 to 2 (what the consumer asks Kafka's metadata for)."""

    async def partitions(consumer: object, topic: str) -> set[int]:
        return {0, 1, 2}

    monkeypatch.setattr("services.history.consumer.topic_partitions", partitions)
    yield


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
    k = Consumer({P0, P1}, ends={P0: 50, P1: 10})
    await consumer.position(kafka(k), {P0, P1})
    consumer._next[P0] = 20
    consumer._next[P1] = 12
    assert consumer.status()["rebuild_lag"] == {"0": 30, "1": 0}


# Positioning on assignment


async def test_partitions_with_a_watermark_resume_right_after_it_and_history_is_ready() -> None:
    consumer = history(Store(SharedRedis(watermarks={0: 41, 1: 7})))
    k = Consumer({P0, P1})
    await consumer.position(kafka(k), {P0, P1})
    assert k.seeks == {P0: 42, P1: 8}
    assert k.to_beginning == []
    assert consumer.state is Readiness.ready


async def test_a_partition_without_a_watermark_is_read_from_the_beginning_as_a_rebuild() -> None:
    consumer = history(Store(SharedRedis(watermarks={0: 41})))
    k = Consumer({P0, P1}, ends={P1: 300})
    await consumer.position(kafka(k), {P0, P1})
    assert k.seeks == {P0: 42}
    assert k.to_beginning == [P1]
    assert consumer.state is Readiness.rebuilding
    assert consumer.status()["rebuild_lag"] == {"1": 300}


async def test_a_rebuild_is_ready_once_every_assigned_partition_reaches_its_target() -> None:
    redis = SharedRedis()
    consumer = history(Store(redis))
    k = Consumer({P0, P1}, ends={P0: 5, P1: 3})
    await consumer.position(kafka(k), {P0, P1})
    assert redis.rebuilding == {0: 5, 1: 3}, "every instance must know these partitions are partial"
    consumer._next[P0] = 5
    await consumer._settle(kafka(k))
    assert consumer.status()["status"] == "rebuilding"
    assert redis.rebuilding == {1: 3}
    consumer._next[P1] = 3
    await consumer._settle(kafka(k))
    assert consumer.status()["status"] == "ready"
    assert consumer.status()["rebuild_lag"] == {}
    assert redis.rebuilding == {}


async def test_a_partition_taken_away_mid_rebuild_keeps_history_rebuilding_until_its_new_owner_finishes() -> None:
    redis = SharedRedis()
    first, second = history(Store(redis)), history(Store(redis))
    k1 = Consumer({P0, P1}, ends={P0: 5, P1: 3})
    await first.position(kafka(k1), {P0, P1})
    first._next[P0] = 5
    redis.watermarks[1] = 1  # P1 applied up to offset 1 of 3 when the group moves it
    k1.assigned = {P0}
    first.revoked({P1})
    await first._settle(kafka(k1))
    assert first.state is Readiness.rebuilding, "P1 is still partial, whoever owns it now"
    k2 = Consumer({P1}, ends={P1: 3})
    await second.position(kafka(k2), {P1})
    assert k2.seeks == {P1: 2}, "the new owner continues from the watermark"
    assert second.state is Readiness.rebuilding
    second._next[P1] = 3
    await second._settle(kafka(k2))
    assert redis.rebuilding == {}
    assert await first._store_intact(kafka(k1))
    await first._settle(kafka(k1))
    assert first.status()["status"] == second.status()["status"] == "ready"


async def test_a_ready_instance_says_rebuilding_while_another_instance_rebuilds_its_partitions() -> None:
    redis = SharedRedis(watermarks={0: 9})
    consumer = history(Store(redis))
    k = Consumer({P0})
    await consumer.position(kafka(k), {P0})
    assert consumer.state is Readiness.ready
    redis.rebuilding[2] = 40
    assert await consumer._store_intact(kafka(k))
    await consumer._settle(kafka(k))
    assert consumer.status()["status"] == "rebuilding"
    assert consumer.status()["rebuilding_partitions"] == [2]


async def test_a_ready_consumer_stays_ready_when_checked() -> None:
    consumer = history()
    consumer.state = Readiness.ready
    await consumer._settle(kafka(Consumer(set())))
    assert consumer.state is Readiness.ready


# Applying batches


async def test_records_are_applied_in_order_at_their_cursors_then_committed() -> None:
    store = Store()
    consumer = history(store)
    k = Consumer({P0, P2})
    await consumer._apply_batches(kafka(k), {P0: [record(5), record(6)], P2: [record(9)]})
    assert store.applied == [("h5", Cursor(EPOCH, 0, 5)), ("h6", Cursor(EPOCH, 0, 6)), ("h9", Cursor(EPOCH, 2, 9))]
    assert k.commits == [{P0: 7}, {P2: 10}]
    assert consumer._next == {P0: 7, P2: 10}
    assert consumer.applied == 3


async def test_a_commit_kafka_refuses_leaves_the_stored_records_stored_and_does_not_stop_history() -> None:
    """A member the group dropped (a long pause) cannot commit; Redis's watermark still places it."""
    store = Store()
    consumer = history(store)
    k = Consumer({P0, P2})
    k.refuse_commits = True
    await consumer._apply_batches(kafka(k), {P0: [record(5)], P2: [record(9)]})
    assert store.applied == [("h5", Cursor(EPOCH, 0, 5))]
    assert consumer._next == {P0: 6}


async def test_a_refused_commit_is_made_once_the_member_holds_the_partition_again() -> None:
    """After a long pause the last record may be stored while its commit is refused; nothing new comes
    to commit it later (history resumes from Redis), so the commit is made again once Kafka takes it."""
    store = Store()
    consumer = history(store)
    k = Consumer({P0})
    k.refuse_commits = True
    await consumer._apply_batches(kafka(k), {P0: [record(5)]})
    await consumer._commit_refused(kafka(k))
    assert k.commits == []
    k.refuse_commits = False
    await consumer._commit_refused(kafka(k))
    assert k.commits == [{P0: 6}]
    await consumer._commit_refused(kafka(k))
    assert k.commits == [{P0: 6}], "committed once"


async def test_a_record_that_changed_nothing_is_committed_but_not_counted() -> None:
    store = Store(answer=0)
    consumer = history(store)
    k = Consumer({P0})
    await consumer._apply_batches(kafka(k), {P0: [record(5)]})
    assert k.commits == [{P0: 6}]
    assert consumer.applied == 0


async def test_a_record_that_is_not_an_event_is_skipped_and_committed() -> None:
    store = Store()
    consumer = history(store)
    k = Consumer({P0})
    await consumer._apply_batches(kafka(k), {P0: [record(1), Record(2, b"garbage"), record(3)]})
    assert [cursor.offset for _, cursor in store.applied] == [1, 3]
    assert k.commits == [{P0: 4}]


async def test_when_redis_lost_its_data_history_rebuilds_instead_of_committing() -> None:
    redis = SharedRedis(watermarks={0: 99})
    consumer = history(Store(redis))
    consumer.state = Readiness.ready
    k = Consumer({P0, P1}, ends={P0: 120, P1: 4})
    redis.flush()
    await consumer._apply_batches(kafka(k), {P0: [record(100)], P1: [record(3)]})
    assert redis.wipes == 1
    assert k.commits == []
    assert set(k.to_beginning) == {P0, P1}
    assert consumer.state is Readiness.rebuilding
    assert consumer.status()["rebuild_lag"] == {"0": 120, "1": 4}
    assert redis.rebuilding == {0: 120, 1: 4}
    assert consumer.generation == redis.generation is not None


# Two instances and a lost Redis


async def test_one_instance_alone_empties_a_lost_store_and_the_other_rebuilds_its_partitions_in_it() -> None:
    redis = SharedRedis(watermarks={0: 50, 1: 30})
    first, second = history(Store(redis)), history(Store(redis))
    k1, k2 = Consumer({P0}, ends={P0: 60, P1: 40}), Consumer({P1}, ends={P0: 60, P1: 40})
    redis.flush()
    await first._apply_batches(kafka(k1), {P0: [record(51)]})
    calls = first.rebuilds.calls  # type: ignore[attr-defined]
    assert calls == ["claim", "begin [(0, 60), (1, 40)]", "wipe", "finish"]
    await first._apply_batches(kafka(k1), {P0: [record(0), record(1)]})
    # The second instance was positioned before the loss: its write is refused, it empties nothing,
    # and it reads its partition from the beginning into the new store.
    await second._apply_batches(kafka(k2), {P1: [record(31)]})
    assert redis.wipes == 1
    assert second.rebuilds.calls == []  # type: ignore[attr-defined]
    assert k2.to_beginning == [P1]
    assert redis.stored == [(0, 0), (0, 1)], "the first instance's rebuilt records are still there"
    await second._apply_batches(kafka(k2), {P1: [record(0)]})
    assert redis.stored == [(0, 0), (0, 1), (1, 0)]


async def test_an_instance_that_finds_the_store_being_emptied_waits_for_it_and_never_empties_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis = SharedRedis()
    redis.flush()
    redis.lock = "another instance's"
    consumer = history(Store(redis))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:  # the other instance finishes meanwhile
            redis.epoch, redis.generation, redis.lock = EPOCH, "g-new", None
            redis.rebuilding = {2: 7}

    monkeypatch.setattr("services.history.consumer.asyncio.sleep", sleep)
    await consumer.adopt_store(kafka(Consumer(set())))
    assert consumer.generation == "g-new"
    assert consumer.rebuilds.calls == []  # type: ignore[attr-defined]
    assert len(waits) == 3
    assert consumer.state is Readiness.rebuilding


async def test_a_lock_whose_holder_died_expires_and_the_next_instance_empties_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis = SharedRedis()
    redis.flush()
    redis.lock = "a killed instance's"
    consumer = history(Store(redis))

    async def sleep(seconds: float) -> None:
        redis.lock = None  # its time to live ran out

    monkeypatch.setattr("services.history.consumer.asyncio.sleep", sleep)
    await consumer.adopt_store(kafka(Consumer(set())))
    assert redis.wipes == 1
    assert consumer.generation == redis.generation is not None


async def test_a_paused_instance_whose_lock_was_taken_over_deletes_nothing_and_adopts_the_new_store() -> None:
    redis = SharedRedis()
    redis.flush()
    consumer = history(Store(redis))
    rebuilds: FakeRebuilds = consumer.rebuilds  # type: ignore[assignment]

    async def paused_past_the_lock() -> None:
        # Meanwhile the lock expired, another instance emptied the store and rebuilt part of it.
        redis.lock = None
        token = await rebuilds.claim()
        assert token is not None
        await rebuilds.begin(token, {0: 3})
        await rebuilds.finish(token, EPOCH)
        redis.watermarks[0] = 1
        redis.stored.append((0, 1))
        rebuilds.calls.clear()

    consumer.before_reset = paused_past_the_lock
    await consumer.adopt_store(kafka(Consumer(set(), ends={P0: 3})))
    assert rebuilds.calls == [], "the resumed instance wiped nothing"
    assert redis.stored == [(0, 1)]
    assert consumer.generation == redis.generation


async def test_the_store_is_marked_rebuilding_before_it_is_announced_and_emptied() -> None:
    """Every instance must stop serving reads before any of the store is deleted."""
    redis = SharedRedis(watermarks={0: 5})
    consumer = history(Store(redis))
    seen: list[str] = []

    async def announce() -> None:
        seen.append(f"{consumer.state.value} {sorted(redis.rebuilding)} epoch={redis.epoch} wipes={redis.wipes}")

    consumer.before_reset = announce
    redis.epoch = None  # Redis restarted with part of its data, no epoch
    await consumer.adopt_store(kafka(Consumer(set(), ends={P0: 9, P2: 4})))
    assert seen == ["rebuilding [0, 2] epoch=None wipes=0"]
    assert redis.wipes == 1


# Rebalances


async def test_a_revoked_partitions_late_records_change_nothing_its_new_owner_applied() -> None:
    """Through a rebalance two instances may apply one partition for a moment: no record twice, none skipped."""
    redis = SharedRedis(watermarks={0: 9})
    old, new = history(Store(redis)), history(Store(redis))
    k_old, k_new = Consumer({P0}), Consumer({P0})
    await new.position(kafka(k_new), {P0})
    await new._apply_batches(kafka(k_new), {P0: [record(10), record(11), record(12)]})
    k_old.assigned = set()
    await old._apply_batches(kafka(k_old), {P0: [record(10), record(11)]})  # fetched before it lost P0
    assert redis.stored == [(0, 10), (0, 11), (0, 12)]
    assert k_old.commits == [], "a partition no longer assigned is not committed (aiokafka would raise)"
    assert k_new.commits == [{P0: 13}]


async def test_a_paused_instance_that_resumes_after_its_partition_moved_on_applies_only_what_is_new() -> None:
    redis = SharedRedis(watermarks={0: 9})
    paused, taker = history(Store(redis)), history(Store(redis))
    await taker._apply_batches(kafka(Consumer({P0})), {P0: [record(10)]})
    await paused._apply_batches(kafka(Consumer({P0})), {P0: [record(10), record(11)]})
    await taker._apply_batches(kafka(Consumer({P0})), {P0: [record(11), record(12)]})
    assert redis.stored == [(0, 10), (0, 11), (0, 12)]


# Rewinding after a Redis failure


def test_a_rewind_seeks_each_partition_back_to_its_first_unstored_record() -> None:
    consumer = history()
    consumer._next = {P0: 10, P1: 20}
    k = Consumer({P0, P1})
    consumer._rewind(kafka(k), {P0: [record(10), record(11)], P1: [record(20)]})
    assert k.seeks == {P0: 10, P1: 20}


def test_a_rewind_leaves_a_partition_whose_batch_was_stored() -> None:
    consumer = history()
    consumer._next = {P0: 12, P1: 20}
    k = Consumer({P0, P1})
    consumer._rewind(kafka(k), {P0: [record(10), record(11)], P1: [record(20), record(21)]})
    assert k.seeks == {P1: 20}


def test_a_rewind_of_a_partition_never_stored_goes_back_to_the_batchs_first_record() -> None:
    consumer = history()
    k = Consumer({P0})
    consumer._rewind(kafka(k), {P0: [record(30), record(31)]})
    assert k.seeks == {P0: 30}


def test_a_rewind_skips_partitions_no_longer_assigned_and_empty_batches() -> None:
    consumer = history()
    consumer._next = {P0: 10, P1: 20}
    k = Consumer({P1})
    consumer._rewind(kafka(k), {P0: [record(10)], P1: []})
    assert k.seeks == {}


async def test_an_assignment_that_could_not_be_positioned_is_positioned_before_anything_is_applied() -> None:
    """aiokafka drops a listener's error and reads from the committed offsets, which a rebuild left behind."""

    class Unreachable(Consumer):
        async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
            raise ConnectionError("kafka went away")

    consumer = history(Store(SharedRedis()))  # no watermark: positioning needs the partition's end offset
    await _Positioner(consumer, kafka(Unreachable({P0}))).on_partitions_assigned({P0})
    assert consumer.unpositioned


async def test_a_store_written_before_generations_is_adopted_as_it_is_on_upgrade() -> None:
    """Emptying it would make every read a 503 for the whole rebuild, on a store that lost nothing."""
    redis = SharedRedis(generation=None, watermarks={0: 9})
    consumer = history(Store(redis))
    await consumer.adopt_store(kafka(Consumer(set())))
    assert consumer.rebuilds.calls == ["adopt"]  # type: ignore[attr-defined]
    assert redis.wipes == 0
    assert consumer.generation == redis.generation is not None


async def test_an_instance_interrupted_by_a_redis_error_mid_emptying_takes_up_its_own_lock_again() -> None:
    redis = SharedRedis()
    redis.flush()
    consumer = history(Store(redis))
    rebuilds: FakeRebuilds = consumer.rebuilds  # type: ignore[assignment]
    failures = [ConnectionError("redis went away")]

    async def announce() -> None:
        if failures:
            raise failures.pop()

    consumer.before_reset = announce
    with pytest.raises(ConnectionError):
        await consumer.adopt_store(kafka(Consumer(set(), ends={P0: 5})))
    await consumer.adopt_store(kafka(Consumer(set(), ends={P0: 5})))  # as _until_redis_answers calls it again
    assert rebuilds.calls == ["claim", "begin [(0, 5)]", "begin [(0, 5)]", "wipe", "finish"]
    assert redis.lock is None


async def test_a_lost_store_of_an_empty_topic_is_emptied_without_waiting_for_an_announcement() -> None:
    """Nothing partial can be read while it refills; a new stack's history is ready at once."""
    redis = SharedRedis()
    redis.flush()
    consumer = history(Store(redis))
    announced: list[str] = []

    async def announce() -> None:
        announced.append("announced")

    consumer.before_reset = announce
    await consumer.adopt_store(kafka(Consumer(set())))
    assert announced == []
    assert redis.wipes == 1

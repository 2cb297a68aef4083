"""The history consumer: applies every Kafka event to the Redis store, in order, exactly once.

Redis remembers, per partition, the last offset it applied (the watermark, written in the same
atomic step as the event). On assignment the consumer resumes right after it; with no
watermark (a new or emptied Redis) it reads the partition from the beginning and reports
``rebuilding`` until it has caught up. Offsets are committed to Kafka after Redis has the event.

Several history instances share one consumer group, each applying some partitions. Through a
rebalance two of them may apply the same partition for a moment (the one that lost it has not
heard yet, or was paused): the watermark check makes the second application of an offset a
no-op, and each applies its records in order, so nothing is doubled or skipped. When Redis
loses its data, one instance alone empties what is left and starts a new store generation; the
others wait for it, and every consumer positioned before re-reads its partitions' watermarks
(the rules are in ``rebuild.py``). Readiness is the whole store's: ``rebuilding`` while any
partition, whoever owns it, is still being rebuilt.

A commit Kafka refuses (the group dropped this member after a long pause, or is rebalancing)
is logged and skipped: the next assignment resumes from Redis's watermark. When Redis is slow
or down the consumer does not exit either: it says ``redis_unavailable``, rewinds
to the first record it has not stored, and tries again with capped backoff. Applying is
idempotent, so a record stored just before the failure is harmlessly applied again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from shared.breaker import STORE_ERRORS
from shared.cursor import Cursor
from shared.kafka import make_consumer, stop_consumer, topic_partitions
from shared.metrics import REDIS_ERRORS, LagGauge
from shared.settings import HistorySettings
from shared.store import ItemStore
from shared.wire import event_or_none

from .rebuild import Ledger, Rebuilds

__all__ = ["HistoryConsumer", "Readiness"]

log = logging.getLogger("livefeed.history.consumer")

LOSS_CHECK_S = 1.0
"""How often history checks, while idle too, that Redis still holds its data (and updates its lag gauge)."""


class Readiness(StrEnum):
    starting = "starting"
    rebuilding = "rebuilding"
    ready = "ready"
    redis_unavailable = "redis_unavailable"


BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0
CLAIM_WAIT_S = 0.2
"""How often an instance waiting for another to empty the store looks again (and takes over a lock that expired)."""


class HistoryConsumer:
    def __init__(self, settings: HistorySettings, store: ItemStore, epoch: str, rebuilds: Rebuilds,
                 before_reset: Callable[[], Awaitable[None]] | None = None) -> None:
        """``before_reset`` is awaited once the store is marked rebuilding and before it is emptied: every
        worker of every instance must know before it could read a partial store."""
        self.settings = settings
        self.store = store
        self.epoch = epoch
        self.rebuilds = rebuilds
        self.before_reset = before_reset
        self.state = Readiness.starting
        self.applied = 0
        self.generation: str | None = None
        """The store generation this consumer's positions belong to (``rebuild.py``)."""
        self._consumer: AIOKafkaConsumer | None = None
        self._targets: dict[TopicPartition, int] = {}
        self._next: dict[TopicPartition, int] = {}
        self._refused: set[TopicPartition] = set()
        self._elsewhere: set[int] = set()
        """Partitions the last look at Redis said were rebuilding, this instance's or not."""
        self._positioned = False
        self._token: str | None = None
        """The lock this instance took to empty the store, kept through a Redis error until it is done."""
        self.unpositioned = False
        """Set when positioning an assignment failed: the main loop positions again before applying anything."""
        self.redis_error: str | None = None
        self._lag = LagGauge("history")
        self._redis_errors = REDIS_ERRORS.labels("history", "consume")

    def status(self) -> dict[str, Any]:
        lag = {str(tp.partition): max(0, target - self._next.get(tp, 0)) for tp, target in self._targets.items()}
        state = Readiness.redis_unavailable if self.redis_error is not None else self.state
        body: dict[str, Any] = {"status": state.value, "epoch": self.epoch, "applied": self.applied,
                                "rebuild_lag": lag}
        if self._elsewhere:
            body["rebuilding_partitions"] = sorted(self._elsewhere)
        if self.redis_error is not None:
            body["error"] = self.redis_error
        return body

    async def run(self) -> None:
        """Consume until cancelled; Redis failures are waited out, never fatal."""
        consumer = make_consumer(
            self.settings, group_id=self.settings.history_group, group_instance_id=self.settings.static_member_id()
        )
        self._consumer = consumer
        await consumer.start()
        loop = asyncio.get_running_loop()
        next_check = loop.time() + LOSS_CHECK_S
        backoff = BACKOFF_FIRST_S
        try:
            await self._until_redis_answers(lambda: self.adopt_store(consumer))
            consumer.subscribe([self.settings.topic], listener=_Positioner(self, consumer))
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                try:
                    if self.unpositioned:
                        await self.position(consumer, consumer.assignment())
                        self.unpositioned = False
                        continue
                    if loop.time() >= next_check:
                        next_check = loop.time() + LOSS_CHECK_S
                        self._report_lag(consumer)
                        if not await self._store_intact(consumer):
                            await self._rebuild(consumer)
                            continue
                    await self._apply_batches(consumer, batches)
                    await self._commit_refused(consumer)
                    await self._settle(consumer)
                except STORE_ERRORS as exc:
                    self._rewind(consumer, batches)
                    self._redis_failed(exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(BACKOFF_MAX_S, backoff * 2)
                    continue
                backoff = BACKOFF_FIRST_S
                self._redis_answers()
        finally:
            await stop_consumer(consumer)

    async def adopt_store(self, consumer: AIOKafkaConsumer) -> None:
        """Make the store this topic epoch's: adopt its generation, or, if it lost its data (or holds another
        epoch's), empty it and start a new one, one instance alone (the others wait here for it)."""
        while True:
            ledger = await self.rebuilds.read()
            if ledger.epoch == self.epoch and ledger.generation is None:
                await self.rebuilds.adopt(self.epoch)
                ledger = await self.rebuilds.read()
            if ledger.intact(self.epoch):
                self.generation = ledger.generation
                self._elsewhere = set(ledger.rebuilding)
                return
            self.state = Readiness.rebuilding
            token = self._token = await self.rebuilds.claim(self._token)
            if token is None:
                await asyncio.sleep(CLAIM_WAIT_S)
                continue
            log.warning("redis lost livefeed's data: rebuilding every feed from kafka",
                        extra={"redis_epoch": ledger.epoch, "topic_epoch": self.epoch})
            targets = await self._topic_ends(consumer)
            if not await self.rebuilds.begin(token, targets):
                continue
            if targets and self.before_reset is not None:  # an empty topic leaves nothing partial to read
                await self.before_reset()
            if await self.rebuilds.wipe(token):
                await self.rebuilds.finish(token, self.epoch)
            self._token = None

    async def _topic_ends(self, consumer: AIOKafkaConsumer) -> dict[int, int]:
        """Every partition of the topic that holds records, with its end offset: what a rebuild must reach."""
        tps = [TopicPartition(self.settings.topic, p) for p in await topic_partitions(consumer, self.settings.topic)]
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        return {tp.partition: ends[tp] for tp in tps if ends[tp] > begins[tp]}

    async def _store_intact(self, consumer: AIOKafkaConsumer) -> bool:
        """False if the store was emptied since this consumer positioned itself; else refresh what rebuilds
        (an assigned partition Redis says is rebuilding is this instance's to finish, whoever began it)."""
        ledger = await self.rebuilds.read()
        if not ledger.intact(self.epoch) or ledger.generation != self.generation:
            return False
        self._elsewhere = set(ledger.rebuilding)
        for tp in consumer.assignment():
            if tp.partition in ledger.rebuilding and tp in self._next:
                self._targets[tp] = max(self._targets.get(tp, 0), ledger.rebuilding[tp.partition])
        return True

    async def _apply_batches(self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Any]]) -> None:
        for tp, records in batches.items():
            if not await self._apply(tp, records):
                await self._rebuild(consumer)
                return
            self._next[tp] = records[-1].offset + 1
            if tp not in consumer.assignment():
                continue  # revoked meanwhile: its new owner commits, from Redis's watermark
            try:
                await consumer.commit({tp: records[-1].offset + 1})
            except (CommitFailedError, IllegalStateError) as exc:
                # The group dropped us (a long pause) or is rebalancing: the records are in Redis,
                # and on reassignment position() resumes from Redis's watermark, not this commit.
                log.warning("kafka commit refused; the next assignment resumes from redis",
                            extra={"partition": tp.partition, "error": repr(exc)})
                self._refused.add(tp)
                return
            self._refused.discard(tp)

    async def _commit_refused(self, consumer: AIOKafkaConsumer) -> None:
        """Commit again, once this member holds them, the partitions whose last commit Kafka refused.

        Their records are in Redis, so reassignment resumes after them and reads nothing new: a quiet
        partition's committed offset would otherwise stay behind until its next record.
        """
        for tp in sorted(self._refused, key=lambda t: t.partition):
            if tp not in consumer.assignment() or tp not in self._next:
                continue
            try:
                await consumer.commit({tp: self._next[tp]})
            except (CommitFailedError, IllegalStateError):
                return
            self._refused.discard(tp)

    def _rewind(self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Any]]) -> None:
        """Read again every fetched record not yet committed (applying twice changes nothing)."""
        assigned = consumer.assignment()
        for tp, records in batches.items():
            first_unstored = self._next.get(tp, records[0].offset) if records else None
            if first_unstored is not None and tp in assigned and first_unstored <= records[-1].offset:
                consumer.seek(tp, first_unstored)

    def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Set the lag gauge of each assigned partition: its end in Kafka less the next offset to apply."""
        assigned = consumer.assignment()
        self._lag.update({tp.partition: consumer.highwater(tp) for tp in assigned},
                         {tp.partition: at for tp, at in self._next.items() if tp in assigned})

    def _redis_failed(self, exc: BaseException, retry_in: float) -> None:
        self._redis_errors.inc()
        if self.redis_error is None:
            log.error("redis unavailable: history waits and retries", extra={"error": repr(exc)})
        self.redis_error = f"redis unavailable ({type(exc).__name__}); retrying in {retry_in:g}s"

    def _redis_answers(self) -> None:
        if self.redis_error is not None:
            self.redis_error = None
            log.warning("redis answers again: history resumes")

    async def _until_redis_answers(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` until it gets through Redis, waiting with capped backoff."""
        backoff = BACKOFF_FIRST_S
        while True:
            try:
                await step()
            except STORE_ERRORS as exc:
                self._redis_failed(exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(BACKOFF_MAX_S, backoff * 2)
                continue
            self._redis_answers()
            return

    async def _apply(self, tp: TopicPartition, records: list[Any]) -> bool:
        """Apply ``records`` in order; False if Redis lost its data (or was emptied and refilled) meanwhile."""
        for record in records:
            event = event_or_none(record.value, tp.partition, record.offset)
            if event is None:
                continue
            result = await self.store.apply(event, Cursor(self.epoch, tp.partition, record.offset), watermark=True,
                                            generation=self.generation or "")
            if result < 0:
                return False
            self.applied += result
        return True

    async def _rebuild(self, consumer: AIOKafkaConsumer) -> None:
        """The store was emptied since this consumer positioned itself: adopt (or make) the new one and
        read every assigned partition again from its watermark, if any, or from the beginning."""
        self.state = Readiness.rebuilding
        await self.adopt_store(consumer)
        await self.position(consumer, consumer.assignment())

    async def position(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        """Seek each partition to just after its watermark, or to the beginning if it has none.

        A partition with no watermark, or one another instance left part rebuilt (``meta:rebuild``),
        is rebuilding until it reaches its target; this instance clears it there.
        """
        watermarks: dict[TopicPartition, int | None] = {}
        ledgers: list[Ledger] = []

        async def read() -> None:
            await self.adopt_store(consumer)
            for tp in partitions:
                watermarks[tp] = await self.store.watermark(tp.partition)
            ledgers.append(await self.rebuilds.read())

        await self._until_redis_answers(read)
        ledger = ledgers[-1]
        fresh: list[TopicPartition] = []
        for tp in partitions:
            watermark = watermarks[tp]
            if watermark is None:
                fresh.append(tp)
            else:
                consumer.seek(tp, watermark + 1)
                self._next[tp] = watermark + 1
        if fresh:
            await consumer.seek_to_beginning(*fresh)
            self._next.update(await consumer.beginning_offsets(fresh))
            ends = await consumer.end_offsets(fresh)
            new = {tp.partition: end for tp, end in ends.items() if end > self._next[tp] and tp.partition not in
                   ledger.rebuilding}
            if new and self.generation is not None:
                await self._until_redis_answers(lambda: self.rebuilds.mark(self.generation or "", new))
            self._targets.update({tp: ends[tp] for tp in fresh})
        self._targets.update({tp: ledger.rebuilding[tp.partition] for tp in partitions
                              if tp.partition in ledger.rebuilding})
        self._elsewhere = set(ledger.rebuilding) | {tp.partition for tp in self._targets}
        if self._targets:
            log.info("rebuilding from the start of the topic",
                     extra={"partitions": sorted(tp.partition for tp in self._targets),
                            "target": {str(tp.partition): off for tp, off in self._targets.items()}})
        self._positioned = True
        await self._until_redis_answers(lambda: self._settle(consumer))
        if self.state is Readiness.ready:
            log.info("history ready", extra={"partitions": sorted(tp.partition for tp in partitions)})

    def revoked(self, partitions: set[TopicPartition]) -> None:
        """Forget what this instance knew of partitions the group gave to another."""
        for tp in partitions:
            self._targets.pop(tp, None)
            self._next.pop(tp, None)

    async def _settle(self, consumer: AIOKafkaConsumer) -> None:
        """Clear in Redis each assigned partition that reached its rebuild target, and say the whole store's
        readiness: ``rebuilding`` while any partition is, here or on another instance."""
        assigned = consumer.assignment()
        for tp, target in list(self._targets.items()):
            if tp not in assigned:
                del self._targets[tp]
            elif self._next.get(tp, 0) >= target:
                if self.generation is not None:
                    await self.rebuilds.clear(self.generation, tp.partition, self._next[tp])
                del self._targets[tp]
                self._elsewhere.discard(tp.partition)
        if self._targets or self._elsewhere:
            self.state = Readiness.rebuilding
        elif self._positioned and self.state is not Readiness.ready:
            was = self.state
            self.state = Readiness.ready
            if was is Readiness.rebuilding:
                log.info("rebuild complete: history ready", extra={"applied": self.applied})


class _Positioner(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, history: HistoryConsumer, consumer: AIOKafkaConsumer) -> None:
        self.history = history
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.history.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self.history.position(self.consumer, assigned)
        except Exception:
            # aiokafka logs and drops a listener's error, and would then read from the committed offsets,
            # which after a rebuild are past what Redis holds: position again from the main loop first.
            log.exception("positioning the assigned partitions failed; trying again")
            self.history.unpositioned = True

"""The history consumer: applies every Kafka event to the Redis store, in order, exactly once.

Redis remembers, per partition, the last offset it applied (the watermark, written in the same
atomic step as the event). On assignment the consumer resumes right after it; with no
watermark (a new or emptied Redis) it reads the partition from the beginning and reports
``rebuilding`` until it has caught up. Offsets are committed to Kafka after Redis has the event.

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
from aiokafka.errors import CommitFailedError

from shared.breaker import STORE_ERRORS
from shared.cursor import Cursor
from shared.kafka import make_consumer, stop_consumer
from shared.metrics import REDIS_ERRORS, LagGauge
from shared.settings import HistorySettings
from shared.store import ItemStore
from shared.wire import event_or_none

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


class HistoryConsumer:
    def __init__(self, settings: HistorySettings, store: ItemStore, epoch: str,
                 before_reset: Callable[[], Awaitable[None]] | None = None) -> None:
        """``before_reset`` is awaited once the state says ``rebuilding`` and before the store is
        emptied: the other workers must know before they could read a partial store."""
        self.settings = settings
        self.store = store
        self.epoch = epoch
        self.before_reset = before_reset
        self.state = Readiness.starting
        self.applied = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._targets: dict[TopicPartition, int] = {}
        self._next: dict[TopicPartition, int] = {}
        self.redis_error: str | None = None
        self._lag = LagGauge("history")
        self._redis_errors = REDIS_ERRORS.labels("history", "consume")

    def status(self) -> dict[str, Any]:
        lag = {str(tp.partition): max(0, target - self._next.get(tp, 0)) for tp, target in self._targets.items()}
        state = Readiness.redis_unavailable if self.redis_error is not None else self.state
        body: dict[str, Any] = {"status": state.value, "epoch": self.epoch, "applied": self.applied,
                                "rebuild_lag": lag}
        if self.redis_error is not None:
            body["error"] = self.redis_error
        return body

    async def run(self) -> None:
        """Consume until cancelled; Redis failures are waited out, never fatal."""
        await self._until_redis_answers(self._adopt_epoch)
        consumer = make_consumer(
            self.settings, group_id=self.settings.history_group, group_instance_id=self.settings.instance_id()
        )
        self._consumer = consumer
        consumer.subscribe([self.settings.topic], listener=_Positioner(self, consumer))
        await consumer.start()
        loop = asyncio.get_running_loop()
        next_check = loop.time() + LOSS_CHECK_S
        backoff = BACKOFF_FIRST_S
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                try:
                    if loop.time() >= next_check:
                        next_check = loop.time() + LOSS_CHECK_S
                        self._report_lag(consumer)
                        if await self.store.epoch() is None:
                            await self._rebuild(consumer, consumer.assignment())
                            continue
                    await self._apply_batches(consumer, batches)
                except STORE_ERRORS as exc:
                    self._rewind(consumer, batches)
                    self._redis_failed(exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(BACKOFF_MAX_S, backoff * 2)
                    continue
                backoff = BACKOFF_FIRST_S
                self._redis_answers()
                self._check_caught_up(consumer)
        finally:
            await stop_consumer(consumer)

    async def _adopt_epoch(self) -> None:
        """Start from empty when Redis holds another topic epoch's data (or none)."""
        previous = await self.store.epoch()
        if previous != self.epoch:
            log.warning(
                "redis holds no data of this topic epoch: rebuilding every feed from kafka",
                extra={"redis_epoch": previous, "topic_epoch": self.epoch},
            )
            await self.store.reset(self.epoch)

    async def _apply_batches(self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Any]]) -> None:
        for tp, records in batches.items():
            if not await self._apply(tp, records):
                await self._rebuild(consumer, consumer.assignment())
                return
            self._next[tp] = records[-1].offset + 1
            try:
                await consumer.commit({tp: records[-1].offset + 1})
            except CommitFailedError as exc:
                # The group dropped us (a long pause) or is rebalancing: the records are in Redis,
                # and on reassignment position() resumes from Redis's watermark, not this commit.
                log.warning("kafka commit refused; the next assignment resumes from redis",
                            extra={"partition": tp.partition, "error": repr(exc)})
                return

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
        """Apply ``records`` in order; False if Redis lost its data meanwhile."""
        for record in records:
            event = event_or_none(record.value, tp.partition, record.offset)
            if event is None:
                continue
            result = await self.store.apply(event, Cursor(self.epoch, tp.partition, record.offset), watermark=True)
            if result < 0:
                return False
            self.applied += result
        return True

    async def _rebuild(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        log.warning("redis lost livefeed's data: rebuilding every feed from kafka")
        self.state = Readiness.rebuilding
        if self.before_reset is not None:
            await self.before_reset()
        await self.store.reset(self.epoch)
        await self.position(consumer, partitions)

    async def position(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        """Seek each partition to just after its watermark, or to the beginning if it has none."""
        watermarks: dict[TopicPartition, int | None] = {}

        async def read() -> None:
            for tp in partitions:
                watermarks[tp] = await self.store.watermark(tp.partition)

        await self._until_redis_answers(read)
        rebuild: list[TopicPartition] = []
        for tp in partitions:
            watermark = watermarks[tp]
            if watermark is None:
                rebuild.append(tp)
            else:
                consumer.seek(tp, watermark + 1)
                self._next[tp] = watermark + 1
        if rebuild:
            self.state = Readiness.rebuilding
            await consumer.seek_to_beginning(*rebuild)
            self._next.update(await consumer.beginning_offsets(rebuild))
            self._targets = {**self._targets, **await consumer.end_offsets(rebuild)}
            log.info("rebuilding from the start of the topic",
                     extra={"partitions": sorted(tp.partition for tp in rebuild),
                            "target": {str(tp.partition): off for tp, off in self._targets.items()}})
        elif self.state is Readiness.starting:
            self.state = Readiness.ready
            log.info("history ready", extra={"partitions": sorted(tp.partition for tp in partitions)})

    def _check_caught_up(self, consumer: AIOKafkaConsumer) -> None:
        if self.state is not Readiness.rebuilding:
            return
        assigned = consumer.assignment()
        for tp, target in self._targets.items():
            if tp in assigned and self._next.get(tp, 0) < target:
                return
        self.state = Readiness.ready
        self._targets = {}
        log.info("rebuild complete: history ready", extra={"applied": self.applied})


class _Positioner(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, history: HistoryConsumer, consumer: AIOKafkaConsumer) -> None:
        self.history = history
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.history.position(self.consumer, assigned)

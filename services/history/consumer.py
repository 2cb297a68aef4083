"""The history consumer: applies every Kafka event to the Redis store, in order, exactly once.

Redis remembers, per partition, the last offset it applied (the watermark, written in the same
atomic step as the event). On assignment the consumer resumes right after it; with no
watermark (a new or emptied Redis) it reads the partition from the beginning and reports
``rebuilding`` until it has caught up. Offsets are committed to Kafka after Redis has the event.
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from shared.cursor import Cursor
from shared.kafka import make_consumer
from shared.settings import HistorySettings
from shared.store import ItemStore
from shared.wire import Event, WireError

__all__ = ["HistoryConsumer", "Readiness"]

log = logging.getLogger("livefeed.history.consumer")

LOSS_CHECK_S = 1.0
"""How often history checks, while idle too, that Redis still holds its data."""


class Readiness(StrEnum):
    starting = "starting"
    rebuilding = "rebuilding"
    ready = "ready"


class HistoryConsumer:
    def __init__(self, settings: HistorySettings, store: ItemStore, epoch: str) -> None:
        self.settings = settings
        self.store = store
        self.epoch = epoch
        self.state = Readiness.starting
        self.applied = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._targets: dict[TopicPartition, int] = {}
        self._next: dict[TopicPartition, int] = {}

    def status(self) -> dict[str, Any]:
        lag = {str(tp.partition): max(0, target - self._next.get(tp, 0)) for tp, target in self._targets.items()}
        return {"status": self.state.value, "epoch": self.epoch, "applied": self.applied, "rebuild_lag": lag}

    async def run(self) -> None:
        """Consume until cancelled."""
        if await self.store.epoch() != self.epoch:
            previous = await self.store.epoch()
            log.warning(
                "redis holds no data of this topic epoch: rebuilding every feed from kafka",
                extra={"redis_epoch": previous, "topic_epoch": self.epoch},
            )
            await self.store.reset(self.epoch)
        consumer = make_consumer(self.settings, group_id=self.settings.history_group)
        self._consumer = consumer
        consumer.subscribe([self.settings.topic], listener=_Positioner(self, consumer))
        await consumer.start()
        loop = asyncio.get_running_loop()
        next_check = loop.time() + LOSS_CHECK_S
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                if loop.time() >= next_check:
                    next_check = loop.time() + LOSS_CHECK_S
                    if await self.store.epoch() is None:
                        await self._rebuild(consumer, consumer.assignment())
                        continue
                for tp, records in batches.items():
                    if not await self._apply(tp, records):
                        await self._rebuild(consumer, consumer.assignment())
                        break
                    await consumer.commit({tp: records[-1].offset + 1})
                    self._next[tp] = records[-1].offset + 1
                self._check_caught_up(consumer)
        finally:
            await consumer.stop()

    async def _apply(self, tp: TopicPartition, records: list[Any]) -> bool:
        """Apply ``records`` in order; False if Redis lost its data meanwhile."""
        for record in records:
            try:
                event = Event.parse(record.value)
            except WireError:
                log.error("skipping a record that is not a livefeed event",
                          extra={"partition": tp.partition, "offset": record.offset})
                continue
            result = await self.store.apply(event, Cursor(self.epoch, tp.partition, record.offset), watermark=True)
            if result < 0:
                return False
            self.applied += result
        return True

    async def _rebuild(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        log.warning("redis lost livefeed's data: rebuilding every feed from kafka")
        self.state = Readiness.rebuilding
        await self.store.reset(self.epoch)
        await self.position(consumer, partitions)

    async def position(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        """Seek each partition to just after its watermark, or to the beginning if it has none."""
        rebuild: list[TopicPartition] = []
        for tp in partitions:
            watermark = await self.store.watermark(tp.partition)
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
            self.state = Readiness.rebuilding
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

"""The Kafka pump: reads every partition (no consumer group) into the hub and writes what it returns.

At start it reads back ``LIVEFEED_FANOUT_WARMUP`` events per partition so reconnecting readers
can resume, and says when it has caught up (:class:`CatchUp`, no I/O), so the app opens its
ports only then and a new reader never receives old events as live.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kafka import make_consumer, read_topic_epoch, topic_partitions, wait_for_kafka
from shared.settings import FanoutSettings
from shared.wire import event_or_none

from .hub import Hub, Subscriber
from .sinks import deliver_coalesced
from .streams import Encoded

__all__ = ["COALESCE_MAX", "CatchUp", "Pump", "open_pump", "warmup_start"]

log = logging.getLogger("livefeed.fanout")

COALESCE_MAX = 64
"""Events written to a reader in one write at most: bounds the joined buffer's memory."""

Batches = Mapping[Any, list[Any]]
"""What one ``getmany`` returns: each TopicPartition's records, in offset order."""


def warmup_start(begin: int, end: int, warmup: int) -> int:
    """Where to start reading a partition: ``warmup`` events before its ``end``, never before its ``begin``."""
    return max(begin, end - warmup)


class CatchUp:
    """Whether every partition has been read up to the end it had at start.

    Build it with each partition's start and end offset, then pass :meth:`advance` the last
    offset of every batch read; :attr:`done` turns true once no partition is behind (at once
    if there was nothing to read back) and stays true.
    """

    __slots__ = ("_behind",)

    def __init__(self, starts: Mapping[int, int], ends: Mapping[int, int]) -> None:
        self._behind = {partition: end for partition, end in ends.items() if end > starts[partition]}

    @property
    def done(self) -> bool:
        return not self._behind

    def advance(self, partition: int, last_offset: int) -> None:
        """Record that ``partition`` has been read up to ``last_offset`` (inclusive)."""
        if last_offset + 1 >= self._behind.get(partition, 0):
            self._behind.pop(partition, None)


class Pump:
    """Feeds every record of the topic to a hub in Kafka order and writes each delivery to its readers."""

    def __init__(self, consumer: AIOKafkaConsumer, epoch: str, partitions: list[TopicPartition], warmup: int) -> None:
        self.consumer = consumer
        self.epoch = epoch
        self.partitions = partitions
        self.warmup = warmup

    async def run(self, hub: Hub, on_caught_up: Callable[[], Awaitable[None]]) -> None:
        """Read back the warm-up, await ``on_caught_up`` once caught up, then keep pumping until cancelled.

        ``hub`` must be new: the pump tells it where each partition starts.
        """
        catch_up = await self._rewind(hub)
        while not catch_up.done:
            for tp, records in (await self._pump(hub)).items():
                if records:
                    catch_up.advance(tp.partition, records[-1].offset)
        await on_caught_up()
        while True:
            await self._pump(hub)

    async def _rewind(self, hub: Hub) -> CatchUp:
        """Seek every partition back by the warm-up, tell the hub where each starts, and what catching up means."""
        self.consumer.assign(self.partitions)
        ends = await self.consumer.end_offsets(self.partitions)
        begins = await self.consumer.beginning_offsets(self.partitions)
        starts: dict[int, int] = {}
        for tp in self.partitions:
            start = starts[tp.partition] = warmup_start(begins[tp], ends[tp], self.warmup)
            self.consumer.seek(tp, start)
            hub.start_partition(tp.partition, start)
        log.info("fanout warming up", extra={"epoch": self.epoch, "partitions": len(self.partitions)})
        return CatchUp(starts, {tp.partition: ends[tp] for tp in self.partitions})

    async def _pump(self, hub: Hub) -> Batches:
        """Read one batch, publish it to the hub and write its deliveries, at most ``COALESCE_MAX`` per write."""
        batches: Batches = await self.consumer.getmany(timeout_ms=100)
        for tp in self.partitions:
            end = self.consumer.highwater(tp)
            if end is not None:
                hub.note_end(tp.partition, end)
        deliveries = _publish(hub, batches)
        while chunk := list(itertools.islice(deliveries, COALESCE_MAX)):
            deliver_coalesced(chunk)
        return batches


@contextlib.asynccontextmanager
async def open_pump(settings: FanoutSettings) -> AsyncIterator[Pump]:
    """Wait for Kafka and learn the topic's epoch and partitions; the consumer stops on leaving."""
    await wait_for_kafka(settings)
    epoch = await read_topic_epoch(settings)
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, settings.topic)
        tps = [TopicPartition(settings.topic, p) for p in sorted(partitions)]
        yield Pump(consumer, epoch, tps, settings.fanout_warmup)
    finally:
        await consumer.stop()


def _publish(hub: Hub, batches: Batches) -> Iterator[tuple[Encoded, list[Subscriber]]]:
    """Publish every record to the hub, in order, yielding each event that has readers, with them."""
    for tp, records in batches.items():
        for record in records:
            event = event_or_none(record.value, tp.partition, record.offset)
            if event is None:
                continue
            delivery = hub.publish(tp.partition, record.offset, event)
            if delivery.recipients:
                yield delivery.message, delivery.recipients

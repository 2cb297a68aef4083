"""The Kafka pump: reads every partition (no consumer group) into the hub and writes what it returns.

At start it reads back ``LIVEFEED_FANOUT_WARMUP`` events per partition so reconnecting readers
can resume, and says when it has caught up (:class:`CatchUp`, no I/O), so the app opens its
ports only then and a new reader never receives old events as live. Afterwards
:meth:`Pump.readiness` says whether it still is: caught up, and Kafka still answering its fetches.

Its metrics cost one counter increment per batch and one histogram observation per event that
has readers, never anything per reader.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kafka import make_consumer, read_topic_epoch, stop_consumer, topic_partitions, wait_for_kafka
from shared.metrics import FANOUT_DELIVERIES, PUBLISH_TO_DELIVERY_SECONDS, LagGauge
from shared.settings import FanoutSettings
from shared.wire import event_or_none

from .hub import Hub, Subscriber
from .sinks import deliver_coalesced
from .streams import Encoded

__all__ = ["COALESCE_MAX", "FETCH_STALE_S", "CatchUp", "Pump", "open_pump", "warmup_start"]

log = logging.getLogger("livefeed.fanout")

COALESCE_MAX = 64
"""Events written to a reader in one write at most: bounds the joined buffer's memory."""

FETCH_STALE_S = 10.0
"""A partition Kafka has not answered a fetch for in this long makes the fanout unready.

The consumer fetches continuously (the broker holds an empty fetch for ``fetch_max_wait_ms``,
5 ms), so a live broker answers many times a second, however quiet the topic.
"""
LAG_EVERY_S = 1.0
"""How often the consumer-lag gauge is updated."""

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
        self.caught_up = False
        self._ends: dict[int, int | None] = {}
        self._next: dict[int, int] = {}
        self._lag = LagGauge("fanout")
        self._lag_due = 0.0

    def readiness(self) -> dict[str, Any]:
        """``{"status": "ready" | "catching_up" | "kafka_stalled", ...}``: what ``/readyz`` answers."""
        now_ms = time.time() * 1000
        polled = [self.consumer.last_poll_timestamp(tp) for tp in self.partitions]
        oldest = None if None in polled else max(now_ms - at for at in polled if at is not None)
        if not self.caught_up:
            status = "catching_up"
        elif oldest is None or oldest > FETCH_STALE_S * 1000:
            status = "kafka_stalled"
        else:
            status = "ready"
        lag = {str(p): max(0, end - self._next.get(p, end)) for p, end in self._ends.items() if end is not None}
        return {"status": status, "epoch": self.epoch, "partitions": len(self.partitions),
                "last_fetch_ms": None if oldest is None else round(oldest), "lag": lag}

    async def run(self, hub: Hub, on_caught_up: Callable[[], Awaitable[None]]) -> None:
        """Read back the warm-up, await ``on_caught_up`` once caught up, then keep pumping until cancelled.

        ``hub`` must be new: the pump tells it where each partition starts.
        """
        catch_up = await self._rewind(hub)
        while not catch_up.done:
            for tp, records in (await self._pump(hub)).items():
                if records:
                    catch_up.advance(tp.partition, records[-1].offset)
        self.caught_up = True
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
            self._next[tp.partition] = start
        log.info("fanout warming up", extra={"epoch": self.epoch, "partitions": len(self.partitions)})
        return CatchUp(starts, {tp.partition: ends[tp] for tp in self.partitions})

    async def _pump(self, hub: Hub) -> Batches:
        """Read one batch, publish it to the hub and write its deliveries, at most ``COALESCE_MAX`` per write."""
        batches: Batches = await self.consumer.getmany(timeout_ms=100)
        for tp in self.partitions:
            end = self._ends[tp.partition] = self.consumer.highwater(tp)
            if end is not None:
                hub.note_end(tp.partition, end)
        accepted_ms: list[float] = []
        deliveries = _publish(hub, batches, accepted_ms)
        while chunk := list(itertools.islice(deliveries, COALESCE_MAX)):
            deliver_coalesced(chunk)
            _delivered(chunk, accepted_ms)
            accepted_ms.clear()
        for tp, records in batches.items():
            if records:
                self._next[tp.partition] = records[-1].offset + 1
        now = time.monotonic()
        if now >= self._lag_due:
            self._lag_due = now + LAG_EVERY_S
            self._lag.update(self._ends, self._next)
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
        await stop_consumer(consumer)


def _delivered(chunk: list[tuple[Encoded, list[Subscriber]]], accepted_ms: list[float]) -> None:
    """Count the writes of ``chunk`` (one increment) and how long after its acceptance each event went out."""
    FANOUT_DELIVERIES.inc(sum(len(recipients) for _, recipients in chunk))
    now_ms = time.time() * 1000
    for ms in accepted_ms:
        PUBLISH_TO_DELIVERY_SECONDS.observe(max(0.0, now_ms - ms) / 1000)


def _publish(hub: Hub, batches: Batches, accepted_ms: list[float]) -> Iterator[tuple[Encoded, list[Subscriber]]]:
    """Publish every record to the hub, in order, yielding each event that has readers, with them.

    Appends each yielded event's ``accepted_ms`` to ``accepted_ms``, for the latency histogram.
    """
    for tp, records in batches.items():
        for record in records:
            event = event_or_none(record.value, tp.partition, record.offset)
            if event is None:
                continue
            delivery = hub.publish(tp.partition, record.offset, event)
            if delivery.recipients:
                accepted_ms.append(event.accepted_ms)
                yield delivery.message, delivery.recipients

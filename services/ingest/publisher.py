"""The one way a write reaches Kafka.

Each write becomes one event in Kafka; the answer is 2xx only once Kafka acknowledged it
(acks=all, idempotent producer). After the acknowledgement the item is also written to the
Redis store, so the newsroom reads its own write at once; history applies the same event
again from Kafka, which changes nothing.

Kafka is the only hard dependency of a publish: the write-through goes through the Redis
breaker and is skipped when Redis is slow or down.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from shared.breaker import Breaker, StoreUnavailable
from shared.cursor import Cursor
from shared.errors import ApiError
from shared.kafka import feed_partitioner
from shared.metrics import PRODUCE_SECONDS
from shared.settings import IngestSettings
from shared.store import ItemStore
from shared.wire import Event

__all__ = ["Publisher"]

log = logging.getLogger("livefeed.ingest")

_PRODUCE_ACKED = PRODUCE_SECONDS.labels("acknowledged")
_PRODUCE_FAILED = PRODUCE_SECONDS.labels("unacknowledged")


@dataclass
class Publisher:
    """The one way a write reaches Kafka: send an event, get its cursor once Kafka has it."""

    settings: IngestSettings
    producer: AIOKafkaProducer
    store: ItemStore
    breaker: Breaker
    epoch: str

    async def send(self, event: Event) -> Cursor:
        """Publish ``event``; return its cursor once Kafka has it, or raise a 503.

        The whole of it takes at most ``LIVEFEED_KAFKA_TIMEOUT_S``, the reachability check
        included (a paused broker accepts a new connection and then never answers it). When the
        broker leading the feed's partition cannot be reached, the write fails before anything is
        handed to the producer, so that 503 means "not stored". Once handed over, the idempotent producer
        retries until Kafka takes it; if no acknowledgement comes in time the answer is a
        503 that says the outcome is unknown, and a retry with the same Idempotency-Key
        reuses the item id, so it can never make a second item.
        """
        timeout = self.settings.kafka_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            reachable = await asyncio.wait_for(self._leader_reachable(event.feed), timeout)
        except TimeoutError:
            reachable = False
        if not reachable:
            log.error("kafka unreachable: write refused", extra={"feed": event.feed})
            raise ApiError(
                503,
                "kafka_unavailable",
                "Kafka cannot be reached, so the write was not stored. Retry shortly with the same Idempotency-Key.",
                headers={"Retry-After": "2"},
            )
        handed_over = loop.time()
        try:
            metadata = await asyncio.wait_for(
                self.producer.send_and_wait(self.settings.topic, event.serialize(), key=event.feed.encode()),
                max(0.1, deadline - loop.time()),
            )
        except (KafkaError, TimeoutError) as exc:
            _PRODUCE_FAILED.observe(loop.time() - handed_over)
            log.error("kafka write not acknowledged", extra={"error": repr(exc), "feed": event.feed})
            raise ApiError(
                503,
                "kafka_unacknowledged",
                f"Kafka did not acknowledge the write within {timeout:g}s; it may still be stored. "
                "Retry with the same Idempotency-Key: the retry cannot create a second item.",
                headers={"Retry-After": "2"},
            ) from exc
        _PRODUCE_ACKED.observe(loop.time() - handed_over)
        cursor = Cursor(self.epoch, metadata.partition, metadata.offset)
        try:
            await self.breaker.call(lambda: self.store.apply(event, cursor))
        except StoreUnavailable:
            log.warning("write-through to redis skipped; history will apply it from kafka", extra={"feed": event.feed})
        return cursor

    async def _leader_reachable(self, feed: str) -> bool:
        """Whether the broker leading ``feed``'s partition takes a connection, after one metadata
        refresh if it does not: on a cluster, a dead broker's partitions move to the others within
        seconds, and the feeds led elsewhere must not wait for it at all."""
        client = self.producer.client
        await client.add_topic(self.settings.topic)
        for attempt in range(2):
            if attempt:
                await client.force_metadata_update()
            partitions = client.cluster.partitions_for_topic(self.settings.topic)
            if not partitions:
                continue
            leader = client.cluster.leader_for_partition(
                TopicPartition(self.settings.topic, feed_partitioner(len(partitions))(feed)))
            try:
                if leader is not None and leader >= 0 and await client.ready(leader):
                    return True
            except KafkaError:
                pass
        return False

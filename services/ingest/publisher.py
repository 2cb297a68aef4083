"""Everything a write needs, built once per process, and the one way a write reaches Kafka.

Each write becomes one event in Kafka; the answer is 2xx only once Kafka acknowledged it
(acks=all, idempotent producer). After the acknowledgement the item is also written to the
Redis store, so the newsroom reads its own write at once; history applies the same event
again from Kafka, which changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.cursor import Cursor
from shared.http import ApiError
from shared.settings import IngestSettings
from shared.store import ItemStore
from shared.wire import Event

from .auth import RateLimiter, TokenCheck
from .idempotency import IdempotencyStore

__all__ = ["KAFKA_TIMEOUT_S", "Ingest"]

log = logging.getLogger("livefeed.ingest")

KAFKA_TIMEOUT_S = 15.0


@dataclass
class Ingest:
    """Everything a request handler needs, built once by the lifespan."""

    settings: IngestSettings
    producer: AIOKafkaProducer
    store: ItemStore
    idempotency: IdempotencyStore
    tokens: TokenCheck
    limiter: RateLimiter
    epoch: str
    known_feeds: set[str] = field(default_factory=set)

    async def send(self, event: Event) -> Cursor:
        """Publish ``event``; return its cursor once Kafka has it, or raise a 503.

        A broker that cannot be reached fails the write before anything is handed to the
        producer, so that 503 means "not stored". Once handed over, the idempotent producer
        retries until Kafka takes it; if no acknowledgement comes in time the answer is a
        503 that says the outcome is unknown, and a retry with the same Idempotency-Key
        reuses the item id, so it can never make a second item.
        """
        if not await self._kafka_reachable():
            log.error("kafka unreachable: write refused", extra={"feed": event.feed})
            raise ApiError(
                503,
                "kafka_unavailable",
                "Kafka cannot be reached, so the write was not stored. Retry shortly with the same Idempotency-Key.",
                headers={"Retry-After": "2"},
            )
        try:
            metadata = await asyncio.wait_for(
                self.producer.send_and_wait(self.settings.topic, event.serialize(), key=event.feed.encode()),
                KAFKA_TIMEOUT_S,
            )
        except (KafkaError, TimeoutError) as exc:
            log.error("kafka write not acknowledged", extra={"error": repr(exc), "feed": event.feed})
            raise ApiError(
                503,
                "kafka_unacknowledged",
                f"Kafka did not acknowledge the write within {KAFKA_TIMEOUT_S:.0f}s; it may still be stored. "
                "Retry with the same Idempotency-Key: the retry cannot create a second item.",
                headers={"Retry-After": "2"},
            ) from exc
        cursor = Cursor(self.epoch, metadata.partition, metadata.offset)
        try:
            await self.store.apply(event, cursor)
        except Exception:
            log.warning("write-through to redis failed; history will apply it from kafka", exc_info=True)
        return cursor


    async def feed_allowed(self, feed: str) -> bool:
        """Whether a post may go to ``feed``: it exists, or there is room for one more feed.

        Feeds seen here are remembered, so a post to a known feed costs no Redis round trip.
        """
        if feed in self.known_feeds:
            return True
        if await self.store.has_feed(feed) or await self.store.feed_count() < self.settings.max_feeds:
            self.known_feeds.add(feed)
            return True
        return False

    async def _kafka_reachable(self) -> bool:
        client = self.producer.client
        brokers = client.cluster.brokers()
        try:
            return bool(brokers) and all([await client.ready(b.nodeId) for b in brokers])
        except KafkaError:
            return False

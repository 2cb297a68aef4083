"""Everything a write needs, built once per process, and the one way a write reaches Kafka.

Each write becomes one event in Kafka; the answer is 2xx only once Kafka acknowledged it
(acks=all, idempotent producer). After the acknowledgement the item is also written to the
Redis store, so the newsroom reads its own write at once; history applies the same event
again from Kafka, which changes nothing.

Kafka is the only hard dependency of a publish: every Redis call on that path goes through
:attr:`Ingest.breaker`, and when Redis is slow or down the write goes ahead without it (the
feed cap is then not checked: it fails open, for feeds this process has not seen).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.breaker import Breaker, StoreUnavailable
from shared.cursor import Cursor
from shared.errors import ApiError
from shared.settings import IngestSettings
from shared.store import ItemStore
from shared.wire import Event

from .auth import RateLimiter, TokenCheck
from .idempotency import IdempotencyStore, LocalAnswers

__all__ = ["Ingest"]

log = logging.getLogger("livefeed.ingest")


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
    breaker: Breaker = field(default_factory=Breaker)
    local_answers: LocalAnswers = field(default_factory=lambda: LocalAnswers(ttl_s=86_400))
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
        timeout = self.settings.kafka_timeout_s
        try:
            metadata = await asyncio.wait_for(
                self.producer.send_and_wait(self.settings.topic, event.serialize(), key=event.feed.encode()),
                timeout,
            )
        except (KafkaError, TimeoutError) as exc:
            log.error("kafka write not acknowledged", extra={"error": repr(exc), "feed": event.feed})
            raise ApiError(
                503,
                "kafka_unacknowledged",
                f"Kafka did not acknowledge the write within {timeout:g}s; it may still be stored. "
                "Retry with the same Idempotency-Key: the retry cannot create a second item.",
                headers={"Retry-After": "2"},
            ) from exc
        cursor = Cursor(self.epoch, metadata.partition, metadata.offset)
        try:
            await self.breaker.call(lambda: self.store.apply(event, cursor))
        except StoreUnavailable:
            log.warning("write-through to redis skipped; history will apply it from kafka", extra={"feed": event.feed})
        return cursor

    async def feed_allowed(self, feed: str) -> bool:
        """Whether a post may go to ``feed``: it exists, or there is room for one more feed.

        Feeds seen here are remembered, so a post to a known feed costs no Redis round trip.
        While Redis cannot answer, the cap fails open: a newsroom keeps publishing in an outage.
        """
        if feed in self.known_feeds:
            return True
        try:
            known = await self.breaker.call(lambda: self.store.has_feed(feed))
            allowed = known or await self.breaker.call(self.store.feed_count) < self.settings.max_feeds
        except StoreUnavailable:
            log.warning("feed cap not checked: redis unavailable", extra={"feed": feed})
            return True
        if allowed:
            self.known_feeds.add(feed)
        return allowed

    async def _kafka_reachable(self) -> bool:
        client = self.producer.client
        brokers = client.cluster.brokers()
        try:
            return bool(brokers) and all([await client.ready(b.nodeId) for b in brokers])
        except KafkaError:
            return False

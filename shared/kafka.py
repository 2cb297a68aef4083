"""Kafka helpers: the producer and consumers every service builds, the topic and its epoch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from aiokafka.partitioner import murmur2

from .settings import CommonSettings
from .topic_id import topic_epoch

__all__ = [
    "ensure_topic",
    "feed_partitioner",
    "make_consumer",
    "make_producer",
    "min_insync_replicas",
    "read_topic_epoch",
    "stop_consumer",
    "topic_epoch",
    "topic_partitions",
    "wait_for_kafka",
]

log = logging.getLogger(__name__)

CONSUMER_STOP_S = 5.0
"""How long a stopping consumer may take to close (its in-flight requests may wait for Kafka's
40 s request timeout): past it the process exits anyway. Kafka keeps the committed offsets,
and a consumer never commits before its effect, so nothing is lost."""


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop ``consumer`` within :data:`CONSUMER_STOP_S`, so a SIGTERM ends a service in seconds."""
    try:
        await asyncio.wait_for(consumer.stop(), CONSUMER_STOP_S)
    except TimeoutError:
        log.warning("kafka consumer did not stop in time; exiting without waiting", extra={"s": CONSUMER_STOP_S})


def make_producer(settings: CommonSettings) -> AIOKafkaProducer:
    """A producer whose acknowledged sends are durable: acks=all, idempotent, no batching delay."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
        request_timeout_ms=10_000,
        max_request_size=1_048_576,
    )


def make_consumer(
    settings: CommonSettings, *, group_id: str | None, group_instance_id: str | None = None
) -> AIOKafkaConsumer:
    """A consumer tuned for latency; offsets are committed by the caller after the effect.

    ``group_instance_id`` makes it a static member: restarted (even after kill -9) under the
    same id, it gets its partitions back at once instead of after the session timeout.
    """
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id,
        group_instance_id=group_instance_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,
        max_poll_records=2_000,
        isolation_level="read_committed",
    )


async def wait_for_kafka(settings: CommonSettings, timeout_s: float = 60.0) -> None:
    """Block until the topic exists (creating it if needed), or raise after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await ensure_topic(settings)
            return
        except Exception as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"Kafka at {settings.kafka_bootstrap} did not answer within {timeout_s:.0f}s: {exc}. "
                    "Is the broker running? (LIVEFEED_KAFKA_BOOTSTRAP)"
                ) from exc
            log.info("waiting for kafka", extra={"error": str(exc)})
            await asyncio.sleep(1.0)


def feed_partitioner(partitions: int) -> Callable[[str], int]:
    """The partition a feed's events go to: what the producer's default partitioner picks for the key.

    The topic's partition count must not change while livefeed runs (it would move feeds).
    """

    def partition_of(feed: str) -> int:
        return int(murmur2(feed.encode()) & 0x7FFFFFFF) % partitions

    return partition_of


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str, timeout_s: float = 30.0) -> set[int]:
    """The topic's partitions; a topic created a moment ago takes a metadata refresh to show them."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        cluster = await consumer._client.fetch_all_metadata()  # aiokafka has no public call for this
        partitions: set[int] = cluster.partitions_for_topic(topic) or set()
        if partitions:
            return partitions
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"topic {topic!r} has no partitions after {timeout_s:.0f}s")
        await asyncio.sleep(0.2)


def min_insync_replicas(replicas: int) -> int:
    """The in-sync replicas an acks=all write needs: a majority of ``replicas`` (2 of 3).

    A majority survives losing a minority of brokers for writes, and any acknowledged write is on
    a replica the next leader comes from; 1 of 1 on a single broker.
    """
    return replicas // 2 + 1


async def ensure_topic(settings: CommonSettings) -> None:
    """Create the events topic if it does not exist yet, with ``LIVEFEED_TOPIC_REPLICATION_FACTOR`` replicas.

    Kafka answers a create it refuses (more replicas than live brokers, say) with an error code,
    not an exception: it is raised here, so :func:`wait_for_kafka` retries and then names it.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        if settings.topic in await admin.list_topics():
            return
        replicas = settings.topic_replication_factor
        response = await admin.create_topics([NewTopic(
            settings.topic, settings.topic_partitions, replicas,
            topic_configs={"min.insync.replicas": str(min_insync_replicas(replicas))},
        )])
        for topic, code, *message in response.topic_errors:
            if code == TopicAlreadyExistsError.errno:
                return
            if code:
                raise for_code(code)(f"Kafka refused to create topic {topic!r} with {replicas} replicas: "
                                     f"{message[0] if message else ''}")
        log.info("created topic", extra={"topic": settings.topic, "replicas": replicas})
    finally:
        await admin.close()


async def read_topic_epoch(settings: CommonSettings) -> str:
    """The topic's epoch, for a service that has no producer of its own to ask with."""
    producer = make_producer(settings)
    await producer.start()
    try:
        return await topic_epoch(producer, settings.topic)
    finally:
        await producer.stop()

"""Read the real topic back in tests: the ground truth every other view must agree with."""

from __future__ import annotations

import time

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.stack import Stack
from shared.kafka import topic_partitions

Record = tuple[str, str, str, int]
"""(cursor, event type, item id, version): what a reader must see, in order."""


async def kafka_events(stack: Stack, feeds: set[str], epoch: str) -> dict[str, list[tuple[Record, frozenset[str]]]]:
    """Every event of ``feeds`` in Kafka, in order, with the tags a filter matches on."""
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.topology.kafka_bootstrap,
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, "livefeed.events")
        tps = [TopicPartition("livefeed.events", p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: dict[str, list[tuple[Record, frozenset[str]]]] = {f: [] for f in feeds}
        remaining = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 20
        while remaining and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                for record in records:
                    body = orjson.loads(record.value)
                    if body["feed"] in feeds:
                        cursor = f"{epoch}.{tp.partition}.{record.offset}"
                        tags = frozenset(body["item"].get("tags", ())) | frozenset(body.get("prev_tags", ()))
                        out[body["feed"]].append(
                            ((cursor, body["type"], body["item"]["id"], body["item"]["version"]), tags))
                    if record.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
        assert not remaining, "could not read the topic back"
        return out
    finally:
        await consumer.stop()

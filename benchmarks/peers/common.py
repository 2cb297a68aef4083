"""What every peer shares: reading the livefeed topic from its end, as the fanout does.

A peer tails every partition of the same topic with the same consumer settings as the fanout
(``shared.kafka.make_consumer``), starting at the end, and turns each record into the very
message livefeed sends (``Event.message``), so the peers carry the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator

from aiokafka import TopicPartition

from shared.cursor import Cursor
from shared.kafka import make_consumer, read_topic_epoch, topic_partitions, wait_for_kafka
from shared.settings import CommonSettings
from shared.wire import Event, WireError

__all__ = ["peer_arguments", "tail_topic"]

log = logging.getLogger("livefeed.bench.peer")


def peer_arguments(description: str) -> argparse.ArgumentParser:
    """The command line every peer takes: where to listen and where Kafka is."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kafka", required=True, help="Kafka bootstrap, e.g. 127.0.0.1:49092")
    parser.add_argument("--topic", default="livefeed.events")
    return parser


async def tail_topic(kafka: str, topic: str, ready: asyncio.Event) -> AsyncIterator[tuple[str, bytes]]:
    """Yield ``(feed, reader message)`` for every event published from now on; set ``ready`` once positioned."""
    settings = CommonSettings(kafka_bootstrap=kafka, topic=topic)
    await wait_for_kafka(settings)
    epoch = await read_topic_epoch(settings)
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            for tp, records in batches.items():
                for record in records:
                    try:
                        event = Event.parse(record.value)
                    except WireError:
                        continue
                    yield event.feed, event.message(Cursor(epoch, tp.partition, record.offset))
    finally:
        await consumer.stop()

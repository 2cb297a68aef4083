"""History with several worker processes: worker 0 alone consumes Kafka; every worker serves reads.

One consumer is the correct number: when Redis loses its data the consumer resets the whole
store and replays every partition from the start, and two consumers each owning some partitions
would each reset the other's progress away (or miss the loss) with no order between them. Reads,
the work that needs the cores, come from Redis and are the same in every worker.

So worker 0 runs :class:`~services.history.consumer.HistoryConsumer` and publishes its status in
Redis (``meta:history-status``, :mod:`shared.keys`) every second, for ``STATUS_TTL_S``; the other
workers keep a :class:`ConsumerMirror` of it, so every worker's ``/readyz`` tells the consumer's
truth, and every worker refuses a partial list while it rebuilds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
import redis.asyncio as aioredis

from shared import keys
from shared.breaker import STORE_ERRORS

from .consumer import HistoryConsumer, Readiness

__all__ = ["PUBLISH_EVERY_S", "STATUS_TTL_S", "ConsumerMirror", "announce_status", "publish_status"]

PUBLISH_EVERY_S = 1.0
READ_EVERY_S = 0.5
STATUS_TTL_S = 3.0
"""A status older than this is gone: worker 0 is not running, and the others say ``starting``."""


async def publish_status(redis: aioredis.Redis, consumer: HistoryConsumer) -> None:
    """Worker 0: write the consumer's status for the other workers every second, until cancelled."""
    key = keys.key("status")
    while True:
        with contextlib.suppress(*STORE_ERRORS):
            await redis.set(key, orjson.dumps(consumer.status()), px=int(STATUS_TTL_S * 1000))
        await asyncio.sleep(PUBLISH_EVERY_S)


async def announce_status(redis: aioredis.Redis, consumer: HistoryConsumer) -> None:
    """Worker 0, before it empties the store to rebuild it: write ``rebuilding`` now and wait until every
    mirror has read it (two of their reads), so none serves a list from the store as it refills."""
    with contextlib.suppress(*STORE_ERRORS):
        await redis.set(keys.key("status"), orjson.dumps(consumer.status()), px=int(STATUS_TTL_S * 1000))
    await asyncio.sleep(2 * READ_EVERY_S + 0.1)


class ConsumerMirror:
    """A worker's view of the consumer in worker 0: :attr:`state` and :meth:`status` as the consumer's own.

    :meth:`update` takes what was read from Redis (pure, so it is unit-tested); :meth:`run` reads it.
    """

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        self._body: dict[str, Any] | None = None
        self._error: str | None = None

    @property
    def state(self) -> Readiness:
        status = self.status()["status"]
        return Readiness(status) if status in Readiness.__members__ else Readiness.starting

    def status(self) -> dict[str, Any]:
        if self._error is not None:
            return {"status": Readiness.redis_unavailable.value, "epoch": self.epoch, "error": self._error}
        if self._body is None:
            return {"status": Readiness.starting.value, "epoch": self.epoch,
                    "error": "history's consuming worker (0) has not reported for "
                             f"{STATUS_TTL_S:g} s"}
        return dict(self._body)

    def update(self, raw: bytes | None, error: BaseException | None = None) -> None:
        """Take the status read from Redis (``None``: expired), or the error reading it raised."""
        if error is not None:
            self._error = f"redis unavailable ({type(error).__name__})"
            return
        self._error = None
        try:
            body = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            body = None
        self._body = body if isinstance(body, dict) and body.get("epoch") == self.epoch else None

    async def run(self, redis: aioredis.Redis) -> None:
        """Read worker 0's status twice a second, until cancelled."""
        key = keys.key("status")
        while True:
            started = time.monotonic()
            try:
                raw = await redis.get(key)
                self.update(raw.encode() if isinstance(raw, str) else raw)
            except STORE_ERRORS as exc:
                self.update(None, exc)
            await asyncio.sleep(max(0.0, READ_EVERY_S - (time.monotonic() - started)))

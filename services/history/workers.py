"""History with several worker processes: worker 0 alone consumes Kafka; every worker serves reads.

One consumer per instance is enough: reads, the work that needs the cores, come from Redis and
are the same in every worker. Several instances (hosts, or ``deploy/stack.py up --history N``)
each run one consumer in the same group, and ``rebuild.py`` keeps them from undoing each other's
work when Redis loses its data.

So worker 0 runs :class:`~services.history.consumer.HistoryConsumer` and publishes its status in
Redis (``meta:history-status:{instance}``, :mod:`shared.keys`) every second, for ``STATUS_TTL_S``;
the instance's other workers keep a :class:`ConsumerMirror` of it, so every worker's ``/readyz``
tells the consumer's truth, and every worker refuses a partial list while any partition rebuilds.
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

from .consumer import LOSS_CHECK_S, HistoryConsumer, Readiness

__all__ = ["ANNOUNCE_S", "PUBLISH_EVERY_S", "STATUS_TTL_S", "ConsumerMirror", "announce_status", "publish_status"]

PUBLISH_EVERY_S = 1.0
READ_EVERY_S = 0.5
STATUS_TTL_S = 3.0
"""A status older than this is gone: worker 0 is not running, and the others say ``starting``."""
ANNOUNCE_S = LOSS_CHECK_S + PUBLISH_EVERY_S + 2 * READ_EVERY_S + 0.1
"""How long the instance emptying the store waits after marking it rebuilding: every other instance's
consumer looks at Redis within a second, publishes its status within another, and its workers read it
within two reads; none then serves from the store as it refills."""


async def publish_status(redis: aioredis.Redis, consumer: HistoryConsumer, instance: str) -> None:
    """Worker 0: write the consumer's status for the instance's other workers every second, until cancelled."""
    key = keys.key("status", instance=instance)
    while True:
        with contextlib.suppress(*STORE_ERRORS):
            await redis.set(key, orjson.dumps(consumer.status()), px=int(STATUS_TTL_S * 1000))
        await asyncio.sleep(PUBLISH_EVERY_S)


async def announce_status(redis: aioredis.Redis, consumer: HistoryConsumer, instance: str,
                          wait_s: float = ANNOUNCE_S) -> None:
    """Worker 0, before it empties the store to rebuild it: write ``rebuilding`` now and wait ``wait_s``
    until every worker of every instance knows, so none serves from the store as it refills."""
    with contextlib.suppress(*STORE_ERRORS):
        await redis.set(keys.key("status", instance=instance), orjson.dumps(consumer.status()),
                        px=int(STATUS_TTL_S * 1000))
    await asyncio.sleep(wait_s)


class ConsumerMirror:
    """A worker's view of the consumer in worker 0: :attr:`state` and :meth:`status` as the consumer's own.

    :meth:`update` takes what was read from Redis (pure, so it is unit-tested); :meth:`run` reads it.
    """

    def __init__(self, epoch: str, instance: str) -> None:
        self.epoch = epoch
        self.instance = instance
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
        key = keys.key("status", instance=self.instance)
        while True:
            started = time.monotonic()
            try:
                raw = await redis.get(key)
                self.update(raw.encode() if isinstance(raw, str) else raw)
            except STORE_ERRORS as exc:
                self.update(None, exc)
            await asyncio.sleep(max(0.0, READ_EVERY_S - (time.monotonic() - started)))

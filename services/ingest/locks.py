"""A short per-item lock in Redis, so two edits of one item cannot both claim the next version."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from shared import keys
from shared.breaker import Breaker, StoreUnavailable

__all__ = ["ItemBusy", "item_lock"]

_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class ItemBusy(Exception):
    """Another edit of the item held the lock for longer than we were willing to wait."""


@asynccontextmanager
async def item_lock(
    redis: aioredis.Redis, breaker: Breaker, feed: str, item_id: str, *, hold_s: float = 10.0, wait_s: float = 5.0
) -> AsyncIterator[None]:
    """Hold the ``lock:{feed}:{id}`` key (:mod:`shared.keys`) for the body; it expires by itself after ``hold_s``.

    Raises :class:`~shared.breaker.StoreUnavailable` when Redis cannot be reached; a lock that
    cannot be released then simply expires.
    """
    key = keys.key("lock", feed=feed, id=item_id)
    owner = uuid.uuid4().hex
    deadline = time.monotonic() + wait_s
    while not await breaker.call(lambda: redis.set(key, owner, nx=True, px=int(hold_s * 1000))):
        if time.monotonic() > deadline:
            raise ItemBusy(f"{feed}/{item_id}")
        await asyncio.sleep(0.005)
    try:
        yield
    finally:
        with contextlib.suppress(StoreUnavailable):
            await breaker.call(lambda: redis.eval(_RELEASE, 1, key, owner))

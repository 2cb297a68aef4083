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
from shared.breaker import STORE_ERRORS, Breaker, StoreUnavailable

__all__ = ["ItemBusy", "item_lock"]

_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class ItemBusy(Exception):
    """Another edit of the item held the lock for longer than we were willing to wait."""


@asynccontextmanager
async def item_lock(
    redis: aioredis.Redis, breaker: Breaker, feed: str, item_id: str, *, hold_s: float = 10.0, wait_s: float = 5.0
) -> AsyncIterator[None]:
    """Hold the ``lock:{feed}:{id}`` key (:mod:`shared.keys`) for the body; it expires by itself after ``hold_s``.

    Raises :class:`~shared.breaker.StoreUnavailable` when Redis cannot be reached; the lock is
    then released in the background once Redis answers (or expires by itself).
    """
    key = keys.key("lock", feed=feed, id=item_id)
    owner = uuid.uuid4().hex
    deadline = time.monotonic() + wait_s
    try:
        while not await breaker.call(lambda: redis.set(key, owner, nx=True, px=int(hold_s * 1000))):
            if time.monotonic() > deadline:
                raise ItemBusy(f"{feed}/{item_id}")
            await asyncio.sleep(0.005)
    except StoreUnavailable:
        _release_later(redis, key, owner, hold_s)
        raise
    try:
        yield
    finally:
        try:
            await breaker.call(lambda: redis.eval(_RELEASE, 1, key, owner))
        except StoreUnavailable:
            _release_later(redis, key, owner, hold_s)


_releasing: set[asyncio.Task[None]] = set()


def _release_later(redis: aioredis.Redis, key: str, owner: str, hold_s: float) -> None:
    """Release our lock once Redis answers again, if it ever took it.

    A SET that timed out on our side (a paused Redis) may still be carried out when Redis
    resumes: the lock is then held by a request that has given up, and every edit of the item
    would wait for it to expire. The stale SET may arrive after a first release, so this keeps
    trying until the lock would have expired; only our own lock is deleted (the release checks
    the owner).
    """

    async def release() -> None:
        expires = time.monotonic() + hold_s
        while time.monotonic() < expires:
            with contextlib.suppress(*STORE_ERRORS):
                if await redis.eval(_RELEASE, 1, key, owner):
                    return
            await asyncio.sleep(0.25)

    task = asyncio.get_running_loop().create_task(release())
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)

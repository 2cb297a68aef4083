"""Idempotency-Key support: a retried write returns the first answer and publishes nothing new.

A key's record lives in Redis (``lf:idem:{scope}:{key}``) for the configured TTL. The first
request holds a lease while it publishes; a concurrent retry waits for its answer; a retry
after a failed attempt takes over and reuses the item id the first attempt chose, so even an
ambiguous Kafka failure cannot make two different items of one post.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis

__all__ = ["Claim", "IdempotencyStore"]

_BEGIN = """
local k = KEYS[1]
local fp, owner, item_id = ARGV[1], ARGV[2], ARGV[3]
local now, lease_ms, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local cur = redis.call('HMGET', k, 'fp', 'state', 'status', 'body', 'item_id', 'lease')
if not cur[1] then
  redis.call('HSET', k, 'fp', fp, 'state', 'pending', 'owner', owner, 'item_id', item_id,
             'lease', now + lease_ms)
  redis.call('EXPIRE', k, ttl)
  return {'new', item_id}
end
if cur[1] ~= fp then return {'mismatch'} end
if cur[2] == 'done' then return {'done', cur[3], cur[4]} end
if cur[2] == 'failed' or tonumber(cur[6]) < now then
  redis.call('HSET', k, 'state', 'pending', 'owner', owner, 'lease', now + lease_ms)
  return {'new', cur[5]}
end
return {'busy'}
"""

_FINISH = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
if ARGV[2] == 'done' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[3], 'body', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'state', 'failed')
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Claim:
    """What :meth:`IdempotencyStore.begin` decided for one request."""

    kind: Literal["new", "done", "mismatch", "busy"]
    owner: str = ""
    item_id: str = ""
    status: int = 0
    body: bytes = b""


class IdempotencyStore:
    def __init__(self, redis: aioredis.Redis, *, ttl_s: int, lease_s: float = 15.0) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.lease_ms = int(lease_s * 1000)
        self._begin = redis.register_script(_BEGIN)
        self._finish = redis.register_script(_FINISH)

    @staticmethod
    def redis_key(scope: str, key: str) -> str:
        return f"lf:idem:{scope}:{key}"

    async def begin(self, scope: str, key: str, fingerprint: str, item_id: str, *, wait_s: float = 10.0) -> Claim:
        """Claim ``key`` for this request, or return the stored answer of an earlier one.

        A ``new`` claim must end with :meth:`finish` (``done`` on success, else failed).
        While another request holds the key this waits up to ``wait_s``, then says ``busy``.
        """
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + wait_s
        while True:
            result = await self._begin(
                keys=[self.redis_key(scope, key)],
                args=[fingerprint, owner, item_id, int(time.time() * 1000), self.lease_ms, self.ttl_s],
            )
            kind = result[0].decode()
            if kind == "new":
                return Claim("new", owner=owner, item_id=result[1].decode())
            if kind == "done":
                return Claim("done", status=int(result[1]), body=bytes(result[2]))
            if kind == "mismatch":
                return Claim("mismatch")
            if time.monotonic() > deadline:
                return Claim("busy")
            await asyncio.sleep(0.02)

    async def finish(self, scope: str, key: str, claim: Claim, *, status: int | None, body: bytes = b"") -> None:
        """Record the answer (``status`` given) or mark the attempt failed (``status=None``)."""
        await self._finish(
            keys=[self.redis_key(scope, key)],
            args=[claim.owner, "done" if status is not None else "failed", status or 0, body],
        )

"""The write limit per credential: one token bucket in Redis, shared by every ingest process and worker.

The bucket is the ``rate:{credential}`` key (:mod:`shared.keys`), refilled and taken by one script,
so N ingest processes together allow ``LIVEFEED_WRITE_RATE_PER_S`` and ``LIVEFEED_WRITE_BURST``
per credential, not N times that. It runs on Redis's clock, so the hosts' clocks need not agree,
and expires once it would be full again, so an idle credential leaves no key behind.

While Redis cannot answer (the call times out after ``LIVEFEED_REDIS_TIMEOUT_S``, or the breaker
skips it for a second after a failure) each process counts on its own bucket instead
(:class:`~services.ingest.auth.RateLimiter`), as before: publishing goes on through a Redis outage,
so its limit does too, and the host allows at most N times the rate until Redis answers.
Refusing every write instead would turn a Redis outage into a publishing outage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from shared import keys
from shared.breaker import Breaker, StoreUnavailable

from .auth import RateLimiter

__all__ = ["SharedBucket", "WriteLimits"]

_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1]) or burst
local at = tonumber(held[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000000)
local wait_us = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait_us = math.ceil((1 - tokens) / rate * 1000000)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return wait_us
"""
"""Take one write from the bucket: 0, or the microseconds until one is back (then nothing is taken)."""

SharedBucket = Callable[[str], Awaitable[float]]
"""Takes one write of a credential from the shared bucket: 0, or the seconds to wait. Raises what Redis raises."""


class WriteLimits:
    """May this credential write now? The shared bucket when Redis answers, this process's own when not."""

    def __init__(self, shared: SharedBucket, local: RateLimiter, breaker: Breaker) -> None:
        self.shared = shared
        self.local = local
        self.breaker = breaker

    @classmethod
    def in_redis(cls, redis: aioredis.Redis, breaker: Breaker, rate: float, burst: int) -> WriteLimits:
        """Limits of ``rate`` writes a second, bursts of ``burst``, per credential, kept in ``redis``."""
        script = redis.register_script(_TAKE)

        async def take(credential: str) -> float:
            wait_us = await script(keys=[keys.key("rate", credential=credential)], args=[rate, burst])
            return int(wait_us) / 1_000_000

        return cls(take, RateLimiter(rate, burst), breaker)

    async def allow(self, credential: str) -> float:
        """0 if ``credential`` may write now, else the seconds to wait before trying again."""
        try:
            return await self.breaker.call(lambda: self.shared(credential))
        except StoreUnavailable:
            return self.local.allow(credential)

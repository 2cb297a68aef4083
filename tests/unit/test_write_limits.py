"""The write limit's policy: the shared bucket's answer while Redis answers, this process's bucket while not.

The shared bucket itself is a Redis script, checked against the real Redis in
tests/integration/test_write_limits.py; here it is a recording stand-in.
"""

from __future__ import annotations

import pytest
from redis.exceptions import TimeoutError as RedisTimeout

from services.ingest.auth import RateLimiter
from services.ingest.limits import WriteLimits
from shared import keys
from shared.breaker import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SharedBucket:
    """Answers ``waits`` in turn, or raises a Redis timeout while ``down``; records who asked."""

    def __init__(self, *waits: float) -> None:
        self.waits = list(waits)
        self.down = False
        self.asked: list[str] = []

    async def __call__(self, credential: str) -> float:
        self.asked.append(credential)
        if self.down:
            raise RedisTimeout("Timeout reading from socket")
        return self.waits.pop(0)


def limits(shared: SharedBucket, clock: Clock, burst: int = 2) -> WriteLimits:
    return WriteLimits(shared, RateLimiter(rate=0.001, burst=burst), Breaker(cooldown_s=1.0, clock=clock))


async def test_while_redis_answers_the_shared_bucket_decides_and_the_local_one_is_untouched() -> None:
    shared = SharedBucket(0.0, 0.0, 0.0, 2.5)
    limiter = limits(shared, Clock(), burst=1)
    assert [await limiter.allow("desk") for _ in range(4)] == [0.0, 0.0, 0.0, 2.5]
    assert shared.asked == ["desk"] * 4
    assert limiter.local.allow("desk") == 0.0


async def test_without_redis_each_process_counts_on_its_own_bucket_and_asks_redis_again_after_the_cooldown() -> None:
    clock = Clock()
    shared = SharedBucket(0.0)
    shared.down = True
    limiter = limits(shared, clock, burst=2)
    assert await limiter.allow("desk") == 0.0
    assert await limiter.allow("desk") == 0.0
    assert await limiter.allow("desk") > 0
    assert await limiter.allow("other") == 0.0
    assert shared.asked == ["desk"], "the open breaker skips Redis instead of waiting for it on every write"
    clock.now += 1.0
    shared.down = False
    assert await limiter.allow("desk") == 0.0
    assert shared.asked == ["desk", "desk"]


def test_the_bucket_key_is_named_in_the_key_table_and_outlives_a_rebuild() -> None:
    assert keys.key("rate", credential="ana") == "lf:rate:ana"
    assert "rate" not in keys.REBUILT


@pytest.mark.parametrize("burst", [1, 3])
async def test_the_fallback_has_the_configured_burst(burst: int) -> None:
    shared = SharedBucket()
    shared.down = True
    limiter = limits(shared, Clock(), burst=burst)
    answers = [await limiter.allow("desk") for _ in range(burst + 1)]
    assert answers[:burst] == [0.0] * burst and answers[burst] > 0

"""The Redis breaker without Redis: one failure opens it for the cooldown, then it tries again."""

from __future__ import annotations

import pytest
from redis.exceptions import TimeoutError as RedisTimeout

from shared.breaker import Breaker, StoreUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_failure_opens_the_breaker_for_the_cooldown_then_it_tries_again() -> None:
    clock = Clock()
    breaker = Breaker(cooldown_s=1.0, clock=clock)
    calls = 0

    async def fails() -> int:
        nonlocal calls
        calls += 1
        raise RedisTimeout("paused")

    async def works() -> int:
        nonlocal calls
        calls += 1
        return 7

    with pytest.raises(StoreUnavailable):
        await breaker.call(fails)
    with pytest.raises(StoreUnavailable):
        await breaker.call(works)
    assert calls == 1
    clock.now += 1.01
    assert await breaker.call(works) == 7
    assert not breaker.open


async def test_errors_that_are_not_redis_errors_pass_through() -> None:
    breaker = Breaker()

    async def bug() -> int:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await breaker.call(bug)
    assert not breaker.open

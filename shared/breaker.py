"""A circuit breaker for Redis: after a failed call, skip Redis for a moment instead of waiting again.

Every Redis call already has a short timeout (``LIVEFEED_REDIS_TIMEOUT_S``). A request that
makes several calls would pay it once per call; with the breaker it pays it once, and requests
for the next ``cooldown_s`` fail at once with :class:`StoreUnavailable`. The next call after the
cooldown tries Redis again, so the process recovers by itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from .metrics import REDIS_ERRORS

__all__ = ["STORE_ERRORS", "Breaker", "StoreUnavailable"]

log = logging.getLogger("livefeed.redis")

T = TypeVar("T")

STORE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)
"""What a Redis call raises when Redis is slow, paused, restarting or gone."""


class StoreUnavailable(Exception):
    """Redis did not answer in time, or failed a moment ago; the HTTP edge answers 503 with Retry-After."""


class Breaker:
    """Open for ``cooldown_s`` after a failure; :meth:`call` refuses at once while open.

    Every failure it is told of counts in ``livefeed_redis_errors_total`` under ``service``.
    """

    def __init__(self, cooldown_s: float = 1.0, clock: Callable[[], float] = time.monotonic, *,
                 service: str = "unnamed") -> None:
        self.cooldown_s = cooldown_s
        self._errors = REDIS_ERRORS.labels(service, "request")
        self._clock = clock
        self._open_until = 0.0
        self._failing = False

    @property
    def open(self) -> bool:
        return self._clock() < self._open_until

    def failed(self, exc: BaseException) -> None:
        """Record a failed call: skip Redis until the cooldown ends."""
        self._errors.inc()
        self._open_until = self._clock() + self.cooldown_s
        if not self._failing:
            self._failing = True
            log.error("redis unavailable: degrading until it answers again", extra={"error": repr(exc)})

    def succeeded(self) -> None:
        self._open_until = 0.0
        if self._failing:
            self._failing = False
            log.warning("redis answers again")

    async def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Await ``make()``, or raise :class:`StoreUnavailable` if Redis is failing or fails now."""
        if self.open:
            raise StoreUnavailable("redis failed a moment ago")
        try:
            result = await make()
        except STORE_ERRORS as exc:
            self.failed(exc)
            raise StoreUnavailable(repr(exc)) from exc
        self.succeeded()
        return result

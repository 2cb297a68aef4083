"""Ingest's readiness: ``GET /readyz`` says whether a write can reach Kafka now.

Kafka is ingest's one hard dependency, so it alone decides: a metadata request to the brokers,
bounded by ``PROBE_TIMEOUT_S`` (a paused broker accepts a connection and then never answers).
The answer is kept for ``PROBE_CACHE_S`` and probes arriving meanwhile share it, so a flood of
probes costs Kafka at most one request a second. Redis is reported but does not make ingest
unready: a publish works without it (the write-through is skipped).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Request, Response

from shared.breaker import STORE_ERRORS
from shared.openapi import ReadinessBody, readiness_responses, served_under
from shared.store import ItemStore

__all__ = ["PROBE_CACHE_S", "PROBE_TIMEOUT_S", "Probe", "Readiness", "router"]

PROBE_TIMEOUT_S = 2.0
"""How long one readiness check waits for Kafka (and, apart, Redis) before saying it is unreachable."""
PROBE_CACHE_S = 1.0
"""How long a readiness answer is reused."""
RETRY_AFTER_S = 2

router = APIRouter()


@dataclass(frozen=True, slots=True)
class Readiness:
    """One check's outcome: whether Kafka answered, and what Redis said (``ok`` or why not)."""

    kafka: str
    redis: str

    @property
    def ready(self) -> bool:
        return self.kafka == "ok"

    def body(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "kafka_unavailable", "kafka": self.kafka, "redis": self.redis}


class Probe:
    """Checks Kafka and Redis at most once per ``cache_s``; concurrent callers share the check in flight."""

    def __init__(self, kafka: Callable[[], Awaitable[object]], redis: Callable[[], Awaitable[object]], *,
                 timeout_s: float = PROBE_TIMEOUT_S, cache_s: float = PROBE_CACHE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._kafka = kafka
        self._redis = redis
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self._clock = clock
        self._last: tuple[float, Readiness] | None = None
        self._running: asyncio.Task[Readiness] | None = None

    @classmethod
    def of(cls, producer: AIOKafkaProducer, store: ItemStore) -> Probe:
        """The probe of a running ingest: a metadata request over its producer's client, and a Redis PING."""
        return cls(producer.client.fetch_all_metadata, store.redis.ping)

    async def check(self) -> Readiness:
        """The latest answer if it is fresh, else a new check (at most ``timeout_s``)."""
        if self._last is not None and self._clock() - self._last[0] < self.cache_s:
            return self._last[1]
        if self._running is None:
            self._running = asyncio.create_task(self._check())
            self._running.add_done_callback(self._done)
        return await asyncio.shield(self._running)

    def _done(self, task: asyncio.Task[Readiness]) -> None:
        self._running = None
        if not task.cancelled() and task.exception() is None:
            self._last = (self._clock(), task.result())

    async def _check(self) -> Readiness:
        kafka, redis = await asyncio.gather(self._try(self._kafka, (KafkaError,)), self._try(self._redis, STORE_ERRORS))
        return Readiness(kafka, redis)

    async def _try(self, call: Callable[[], Awaitable[object]], errors: tuple[type[Exception], ...]) -> str:
        try:
            await asyncio.wait_for(call(), self.timeout_s)
        except TimeoutError:
            return f"no answer within {self.timeout_s:g}s"
        except errors as exc:
            return f"unreachable ({type(exc).__name__})"
        return "ok"


@router.get("/readyz", summary="Readiness", tags=["operations"], response_model=ReadinessBody,
            responses=readiness_responses(), openapi_extra=served_under("/api/ingest"))
async def readyz(request: Request) -> Response:
    """200 when a write can reach Kafka now; 503 with Retry-After when it cannot. Redis is reported, not required."""
    probe: Probe = request.app.state.probe
    readiness = await probe.check()
    headers = {"Cache-Control": "no-cache"} if readiness.ready else {"Retry-After": str(RETRY_AFTER_S)}
    return Response(orjson.dumps(readiness.body()), status_code=200 if readiness.ready else 503,
                    media_type="application/json", headers=headers)

"""Readiness logic without servers: ingest's probe (bounded, cached, shared) and fanout's health answers."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaConnectionError

from services.fanout.health import Health
from services.ingest.ready import Probe


class Calls:
    """A recording stand-in for one dependency: counts calls, answers after ``delay`` or raises ``error``."""

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.delay = delay
        self.error = error
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error


async def test_a_hung_kafka_is_unready_within_the_timeout_and_redis_is_only_reported() -> None:
    kafka, redis = Calls(delay=60), Calls(error=ConnectionError("refused"))
    probe = Probe(kafka, redis, timeout_s=0.05)
    readiness = await asyncio.wait_for(probe.check(), 1)
    assert not readiness.ready
    assert readiness.body() == {"status": "kafka_unavailable", "kafka": "no answer within 0.05s",
                                "redis": "unreachable (ConnectionError)"}


async def test_kafka_answering_is_ready_even_without_redis() -> None:
    probe = Probe(Calls(), Calls(error=ConnectionError("refused")))
    readiness = await probe.check()
    assert readiness.ready and readiness.body()["status"] == "ready"


async def test_a_kafka_error_is_unready() -> None:
    probe = Probe(Calls(error=KafkaConnectionError()), Calls())
    assert (await probe.check()).kafka == "unreachable (KafkaConnectionError)"


async def test_a_flood_of_probes_makes_one_check_and_reuses_it_for_the_cache_time() -> None:
    now = [0.0]
    kafka, redis = Calls(delay=0.01), Calls()
    probe = Probe(kafka, redis, cache_s=1.0, clock=lambda: now[0])
    answers = await asyncio.gather(*(probe.check() for _ in range(100)))
    assert all(a.ready for a in answers)
    now[0] = 0.9
    await probe.check()
    assert (kafka.count, redis.count) == (1, 1)
    now[0] = 1.5
    await probe.check()
    assert kafka.count == 2


def test_fanout_health_answers_healthz_and_readyz_and_nothing_else() -> None:
    state = {"status": "catching_up", "lag": {}}
    health = Health(lambda: 3, lambda: dict(state))
    assert health.answer("/healthz") == (200, {"status": "ok", "readers": 3, "worker": 0}, {})
    status, body, headers = health.answer("/readyz") or (0, {}, {})
    assert (status, body["status"], headers) == (503, "catching_up", {"Retry-After": "2"})
    state["status"] = "ready"
    assert (health.answer("/readyz?probe=1") or (0,))[0] == 200
    assert health.answer("/v1/feeds/world/stream") is None

"""The ingest service: the newsroom's write API (routes in ``routes.py``, the Kafka write in ``publisher.py``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response

from shared.breaker import Breaker
from shared.http import BodySizeLimitMiddleware, create_api
from shared.kafka import make_producer, topic_epoch, wait_for_kafka
from shared.logs import RequestIdMiddleware
from shared.settings import IngestSettings
from shared.store import ItemStore, make_redis

from .auth import RateLimiter, TokenCheck
from .context import IngestContext
from .deps import Writer
from .feeds import FeedCap
from .idempotency import Idempotency, IdempotencyStore, LocalAnswers
from .publisher import Publisher
from .routes import router

__all__ = ["create_app"]

log = logging.getLogger("livefeed.ingest")

MAX_REQUEST_BYTES = 64 * 1024


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()
    if not settings.newsroom_tokens:
        log.warning("LIVEFEED_NEWSROOM_TOKENS is empty: every write will be refused with 401")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await wait_for_kafka(settings)
        producer = make_producer(settings)
        await producer.start()
        redis = make_redis(settings)
        try:
            breaker = Breaker()
            store = ItemStore(redis, max_items=settings.retention_items, max_age_s=settings.retention_age_s,
                              op_ttl_s=settings.idempotency_ttl_s)
            epoch = await topic_epoch(producer, settings.topic)
            app.state.ingest = IngestContext(
                settings=settings,
                publisher=Publisher(settings, producer, store, breaker, epoch),
                store=store,
                breaker=breaker,
                idempotency=Idempotency(IdempotencyStore(redis, ttl_s=settings.idempotency_ttl_s),
                                        LocalAnswers(ttl_s=settings.idempotency_ttl_s), breaker),
                feeds=FeedCap(store, breaker, settings.max_feeds),
                tokens=TokenCheck(settings.newsroom_tokens),
                limiter=RateLimiter(settings.write_rate_per_s, settings.write_burst),
            )
            log.info("ingest ready", extra={"topic": settings.topic, "epoch": epoch})
            yield
        finally:
            await producer.stop()
            await redis.aclose()

    app = create_api(
        "livefeed ingest",
        "The newsroom's write API: publish, edit, pin and retract items. Every write needs a bearer token.",
        lifespan,
    )
    app.include_router(router)

    @app.post("/v1/tokens/check", status_code=204, summary="Check a newsroom token", tags=["tokens"])
    async def check_token(caller: Writer) -> Response:
        """204 if the bearer token may write, 401 if not: lets a tool sign in without writing."""
        return Response(status_code=204)

    app.add_middleware(BodySizeLimitMiddleware, max_bytes=MAX_REQUEST_BYTES)
    app.add_middleware(RequestIdMiddleware)
    return app

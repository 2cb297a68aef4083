"""The ingest service: the newsroom's write API (routes in ``routes.py``, the Kafka write in ``publisher.py``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response

from shared.breaker import Breaker
from shared.credentials import CredentialsError
from shared.http import BodySizeLimitMiddleware, create_api
from shared.kafka import make_producer, topic_epoch, wait_for_kafka
from shared.logs import RequestIdMiddleware
from shared.metrics import HttpMetricsMiddleware
from shared.openapi import BEARER, error_responses
from shared.reader_tokens import ReaderTokens
from shared.settings import IngestSettings
from shared.store import ItemStore, make_redis

from .auth import Credentials
from .context import IngestContext
from .deps import Writer
from .feeds import FeedCap
from .feeds_routes import router as feeds_router
from .idempotency import Idempotency, IdempotencyStore, LocalAnswers
from .limits import WriteLimits
from .publisher import Publisher
from .ready import Probe
from .ready import router as ready_router
from .routes import router

__all__ = ["create_app"]

log = logging.getLogger("livefeed.ingest")

MAX_REQUEST_BYTES = 64 * 1024


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        credentials = _open_credentials(settings)
        reader_tokens = ReaderTokens(settings.reader_token_key) if settings.reader_token_key is not None else None
        await wait_for_kafka(settings)
        producer = make_producer(settings)
        await producer.start()
        redis = make_redis(settings)
        try:
            breaker = Breaker(service="ingest")
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
                external_ids=Idempotency(IdempotencyStore(redis, ttl_s=settings.retention_age_s),
                                         LocalAnswers(ttl_s=settings.idempotency_ttl_s), breaker),
                feeds=FeedCap(store, breaker, settings.max_feeds),
                credentials=credentials,
                limiter=WriteLimits.in_redis(redis, breaker, settings.write_rate_per_s, settings.write_burst),
                reader_tokens=reader_tokens,
            )
            app.state.probe = Probe.of(producer, store)
            log.info("ingest ready",
                     extra={"topic": settings.topic, "epoch": epoch, "credentials": len(credentials.names)})
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
    app.include_router(feeds_router)
    app.include_router(ready_router)

    @app.post("/v1/tokens/check", status_code=204, summary="Check a newsroom token", tags=["tokens"],
              dependencies=BEARER, responses=error_responses(401, 429, 503))
    async def check_token(caller: Writer) -> Response:
        """204 if the bearer token may write, 401 if not: lets a tool sign in without writing."""
        return Response(status_code=204)

    app.add_middleware(BodySizeLimitMiddleware, max_bytes=MAX_REQUEST_BYTES)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HttpMetricsMiddleware, service="ingest")
    return app


def _open_credentials(settings: IngestSettings) -> Credentials:
    """The credentials file, or a refusal to start that says what to fix (never a token in it)."""
    if settings.credentials_file is None:
        message = ("LIVEFEED_CREDENTIALS_FILE is not set: ingest needs the newsroom credentials file; "
                   "create one with `livefeed credentials add NAME --role admin --file PATH`")
    else:
        try:
            return Credentials.open(settings.credentials_file)
        except CredentialsError as exc:
            message = f"LIVEFEED_CREDENTIALS_FILE: {exc}"
    log.error("ingest cannot start: %s", message)
    raise RuntimeError(message)

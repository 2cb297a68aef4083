"""The history service: builds the app that serves each feed's items from Redis (``routes.py``)
and the pages (``pages.py``), and runs the consumer that fills Redis from Kafka (``consumer.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.breaker import Breaker
from shared.http import create_api
from shared.kafka import read_topic_epoch, wait_for_kafka
from shared.logs import RequestIdMiddleware
from shared.metrics import HttpMetricsMiddleware
from shared.reader_tokens import ReadAccess
from shared.settings import HistorySettings
from shared.store import ItemStore, StoreEmptied, make_redis

from . import embed, pages, revisions, routes, syndication
from .consumer import HistoryConsumer
from .cors import CorsMiddleware
from .deps import on_store_emptied
from .links import PublicUrls
from .rebuild import Rebuilds
from .workers import ConsumerMirror, announce_status, publish_status

__all__ = ["create_app"]

log = logging.getLogger("livefeed.history")


def create_app(settings: HistorySettings | None = None, *, consume: bool = True) -> FastAPI:
    """The history app; with ``consume`` false (workers other than 0, see ``workers.py``) it runs no
    consumer and mirrors the consuming worker's readiness instead."""
    settings = settings or HistorySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.access = ReadAccess.from_settings(settings)
        await wait_for_kafka(settings)
        epoch = await read_topic_epoch(settings)
        redis = make_redis(settings)
        store = ItemStore(redis, max_items=settings.retention_items, max_age_s=settings.retention_age_s,
                          op_ttl_s=settings.idempotency_ttl_s)
        rebuilds = app.state.rebuilds = Rebuilds(redis)
        app.state.store, app.state.epoch = store, epoch
        app.state.breaker = Breaker(service="history")
        instance = settings.instance_id()
        if consume:
            consumer = app.state.consumer = HistoryConsumer(settings, store, epoch, rebuilds)
            # Always announced: other instances may read this Redis, whatever this one's worker count.
            consumer.before_reset = functools.partial(announce_status, redis, consumer, instance)
            tasks = [asyncio.create_task(consumer.run(), name="history-consumer")]
            if settings.history_workers > 1:
                tasks.append(asyncio.create_task(publish_status(redis, consumer, instance), name="history-status"))
        else:
            mirror = app.state.consumer = ConsumerMirror(epoch, instance)
            tasks = [asyncio.create_task(mirror.run(redis), name="history-status")]
        for task in tasks:
            task.add_done_callback(_crash_on_failure)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await redis.aclose()

    app = create_api(
        "livefeed history", "Read each feed's current items, newest first, with cursor pagination.", lifespan
    )
    app.add_exception_handler(StoreEmptied, on_store_emptied)
    app.include_router(routes.router)
    app.include_router(revisions.router)
    app.include_router(syndication.router)  # before pages: /feeds/{feed} would take /feeds/x.atom
    app.include_router(pages.router)
    app.include_router(embed.router)
    app.state.embed_origins = tuple(settings.embed_origins)
    app.state.public_urls = PublicUrls(settings.public_url)
    app.mount("/static", pages.static_files(), name="static")
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HttpMetricsMiddleware, service="history")
    app.add_middleware(CorsMiddleware, origins=settings.embed_origins)
    return app


def _crash_on_failure(task: asyncio.Task[None]) -> None:
    """A consumer that stopped on a bug (Redis and Kafka failures are waited out) ends the process,
    so the supervisor starts a fresh one instead of serving a history that no longer moves."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("history consumer stopped: exiting so the supervisor restarts it",
                     exc_info=task.exception())
        os._exit(70)

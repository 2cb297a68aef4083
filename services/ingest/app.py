"""The ingest service: the newsroom's write API.

Each write becomes one event in Kafka; the answer is 2xx only once Kafka acknowledged it
(acks=all, idempotent producer). After the acknowledgement the item is also written to the
Redis store, so the newsroom reads its own write at once; history applies the same event
again from Kafka, which changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Request, Response

from shared.cursor import Cursor
from shared.http import ApiError, BodySizeLimitMiddleware, create_api
from shared.kafka import make_producer, topic_epoch, wait_for_kafka
from shared.logs import RequestIdMiddleware
from shared.models import FEED_PATTERN, Item, ItemCreate, ItemUpdate
from shared.settings import IngestSettings
from shared.store import ItemStore, make_redis
from shared.wire import Event

from . import lifecycle
from .auth import RateLimiter, TokenCheck
from .idempotency import IdempotencyStore
from .locks import ItemBusy, item_lock

__all__ = ["create_app"]

log = logging.getLogger("livefeed.ingest")

MAX_REQUEST_BYTES = 64 * 1024
KAFKA_TIMEOUT_S = 15.0


@dataclass
class Ingest:
    """Everything a request handler needs, built once by the lifespan."""

    settings: IngestSettings
    producer: AIOKafkaProducer
    store: ItemStore
    idempotency: IdempotencyStore
    tokens: TokenCheck
    limiter: RateLimiter
    epoch: str

    async def send(self, event: Event) -> Cursor:
        """Publish ``event``; return its cursor once Kafka has it, or raise a 503.

        A broker that cannot be reached fails the write before anything is handed to the
        producer, so that 503 means "not stored". Once handed over, the idempotent producer
        retries until Kafka takes it; if no acknowledgement comes in time the answer is a
        503 that says the outcome is unknown, and a retry with the same Idempotency-Key
        reuses the item id, so it can never make a second item.
        """
        if not await self._kafka_reachable():
            log.error("kafka unreachable: write refused", extra={"feed": event.feed})
            raise ApiError(
                503,
                "kafka_unavailable",
                "Kafka cannot be reached, so the write was not stored. Retry shortly with the same Idempotency-Key.",
                headers={"Retry-After": "2"},
            )
        try:
            metadata = await asyncio.wait_for(
                self.producer.send_and_wait(self.settings.topic, event.serialize(), key=event.feed.encode()),
                KAFKA_TIMEOUT_S,
            )
        except (KafkaError, TimeoutError) as exc:
            log.error("kafka write not acknowledged", extra={"error": repr(exc), "feed": event.feed})
            raise ApiError(
                503,
                "kafka_unacknowledged",
                f"Kafka did not acknowledge the write within {KAFKA_TIMEOUT_S:.0f}s; it may still be stored. "
                "Retry with the same Idempotency-Key: the retry cannot create a second item.",
                headers={"Retry-After": "2"},
            ) from exc
        cursor = Cursor(self.epoch, metadata.partition, metadata.offset)
        try:
            await self.store.apply(event, cursor)
        except Exception:
            log.warning("write-through to redis failed; history will apply it from kafka", exc_info=True)
        return cursor


    async def _kafka_reachable(self) -> bool:
        client = self.producer.client
        brokers = client.cluster.brokers()
        try:
            return bool(brokers) and all([await client.ready(b.nodeId) for b in brokers])
        except KafkaError:
            return False


def _ingest(request: Request) -> Ingest:
    ingest: Ingest = request.app.state.ingest
    return ingest


IngestDep = Annotated[Ingest, Depends(_ingest)]


def _writer(request: Request, ingest: IngestDep) -> str:
    caller = ingest.tokens.identify(request.headers.get("authorization"))
    if caller is None:
        raise ApiError(
            401,
            "unauthorized",
            "Writes need a newsroom token: send 'Authorization: Bearer <token>'.",
            fields=[{"field": "Authorization", "message": "missing or unknown bearer token"}],
            headers={"WWW-Authenticate": "Bearer"},
        )
    wait = ingest.limiter.allow(caller)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"Too many writes for this token; retry in {wait:.2f}s.",
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    return caller


Writer = Annotated[str, Depends(_writer)]
Feed = Annotated[str, Path(pattern=FEED_PATTERN, description="Feed slug, e.g. `ukraine`.")]
ItemId = Annotated[str, Path(pattern=r"^[0-9a-z]{26}$", description="Item id (a ULID).")]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=128, pattern=r"^[\x21-\x7e]+$",
           description="Makes a retry safe: the same key and body return the first answer."),
]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=32, description="Expected item version.")]

router = APIRouter(prefix="/v1/feeds/{feed}/items", tags=["items"])


class Written(Item):
    """An answer to a write: the item as stored."""


def _answer(status: int, item: dict[str, Any], cursor: Cursor) -> tuple[int, bytes]:
    return status, orjson.dumps({"item": item, "cursor": cursor.serialize()})


async def _idempotent(
    ingest: Ingest,
    caller: str,
    key: str | None,
    fingerprint: dict[str, Any],
    item_id: str,
    work: Callable[[str], Awaitable[tuple[int, bytes]]],
) -> Response:
    """Run ``work`` once per Idempotency-Key; a retry gets the stored answer."""
    if key is None:
        status, body = await work(item_id)
        return Response(body, status_code=status, media_type="application/json")
    digest = hashlib.sha256(orjson.dumps(fingerprint, option=orjson.OPT_SORT_KEYS)).hexdigest()
    claim = await ingest.idempotency.begin(caller, key, digest, item_id)
    if claim.kind == "done":
        return Response(claim.body, status_code=claim.status, media_type="application/json",
                        headers={"Idempotent-Replayed": "true"})
    if claim.kind == "mismatch":
        raise ApiError(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used for a different request; use a new key for a new write.",
            fields=[{"field": "Idempotency-Key", "message": "already used with another body"}],
        )
    if claim.kind == "busy":
        raise ApiError(409, "idempotency_key_in_use",
                       "A request with this Idempotency-Key is still running; retry shortly.",
                       headers={"Retry-After": "1"})
    try:
        status, body = await work(claim.item_id)
    except BaseException:
        await ingest.idempotency.finish(caller, key, claim, status=None)
        raise
    await ingest.idempotency.finish(caller, key, claim, status=status, body=body)
    return Response(body, status_code=status, media_type="application/json")


async def _current(ingest: Ingest, feed: str, item_id: str) -> dict[str, Any]:
    stored = await ingest.store.get(feed, item_id)
    if stored is None:
        raise ApiError(404, "not_found", f"No item {item_id} in feed {feed}.",
                       fields=[{"field": "id", "message": "unknown item"}])
    return stored.item()


async def _change(
    ingest: Ingest, feed: str, item_id: str, if_match: str | None,
    make: Callable[[dict[str, Any]], Event],
) -> tuple[int, bytes]:
    """Lock the item, derive the next event from its current state, publish it."""
    try:
        async with item_lock(ingest.store.redis, feed, item_id):
            current = await _current(ingest, feed, item_id)
            try:
                lifecycle.check_if_match(if_match, current)
                event = make(current)
            except lifecycle.Conflict as exc:
                raise ApiError(exc.status, exc.code, exc.message, extra={"version": current["version"]}) from exc
            cursor = await ingest.send(event)
            return _answer(200, event.item, cursor)
    except ItemBusy as exc:
        raise ApiError(409, "item_busy", "Another edit of this item is in progress; retry.",
                       headers={"Retry-After": "1"}) from exc


@router.post("", status_code=201, response_model=Written, summary="Publish an item")
async def publish_item(
    feed: Feed, create: ItemCreate, ingest: IngestDep, caller: Writer, idempotency_key: IdempotencyKey = None
) -> Response:
    """Publish a new item to ``feed`` (created on first post). 201 once Kafka has the event."""
    if not await ingest.store.has_feed(feed) and await ingest.store.feed_count() >= ingest.settings.max_feeds:
        raise ApiError(422, "too_many_feeds", f"livefeed holds at most {ingest.settings.max_feeds} feeds.",
                       fields=[{"field": "feed", "message": "feed limit reached"}])
    now = lifecycle.now_utc()

    async def work(item_id: str) -> tuple[int, bytes]:
        event = lifecycle.publish(feed, item_id, create, now)
        cursor = await ingest.send(event)
        return _answer(201, event.item, cursor)

    fingerprint = {"op": "publish", "feed": feed, "body": create.model_dump(mode="json")}
    return await _idempotent(ingest, caller, idempotency_key, fingerprint, lifecycle.new_item_id(now), work)


@router.patch("/{item_id}", response_model=Written, summary="Edit or correct an item")
async def edit_item(
    feed: Feed, item_id: ItemId, update: ItemUpdate, ingest: IngestDep, caller: Writer,
    idempotency_key: IdempotencyKey = None, if_match: IfMatch = None,
) -> Response:
    """Change the fields sent; the version goes up by one. 412 if ``If-Match`` is stale."""

    async def work(_: str) -> tuple[int, bytes]:
        return await _change(ingest, feed, item_id, if_match,
                             lambda cur: lifecycle.edit(cur, update, lifecycle.now_utc()))

    fingerprint = {"op": "edit", "feed": feed, "id": item_id, "if": if_match,
                   "body": update.model_dump(mode="json", exclude_unset=True)}
    return await _idempotent(ingest, caller, idempotency_key, fingerprint, item_id, work)


@router.delete("/{item_id}", response_model=Written, summary="Retract an item")
async def retract_item(
    feed: Feed, item_id: ItemId, ingest: IngestDep, caller: Writer,
    idempotency_key: IdempotencyKey = None, if_match: IfMatch = None,
) -> Response:
    """Retract the item: readers remove it; history answers 410 for it from now on."""

    async def work(_: str) -> tuple[int, bytes]:
        return await _change(ingest, feed, item_id, if_match,
                             lambda cur: lifecycle.retract(cur, lifecycle.now_utc()))

    fingerprint = {"op": "retract", "feed": feed, "id": item_id, "if": if_match}
    return await _idempotent(ingest, caller, idempotency_key, fingerprint, item_id, work)


def _pin_route(pinned: bool) -> Callable[..., Awaitable[Response]]:
    async def pin(
        feed: Feed, item_id: ItemId, ingest: IngestDep, caller: Writer, idempotency_key: IdempotencyKey = None
    ) -> Response:
        update = ItemUpdate(pinned=pinned)

        async def work(_: str) -> tuple[int, bytes]:
            return await _change(ingest, feed, item_id, None,
                                 lambda cur: lifecycle.edit(cur, update, lifecycle.now_utc()))

        fingerprint = {"op": "pin" if pinned else "unpin", "feed": feed, "id": item_id}
        return await _idempotent(ingest, caller, idempotency_key, fingerprint, item_id, work)

    return pin


router.add_api_route("/{item_id}/pin", _pin_route(True), methods=["PUT"], response_model=Written,
                     summary="Pin an item")
router.add_api_route("/{item_id}/pin", _pin_route(False), methods=["DELETE"], response_model=Written,
                     summary="Unpin an item")


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
            app.state.ingest = Ingest(
                settings=settings,
                producer=producer,
                store=ItemStore(redis, max_items=settings.retention_items, max_age_s=settings.retention_age_s),
                idempotency=IdempotencyStore(redis, ttl_s=settings.idempotency_ttl_s),
                tokens=TokenCheck(settings.newsroom_tokens),
                limiter=RateLimiter(settings.write_rate_per_s, settings.write_burst),
                epoch=await topic_epoch(producer, settings.topic),
            )
            log.info("ingest ready", extra={"topic": settings.topic, "epoch": app.state.ingest.epoch})
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

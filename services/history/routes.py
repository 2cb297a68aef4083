"""History's read API: feeds, a feed's items, key events, pinned items, one item, readiness.

A feed's items and one item are also served as IPTC ninjs 3.1 for wire partners
(``?format=ninjs``, mapping in ``formats/ninjs.py``), with the same paging.

Every list answer is one atomic store read (:meth:`ItemStore.page <shared.store.ItemStore.page>`)
whose ``cursor`` is the feed position the items reflect: a reader shows the items, then opens
the stream with ``since=<cursor>`` and misses nothing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response

from shared.breaker import STORE_ERRORS
from shared.cursor import MAX_CURSOR_LENGTH, Cursor, CursorError
from shared.errors import ApiError
from shared.models import TAG_PATTERN, Item, Status, Tombstone
from shared.openapi import (
    BEARER,
    BEARER_OPTIONAL,
    FeedList,
    ItemPage,
    ReadinessBody,
    error_responses,
    readiness_responses,
)
from shared.store import StoredItem

from .consumer import HistoryConsumer, Readiness
from .deps import PUBLIC_CACHE_CONTROL, Feed, FeedRead, ItemId, ReadableFeed, complete_store, read_access
from .formats.ninjs import NinjsItem, NinjsPage, ninjs_item, ninjs_tombstone

__all__ = ["router"]

router = APIRouter()



class ItemFormat(StrEnum):
    """How items are written: livefeed's own item JSON, or IPTC ninjs 3.1 objects."""

    livefeed = "livefeed"
    ninjs = "ninjs"


FormatParam = Annotated[ItemFormat, Query(
    alias="format",
    description="`ninjs` answers with IPTC ninjs 3.1 objects (`uri`, `version`, `pubStatus`, `urgency`, "
                "`headlines`, `bodies`, ...) instead of livefeed items.",
)]

_FEED_ERRORS = error_responses(401, 403, 422, 429, 503)
"""What a read of one feed can answer besides 200: a private feed's reader-token refusals, a bad parameter, limits."""


def _json(body: bytes, status: int = 200, cache_control: str = PUBLIC_CACHE_CONTROL) -> Response:
    return Response(body, status_code=status, media_type="application/json",
                    headers={"Cache-Control": cache_control})


def _page(feed: str, head: Cursor | None, items: list[StoredItem], limit: int, epoch: str, *,
          ninjs: bool = False) -> bytes:
    """The list answer, assembled from the stored JSON without parsing it again (parsed only for ninjs)."""
    next_before = None
    if len(items) == limit and items:
        last = items[-1]
        next_before = Cursor(epoch, last.cursor.partition, last.seq).serialize()
    if ninjs:
        objects = [orjson.dumps(ninjs_item(Item.model_validate_json(i.item_json))) for i in items]
    else:
        objects = [i.item_json for i in items]
    return b"".join(
        [
            b'{"feed":', orjson.dumps(feed),
            b',"cursor":', orjson.dumps(head and head.serialize()),
            b',"next_before":', orjson.dumps(next_before),
            b',"items":[', b",".join(objects), b"]}",
        ]
    )


@router.get("/v1/feeds", summary="List feeds", response_model=FeedList, responses=error_responses(429, 503))
async def list_feeds(request: Request) -> Response:
    """Every public feed with an item in retention, most recently changed first (private feeds are never listed)."""
    private = read_access(request).private
    feeds = await complete_store(request).feeds()
    return _json(orjson.dumps({"feeds": [{"feed": f, "updated_ms": ms} for f, ms in feeds if f not in private]}))


@router.get("/v1/feeds/{feed}/items", summary="List a feed's items", response_model=ItemPage | NinjsPage,
            dependencies=BEARER, openapi_extra=BEARER_OPTIONAL, responses=error_responses(400, 401, 403, 422, 429, 503))
async def list_items(
    request: Request,
    feed: Feed,
    read: ReadableFeed,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    before: Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH, description="A `next_before` cursor.")] = None,
    tag: Annotated[str | None, Query(pattern=TAG_PATTERN)] = None,
    item_format: FormatParam = ItemFormat.livefeed,
) -> Response:
    """Current items (edits applied, retractions gone), newest first.

    ``cursor`` is the feed position the answer reflects: open the stream with
    ``since=<cursor>`` to continue live. Page back with ``before=<next_before>``.
    With ``format=ninjs`` the items are IPTC ninjs 3.1 objects; the paging fields stay the same.
    """
    return await _listing(request, read, limit, before=_before(before, request.app.state.epoch), tag=tag,
                          ninjs=item_format is ItemFormat.ninjs)


@router.get("/v1/feeds/{feed}/key-events", summary="List a feed's key events", response_model=ItemPage,
            dependencies=BEARER, openapi_extra=BEARER_OPTIONAL, responses=_FEED_ERRORS)
async def key_events(
    request: Request, feed: Feed, read: ReadableFeed, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> Response:
    """Items marked as key events, newest first, however far back (within the age limit)."""
    return await _listing(request, read, limit, key_events=True)


@router.get("/v1/feeds/{feed}/pinned", summary="List a feed's pinned items", response_model=ItemPage,
            dependencies=BEARER, openapi_extra=BEARER_OPTIONAL, responses=_FEED_ERRORS)
async def pinned_items(
    request: Request, feed: Feed, read: ReadableFeed, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> Response:
    """Pinned items, newest first, however far back (within the age limit): readers show them on top."""
    return await _listing(request, read, limit, pinned=True)


@router.get("/v1/feeds/{feed}/items/{item_id}", summary="Get one item", response_model=Item | NinjsItem,
            dependencies=BEARER, openapi_extra=BEARER_OPTIONAL,
            responses=error_responses(401, 403, 404, 410, 422, 429, 503))
async def get_item(
    request: Request, feed: Feed, read: ReadableFeed, item_id: ItemId, item_format: FormatParam = ItemFormat.livefeed,
) -> Response:
    """The item's current state; 410 once it was retracted.

    With ``format=ninjs``, an IPTC ninjs 3.1 object; a retracted item is then a 200 with
    ``pubStatus: canceled`` and no content, the withdrawal notice wire partners act on.
    """
    stored = await complete_store(request).get(feed, item_id)
    if stored is None:
        raise ApiError(404, "not_found", f"No item {item_id} in feed {feed}.",
                       fields=[{"field": "id", "message": "unknown item"}])
    retracted = stored.status == Status.retracted.value
    if item_format is ItemFormat.ninjs:
        ninjs = (ninjs_tombstone(Tombstone.model_validate_json(stored.item_json)) if retracted
                 else ninjs_item(Item.model_validate_json(stored.item_json)))
        return _json(orjson.dumps(ninjs), cache_control=read.cache_control)
    if retracted:
        raise ApiError(410, "retracted", "The newsroom retracted this item.",
                       fields=[{"field": "id", "message": "retracted"}])
    return _json(stored.item_json, cache_control=read.cache_control)


@router.get("/readyz", summary="Readiness", response_model=ReadinessBody, responses=readiness_responses())
async def readyz(request: Request) -> Response:
    """200 once history has caught up with Kafka; 503 while starting, without Redis, or while any partition
    (this instance's or another's) is rebuilding."""
    consumer: HistoryConsumer = request.app.state.consumer
    status = consumer.status()
    if status["status"] == Readiness.ready.value:
        try:
            ledger = await request.app.state.rebuilds.read()
            if not ledger.intact(request.app.state.epoch) or ledger.rebuilding:
                status["status"] = Readiness.rebuilding.value
        except STORE_ERRORS as exc:
            status["status"] = Readiness.redis_unavailable.value
            status["error"] = f"redis unavailable ({type(exc).__name__})"
    ready = status["status"] == Readiness.ready.value
    return Response(orjson.dumps(status), status_code=200 if ready else 503, media_type="application/json",
                    headers={"Cache-Control": "no-cache"} if ready else {"Retry-After": "1"})


async def _listing(
    request: Request, read: FeedRead, limit: int, *, before: int | None = None, tag: str | None = None,
    key_events: bool = False, pinned: bool = False, ninjs: bool = False,
) -> Response:
    """A list answer: the head first, then the items, so every event up to the head is in them."""
    head, items = await complete_store(request).page(
        read.feed, limit=limit, before=before, tag=tag, key_events=key_events, pinned=pinned
    )
    return _json(_page(read.feed, head, items, limit, request.app.state.epoch, ninjs=ninjs),
                 cache_control=read.cache_control)


def _before(before: str | None, epoch: str) -> int | None:
    if before is None:
        return None
    try:
        cursor = Cursor.parse(before)
    except CursorError as exc:
        raise ApiError(400, "bad_cursor", str(exc), fields=[{"field": "before", "message": "not a cursor"}]) from exc
    if cursor.epoch != epoch:
        raise ApiError(400, "stale_cursor", "The cursor is from an earlier topic; reload the feed.",
                       fields=[{"field": "before", "message": "from another epoch"}])
    return cursor.offset

"""The write routes: publish, edit, retract, pin. Each change is one event, published once per key."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Response

from shared.cursor import Cursor
from shared.errors import ApiError
from shared.models import ItemCreate, ItemUpdate
from shared.openapi import BEARER, RetractAnswer, WriteAnswer, error_responses, item_create_examples
from shared.wire import Event

from . import external_ids, lifecycle, permissions
from .context import IngestContext
from .deps import Feed, IdempotencyKey, IfMatch, IngestDep, ItemId, Writer
from .idempotency import op_id
from .locks import ItemBusy, item_lock
from .permissions import Permission

__all__ = ["router"]

router = APIRouter(prefix="/v1/feeds/{feed}/items", tags=["items"])


_WRITE_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 412, 413, 422, 429, 503)
"""What an edit can answer besides 200; publish and pin drop the ones that cannot happen to them."""
_PIN_ERRORS = error_responses(401, 403, 404, 409, 410, 422, 429, 503)


def _answer(status: int, item: dict[str, Any], cursor: Cursor) -> tuple[int, bytes]:
    return status, orjson.dumps({"item": item, "cursor": cursor.serialize()})


async def _idempotent(
    ingest: IngestContext,
    caller: str,
    key: str | None,
    fingerprint: dict[str, Any],
    item_id: str,
    work: Callable[[str, str | None], Awaitable[tuple[int, bytes]]],
) -> Response:
    """Run ``work(item_id, op)`` once per Idempotency-Key; a retry gets the first answer."""
    if key is None:
        status, body = await work(item_id, None)
        return Response(body, status_code=status, media_type="application/json")
    digest = hashlib.sha256(orjson.dumps(fingerprint, option=orjson.OPT_SORT_KEYS)).hexdigest()
    outcome = await ingest.idempotency.once(caller, key, digest, item_id,
                                            lambda claimed: work(claimed, op_id(caller, key)))
    if outcome.kind == "mismatch":
        raise ApiError(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used for a different request; use a new key for a new write.",
            fields=[{"field": "Idempotency-Key", "message": "already used with another body"}],
        )
    if outcome.kind == "busy":
        raise ApiError(409, "idempotency_key_in_use",
                       "A request with this Idempotency-Key is still running; retry shortly.",
                       headers={"Retry-After": "1"})
    headers = {"Idempotent-Replayed": "true"} if outcome.kind == "replayed" else None
    return Response(outcome.body, status_code=outcome.status, media_type="application/json", headers=headers)


async def _current(ingest: IngestContext, feed: str, item_id: str) -> dict[str, Any]:
    stored = await ingest.breaker.call(lambda: ingest.store.get(feed, item_id))
    if stored is None:
        raise ApiError(404, "not_found", f"No item {item_id} in feed {feed}.",
                       fields=[{"field": "id", "message": "unknown item"}])
    return stored.item()


async def _change(
    ingest: IngestContext, feed: str, item_id: str, if_match: str | None,
    make: Callable[[dict[str, Any]], Event],
) -> tuple[int, bytes]:
    """Lock the item, derive the next event from its current state, publish it."""
    try:
        async with item_lock(ingest.store.redis, ingest.breaker, feed, item_id):
            current = await _current(ingest, feed, item_id)
            lifecycle.check_if_match(if_match, current)
            event = make(current)
            cursor = await ingest.publisher.send(event)
            return _answer(200, event.item, cursor)
    except ItemBusy as exc:
        raise ApiError(409, "item_busy", "Another edit of this item is in progress; retry.",
                       fields=[{"field": "id", "message": "being edited"}], headers={"Retry-After": "1"}) from exc


@router.post("", status_code=201, response_model=WriteAnswer, summary="Publish an item", dependencies=BEARER,
             responses={**error_responses(400, 401, 403, 409, 410, 413, 422, 429, 503),
                        **external_ids.RESYNC_RESPONSES},
             openapi_extra=item_create_examples())
async def publish_item(
    feed: Feed, create: ItemCreate, ingest: IngestDep, caller: Writer, idempotency_key: IdempotencyKey = None
) -> Response:
    """Publish a new item to ``feed`` (created on first post). 201 once Kafka has the event.

    With an ``external_id`` already published in ``feed``: 200 with that item as it stands, or 409
    if it was published with another body, or 410 if it was retracted (see ``external_ids``).
    """
    permissions.require_publish(caller, feed, pinned=create.pinned)
    if not await ingest.feeds.allows(feed):
        raise ApiError(422, "too_many_feeds", f"livefeed holds at most {ingest.settings.max_feeds} feeds.",
                       fields=[{"field": "feed", "message": "feed limit reached"}])
    now = lifecycle.now_utc()

    async def send(item_id: str, op: str | None) -> tuple[int, bytes]:
        event = lifecycle.publish(feed, item_id, create, now, op, by=caller.name)
        cursor = await ingest.publisher.send(event)
        return _answer(201, event.item, cursor)

    async def work(item_id: str, op: str | None) -> tuple[int, bytes]:
        if create.external_id is None:
            return await send(item_id, op)
        return await external_ids.publish_once(ingest, feed, create, item_id, send)

    fingerprint = {"op": "publish", "feed": feed, "body": create.model_dump(mode="json")}
    response = await _idempotent(ingest, caller.name, idempotency_key, fingerprint, lifecycle.new_item_id(now), work)
    if response.status_code == 200:
        response.headers[external_ids.REPLAYED_HEADER] = "true"
    return response


@router.patch("/{item_id}", response_model=WriteAnswer, summary="Edit or correct an item", dependencies=BEARER,
              responses=_WRITE_ERRORS)
async def edit_item(
    feed: Feed, item_id: ItemId, update: ItemUpdate, ingest: IngestDep, caller: Writer,
    idempotency_key: IdempotencyKey = None, if_match: IfMatch = None,
) -> Response:
    """Change the fields sent; the version goes up by one. 412 if ``If-Match`` is stale."""
    permissions.require_edit(caller, feed, pins="pinned" in update.model_fields_set)

    def make(current: dict[str, Any]) -> Event:
        permissions.require_edit_of(caller, current.get("created_by"))
        return lifecycle.edit(current, update, lifecycle.now_utc(), by=caller.name)

    async def work(_: str, __: str | None) -> tuple[int, bytes]:
        return await _change(ingest, feed, item_id, if_match, make)

    fingerprint = {"op": "edit", "feed": feed, "id": item_id, "if": if_match,
                   "body": update.model_dump(mode="json", exclude_unset=True)}
    return await _idempotent(ingest, caller.name, idempotency_key, fingerprint, item_id, work)


@router.delete("/{item_id}", response_model=RetractAnswer, summary="Retract an item", dependencies=BEARER,
               responses=error_responses(400, 401, 403, 404, 409, 410, 412, 422, 429, 503))
async def retract_item(
    feed: Feed, item_id: ItemId, ingest: IngestDep, caller: Writer,
    idempotency_key: IdempotencyKey = None, if_match: IfMatch = None,
) -> Response:
    """Retract the item: readers remove it; history answers 410 for it from now on."""
    permissions.require(caller, Permission.retract, feed)

    async def work(_: str, __: str | None) -> tuple[int, bytes]:
        return await _change(ingest, feed, item_id, if_match,
                             lambda cur: lifecycle.retract(cur, lifecycle.now_utc(), by=caller.name))

    fingerprint = {"op": "retract", "feed": feed, "id": item_id, "if": if_match}
    return await _idempotent(ingest, caller.name, idempotency_key, fingerprint, item_id, work)


def _pin_route(pinned: bool) -> Callable[..., Awaitable[Response]]:
    async def pin(
        feed: Feed, item_id: ItemId, ingest: IngestDep, caller: Writer, idempotency_key: IdempotencyKey = None
    ) -> Response:
        permissions.require(caller, Permission.pin, feed)
        update = ItemUpdate(pinned=pinned)

        async def work(_: str, __: str | None) -> tuple[int, bytes]:
            return await _change(ingest, feed, item_id, None,
                                 lambda cur: lifecycle.edit(cur, update, lifecycle.now_utc(), by=caller.name))

        fingerprint = {"op": "pin" if pinned else "unpin", "feed": feed, "id": item_id}
        return await _idempotent(ingest, caller.name, idempotency_key, fingerprint, item_id, work)

    return pin


router.add_api_route("/{item_id}/pin", _pin_route(True), methods=["PUT"], response_model=WriteAnswer,
                     summary="Pin an item", dependencies=BEARER, responses=_PIN_ERRORS)
router.add_api_route("/{item_id}/pin", _pin_route(False), methods=["DELETE"], response_model=WriteAnswer,
                     summary="Unpin an item", dependencies=BEARER, responses=_PIN_ERRORS)

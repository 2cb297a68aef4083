"""An item's earlier versions, for readers who want to see what a correction changed.

History keeps each version's JSON as it applies the item's events from Kafka (``rev:`` in
:mod:`shared.keys`, written in the same atomic step as the item), the newest
:data:`~shared.store.MAX_REVISIONS` per item, for the age limit. A retraction deletes them:
a retracted item's words never come back, so its revisions answer 410 like the item.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import ApiError
from shared.models import Item
from shared.openapi import BEARER, BEARER_OPTIONAL, error_responses
from shared.store import MAX_REVISIONS

from .deps import Feed, ItemId, ReadableFeed, complete_store

__all__ = ["RevisionList", "router"]

router = APIRouter()


class RevisionList(BaseModel):
    """Every kept version of one item, oldest first, each with who made it (``updated_by``) and when."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "feed": "ukraine", "id": "01m8cng7dqz8mzsg2ge1ydk21g", "revisions": [],
    }]})

    feed: str
    id: str
    revisions: list[Item] = Field(description=f"Oldest first; the newest {MAX_REVISIONS} versions of the item.")


@router.get(
    "/v1/feeds/{feed}/items/{item_id}/revisions", summary="List an item's versions", response_model=RevisionList,
    dependencies=BEARER, openapi_extra=BEARER_OPTIONAL, responses=error_responses(401, 403, 404, 410, 422, 429, 503),
)
async def list_revisions(request: Request, feed: Feed, read: ReadableFeed, item_id: ItemId) -> Response:
    """Every version of the item, oldest first (at most the newest 100); 410 once it was retracted."""
    store = complete_store(request)
    status, versions = await store.revisions(feed, item_id)
    if status is None:
        raise ApiError(404, "not_found", f"No item {item_id} in feed {feed}.",
                       fields=[{"field": "id", "message": "unknown item"}])
    if status == "retracted":
        raise ApiError(410, "retracted", "The newsroom retracted this item; its versions are not kept.",
                       fields=[{"field": "id", "message": "retracted"}])
    if not versions:
        current = await store.get(feed, item_id)
        versions = [] if current is None else [current.item_json]
    body = b"".join([b'{"feed":', orjson.dumps(feed), b',"id":', orjson.dumps(item_id),
                     b',"revisions":[', b",".join(versions), b"]}"])
    return Response(body, media_type="application/json", headers={"Cache-Control": read.cache_control})

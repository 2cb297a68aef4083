"""The request dependencies of history's read routes: path parameters, and the store only when complete."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request, Response

from shared.breaker import Breaker, StoreUnavailable
from shared.errors import ApiError
from shared.http import error_response
from shared.models import FEED_PATTERN, ITEM_ID_PATTERN
from shared.store import ItemStore

from .consumer import HistoryConsumer, Readiness

__all__ = ["REBUILD_RETRY_AFTER_S", "Feed", "ItemId", "complete_store", "on_store_emptied", "rebuilding"]

Feed = Annotated[str, Path(pattern=FEED_PATTERN, description="Feed slug.")]
ItemId = Annotated[str, Path(pattern=ITEM_ID_PATTERN, description="Item id.")]

REBUILD_RETRY_AFTER_S = 2


def rebuilding() -> ApiError:
    """The answer to a read while the store is being rebuilt from Kafka."""
    return ApiError(
        503,
        "rebuilding",
        "History is rebuilding from Kafka and would answer with part of the feed; retry shortly.",
        fields=[{"field": "store", "message": "rebuilding"}],
        headers={"Retry-After": str(REBUILD_RETRY_AFTER_S)},
    )


def complete_store(request: Request) -> ItemStore:
    """The item store, or a 503 while history rebuilds it from Kafka (a partial list is not served).

    Between Redis losing its data and the consumer noticing, the store's reads raise
    :class:`~shared.store.StoreEmptied` themselves; ``on_store_emptied`` answers those alike.
    For a second after a Redis error (``app.state.breaker``), reads answer 503 at once instead
    of each waiting out the Redis timeout.
    """
    consumer: HistoryConsumer = request.app.state.consumer
    if consumer.state is Readiness.rebuilding:
        raise rebuilding()
    breaker: Breaker | None = getattr(request.app.state, "breaker", None)
    if breaker is not None and breaker.open:
        raise StoreUnavailable("redis failed a moment ago")
    store: ItemStore = request.app.state.store
    return store


async def on_store_emptied(_: Request, __: Exception) -> Response:
    return error_response(rebuilding())

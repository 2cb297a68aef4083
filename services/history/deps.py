"""The store as history's read routes get it: only when what it holds is complete."""

from __future__ import annotations

from fastapi import Request, Response

from shared.http import ApiError, error_response
from shared.store import ItemStore

from .consumer import HistoryConsumer, Readiness

__all__ = ["REBUILD_RETRY_AFTER_S", "complete_store", "on_store_emptied", "rebuilding"]

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
    """
    consumer: HistoryConsumer = request.app.state.consumer
    if consumer.state is Readiness.rebuilding:
        raise rebuilding()
    store: ItemStore = request.app.state.store
    return store


async def on_store_emptied(_: Request, __: Exception) -> Response:
    return error_response(rebuilding())

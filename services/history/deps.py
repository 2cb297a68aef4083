"""The request dependencies of history's read routes: path parameters, the store only when complete,
and the one read check of a feed (a private feed needs a reader token that grants it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request, Response

from shared.breaker import Breaker, StoreUnavailable
from shared.errors import ApiError
from shared.http import error_response
from shared.models import FEED_PATTERN, ITEM_ID_PATTERN
from shared.reader_tokens import MAX_TOKEN_LENGTH, ReadAccess, bearer_token
from shared.store import ItemStore

from .consumer import HistoryConsumer, Readiness

__all__ = [
    "PRIVATE_CACHE_CONTROL",
    "PUBLIC_CACHE_CONTROL",
    "REBUILD_RETRY_AFTER_S",
    "Feed",
    "FeedRead",
    "ItemId",
    "ReadableFeed",
    "ReaderToken",
    "check_read",
    "complete_store",
    "on_store_emptied",
    "read_access",
    "rebuilding",
]

Feed = Annotated[str, Path(pattern=FEED_PATTERN, description="Feed slug.")]
ItemId = Annotated[str, Path(pattern=ITEM_ID_PATTERN, description="Item id.")]

ReaderToken = Annotated[str | None, Query(
    max_length=MAX_TOKEN_LENGTH,
    pattern=r"^[A-Za-z0-9_.=-]*$",
    description="A reader token for a private feed, for clients that cannot send `Authorization: Bearer`.",
)]

REBUILD_RETRY_AFTER_S = 2
PUBLIC_CACHE_CONTROL = "no-cache"
PRIVATE_CACHE_CONTROL = "private, no-store"
"""A private feed's answers are for the one reader who sent the token: no shared cache may keep them."""


@dataclass(frozen=True, slots=True)
class FeedRead:
    """A read of ``feed`` that the request may make, and how its answer may be cached."""

    feed: str
    private: bool

    @property
    def cache_control(self) -> str:
        return PRIVATE_CACHE_CONTROL if self.private else PUBLIC_CACHE_CONTROL


def read_access(request: Request) -> ReadAccess:
    """Which feeds are private and the key that checks their tokens, built once at start (``app.py``)."""
    access: ReadAccess = request.app.state.access
    return access


def check_read(request: Request, feed: str, authorization: str | None, token: str | None) -> FeedRead:
    """May this request read ``feed``: its reader token from ``Authorization: Bearer``, else ``?token=``.

    Raises the refusal (401 ``reader_token_*``, 403 ``reader_token_wrong_feed``) for a private
    feed; a public one needs nothing. The pages call it directly, the API through :data:`ReadableFeed`.
    """
    expires = read_access(request).check(feed, bearer_token(authorization, token))
    return FeedRead(feed, private=expires is not None)


def _feed_read(
    request: Request,
    feed: Feed,
    token: ReaderToken = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> FeedRead:
    return check_read(request, feed, authorization, token)


ReadableFeed = Annotated[FeedRead, Depends(_feed_read)]
"""A route parameter that refuses a read of a private feed without a token that grants it."""


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

"""A feed for feed readers and newsletter tools: Atom 1.0 at ``/feeds/{feed}.atom`` and JSON Feed 1.1
at ``/feeds/{feed}.json``, beside the reader page ``/feeds/{feed}`` (the gateway sends all three here).

Both carry the feed's current items, newest first (retractions gone), with links under the
configured public URL (``links.py``), whatever Host the request named. Each answer has a weak
ETag over its items' ids and versions: a poller sending ``If-None-Match`` gets a 304 until an item is
published, edited or retracted. A private feed needs its reader token here as on every read, and
its answers are never cached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from shared.models import Item, Status

from .deps import FeedRead, ReadableFeed, complete_store
from .formats.atom import ATOM_MEDIA_TYPE, render_atom
from .formats.common import FeedLinks, etag_matches, list_etag
from .formats.jsonfeed import JSON_FEED_MEDIA_TYPE, render_json_feed
from .links import public_urls

__all__ = ["MAX_EXPORT_ITEMS", "router"]

MAX_EXPORT_ITEMS = 100
"""The most items one export answer carries: feed readers poll, they do not page back."""

router = APIRouter(include_in_schema=False)

Limit = Annotated[int, Query(ge=1, le=MAX_EXPORT_ITEMS, description="How many of the newest items.")]
IfNoneMatch = Annotated[str | None, Header(max_length=1024)]

Renderer = Callable[[str, Sequence[Item], FeedLinks], bytes]


@router.get("/feeds/{feed}.atom")
async def atom_feed(
    request: Request, read: ReadableFeed, limit: Limit = 20, if_none_match: IfNoneMatch = None
) -> Response:
    """The feed as Atom 1.0."""
    return await _export(request, read, limit, if_none_match, kind="atom", render=render_atom,
                         media_type=ATOM_MEDIA_TYPE)


@router.get("/feeds/{feed}.json")
async def json_feed(
    request: Request, read: ReadableFeed, limit: Limit = 20, if_none_match: IfNoneMatch = None
) -> Response:
    """The feed as JSON Feed 1.1."""
    return await _export(request, read, limit, if_none_match, kind="json-feed", render=render_json_feed,
                         media_type=JSON_FEED_MEDIA_TYPE)


async def _export(
    request: Request, read: FeedRead, limit: int, if_none_match: str | None, *, kind: str, render: Renderer,
    media_type: str,
) -> Response:
    """One store read, then a 304 if the reader has this very list, else the rendered document."""
    _, stored = await complete_store(request).page(read.feed, limit=limit)
    items = [Item.model_validate_json(s.item_json) for s in stored if s.status == Status.published.value]
    links = FeedLinks(public_urls(request).feed_page(read.feed))
    etag = list_etag(kind, links, items)
    headers = {"ETag": etag, "Cache-Control": read.cache_control, "Vary": "Authorization"}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(render(read.feed, items, links), media_type=media_type, headers=headers)

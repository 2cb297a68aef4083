"""A feed's current items as a JSON Feed 1.1 document (https://jsonfeed.org/version/1.1).

Items are newest first; ``id`` is the item's URN (stable across edits), ``date_modified`` its
``updated_at``, so a correction shows as a change of the same item. Bodies go out as
``content_text``: they are plain text, never HTML.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from shared.models import Item

from ..render import feed_title, iso, safe_link
from .common import FeedLinks, content_text, entry_id

__all__ = ["JSON_FEED_MEDIA_TYPE", "JSON_FEED_VERSION", "json_feed", "render_json_feed"]

JSON_FEED_MEDIA_TYPE = "application/feed+json; charset=utf-8"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"


def json_feed(feed: str, items: Sequence[Item], links: FeedLinks) -> dict[str, Any]:
    """The JSON Feed object of ``items`` (already newest first, retractions left out)."""
    title = feed_title(feed)
    return {
        "version": JSON_FEED_VERSION,
        "title": f"{title}: live updates",
        "home_page_url": links.page,
        "feed_url": links.json_feed,
        "description": f"{title}: live updates, newest first.",
        "authors": [{"name": title}],
        "items": [_item(feed, item, links) for item in items],
    }


def render_json_feed(feed: str, items: Sequence[Item], links: FeedLinks) -> bytes:
    """:func:`json_feed` as UTF-8 bytes."""
    return orjson.dumps(json_feed(feed, items, links))


def _item(feed: str, item: Item, links: FeedLinks) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": entry_id(feed, item.id),
        "url": links.item(item.id),
        "title": item.headline,
        "content_text": content_text(item),
        "date_published": iso(item.published_at),
        "date_modified": iso(item.updated_at),
    }
    if (external := safe_link(item.url)) is not None:
        entry["external_url"] = external
    if item.tags:
        entry["tags"] = list(item.tags)
    if item.byline:
        entry["authors"] = [{"name": item.byline}]
    images = item.images
    if images:
        entry["image"] = images[0].url
    return entry

"""What every export format shares: the item's stable id, the feed's public links, its text, the ETag.

Ids are URNs built from the feed and the item id (``urn:livefeed:ukraine:01m8…``), so they stay
the same whatever host, scheme or path serves the feed, and a subscriber's reader or a wire
partner's system recognises an item again after an edit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from shared.models import Item

__all__ = ["FeedLinks", "content_text", "entry_id", "etag_matches", "feed_id", "list_etag"]


def feed_id(feed: str) -> str:
    """The feed's own stable id."""
    return f"urn:livefeed:{feed}"


def entry_id(feed: str, item_id: str) -> str:
    """An item's stable id in every format: the same for all its versions, never reused."""
    return f"urn:livefeed:{feed}:{item_id}"


@dataclass(frozen=True, slots=True)
class FeedLinks:
    """The feed's public addresses, all derived from its reader page's absolute URL (``links.py``)."""

    page: str

    def item(self, item_id: str) -> str:
        """The item on the reader page (its ``#item-…`` anchor)."""
        return f"{self.page}#item-{item_id}"

    @property
    def atom(self) -> str:
        return f"{self.page}.atom"

    @property
    def json_feed(self) -> str:
        return f"{self.page}.json"


def list_etag(kind: str, links: FeedLinks, items: Sequence[Item]) -> str:
    """A weak ETag for a feed export: it changes when an item is added, edited (its version) or retracted
    (it leaves the list), and differs between formats and between public URLs (a redeploy under another
    name changes the links the body holds); never between requests' Host headers, which build nothing."""
    digest = hashlib.sha256(f"{kind}\n{links.page}\n".encode())
    for item in items:
        digest.update(f"{item.id}:{item.version}\n".encode())
    return f'W/"{digest.hexdigest()[:32]}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag``, compared weakly as RFC 9110 asks for GET (``*`` matches too)."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


def content_text(item: Item) -> str:
    """An entry's text for feed readers: the body (the headline if there is none), then the item's
    correction note, so a reader of the feed learns of a correction as the reader page shows it."""
    text = item.body or item.headline
    if item.correction is not None:
        text += f"\n\nCorrection: {item.correction.note}"
    return text

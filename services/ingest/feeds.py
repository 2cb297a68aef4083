"""The feed cap: how many feeds may exist at once, and what it does while Redis is away."""

from __future__ import annotations

import logging

from shared.breaker import Breaker, StoreUnavailable
from shared.store import ItemStore

__all__ = ["FeedCap"]

log = logging.getLogger("livefeed.ingest")


class FeedCap:
    """Allows a post to a feed that exists, or to a new one while fewer than ``max_feeds`` exist.

    Feeds seen here are remembered, so a post to a known feed costs no Redis round trip.
    While Redis cannot answer, the cap fails open: a newsroom keeps publishing in an outage
    (writers are authenticated tools; the cap guards against sprawl, not attacks).
    """

    def __init__(self, store: ItemStore, breaker: Breaker, max_feeds: int) -> None:
        self.store = store
        self.breaker = breaker
        self.max_feeds = max_feeds
        self.known: set[str] = set()

    async def allows(self, feed: str) -> bool:
        if feed in self.known:
            return True
        try:
            exists = await self.breaker.call(lambda: self.store.has_feed(feed))
            allowed = exists or await self.breaker.call(self.store.feed_count) < self.max_feeds
        except StoreUnavailable:
            log.warning("feed cap not checked: redis unavailable", extra={"feed": feed})
            return True
        if allowed:
            self.known.add(feed)
        return allowed

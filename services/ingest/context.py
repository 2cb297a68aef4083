"""What every write route needs, built once per process by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from shared.breaker import Breaker
from shared.reader_tokens import ReaderTokens
from shared.settings import IngestSettings
from shared.store import ItemStore

from .auth import Credentials
from .feeds import FeedCap
from .idempotency import Idempotency
from .limits import WriteLimits
from .publisher import Publisher

__all__ = ["IngestContext"]


@dataclass(frozen=True)
class IngestContext:
    """The parts of ingest a request uses; ``breaker`` guards every Redis call they make."""

    settings: IngestSettings
    publisher: Publisher
    store: ItemStore
    breaker: Breaker
    idempotency: Idempotency
    external_ids: Idempotency
    """Publishes by ``external_id`` (CMS re-syncs): one item per feed and external_id, see ``external_ids``."""
    feeds: FeedCap
    credentials: Credentials
    limiter: WriteLimits
    reader_tokens: ReaderTokens | None = None
    """Mints reader tokens for private feeds; None without LIVEFEED_READER_TOKEN_KEY."""

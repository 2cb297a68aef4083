"""CMS re-sync: a publish with an ``external_id`` makes at most one item per feed and external_id.

A CMS that publishes its articles again (a re-sync, a retry from another worker) sends the same
``external_id``. The first publish makes the item (201). A later one with the same body is
answered **200** with the item as it stands now (edits included) and ``External-Id-Replayed: true``;
one with another body is a **409** ``external_id_conflict`` naming the item, to be changed with
an edit (a publish never rewrites an item: that would bypass If-Match and the edit permissions);
one for a retracted item is a **410**, and nothing is published again.

The claim is an Idempotency-Key record of its own (``idem:~ext:{feed}:{sha256}``, kept for
``LIVEFEED_RETENTION_AGE_S`` after the publish), so publishes racing in several ingest processes
wait for one another and make one item. While Redis is away the publish goes ahead carrying the
event ``op`` derived from the feed and the external_id: history and fanout keep only the first
item with that op (within ``LIVEFEED_IDEMPOTENCY_TTL_S``), as for an Idempotency-Key. That first
item is the truth: history records it under ``op:{op}``, and every repeat is answered from there,
so an item a consumer dropped is never named once Redis is back (a repeat while Redis is away is
a 503: nothing changes). Only the publish made while Redis is away can answer 201 with an item
readers will not see (when one with the same external_id exists already): a re-sync after the
outage names the kept one.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from shared import keys
from shared.breaker import StoreUnavailable
from shared.errors import ApiError
from shared.models import ItemCreate
from shared.openapi import ErrorBody, WriteAnswer

from .context import IngestContext
from .idempotency import op_id

__all__ = ["REPLAYED_HEADER", "RESYNC_RESPONSES", "SCOPE", "claim_key", "external_op", "publish_once"]

SCOPE = "~ext"
"""The claims' scope: no credential name starts with ``~``, so no caller's Idempotency-Key can stand in for one."""
REPLAYED_HEADER = "External-Id-Replayed"

RESYNC_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": WriteAnswer, "description": "An item with this `external_id` is already in the feed, "
          "published with the same body: it is answered as it stands now, and nothing is published "
          f"(`{REPLAYED_HEADER}: true`).",
          "headers": {REPLAYED_HEADER: {"description": "`true`: this publish repeated an earlier one.",
                                        "schema": {"type": "string", "enum": ["true"]}}}},
    409: {"model": ErrorBody, "description": "`external_id_conflict`: the `external_id` names an item published "
          "with another body (its `id` is given: edit it instead). `external_id_in_use`, `item_busy`, "
          "`idempotency_key_in_use`: another request is still running, retry after Retry-After.",
          "headers": {"Retry-After": {"description": "Seconds to wait, when retrying helps.",
                                      "schema": {"type": "string", "pattern": "^[0-9]+$"}}}},
}
"""The publish route's answers for a re-sync, beside its usual ones (``responses=``)."""


_RESYNCS: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
"""One lock per claim while publishes of it run in this process: with Redis away the claim cannot
say 'busy', so concurrent re-syncs wait for the first, whose answer (kept in memory) they then get.
20 at once during an outage answered ten 201s with ten ids readers never see (outside review)."""


def claim_key(feed: str, external_id: str) -> str:
    """The claim's key: the feed and a hash of the external_id (any printable text, up to 200 long)."""
    return f"{feed}:{hashlib.sha256(external_id.encode()).hexdigest()}"


def external_op(feed: str, external_id: str) -> str:
    """The event ``op`` of a publish with ``external_id`` in ``feed``: the same for every caller and process."""
    return op_id(SCOPE, f"{feed}\n{external_id}")


async def publish_once(
    ingest: IngestContext, feed: str, create: ItemCreate, item_id: str,
    send: Callable[[str, str | None], Awaitable[tuple[int, bytes]]],
) -> tuple[int, bytes]:
    """Publish ``create`` with ``send(item_id, op)`` unless its external_id is in ``feed`` already.

    Returns ``send``'s answer, or ``(200, the existing item)``; raises the 409 or 410 described above.
    """
    external_id = create.external_id
    assert external_id is not None
    digest = hashlib.sha256(orjson.dumps(create.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()
    op = external_op(feed, external_id)

    async def send_once(claimed: str) -> tuple[int, bytes]:
        try:
            kept = await _kept_item(ingest, op)
        except StoreUnavailable:
            kept = None
        if kept is not None:
            return 200, await _existing(ingest, feed, kept, None)
        return await send(claimed, op)

    claim = claim_key(feed, external_id)
    lock = _RESYNCS.get(claim)
    if lock is None:
        lock = _RESYNCS[claim] = asyncio.Lock()
    async with lock:
        outcome = await ingest.external_ids.once(SCOPE, claim, digest, item_id, send_once)
    if outcome.kind == "ran":
        return outcome.status, outcome.body
    if outcome.kind == "busy":
        raise ApiError(409, "external_id_in_use", "A publish with this external_id is still running; retry shortly.",
                       fields=[{"field": "external_id", "message": "being published"}], headers={"Retry-After": "1"})
    if outcome.kind == "mismatch":
        raise ApiError(
            409, "external_id_conflict",
            f"external_id is item {outcome.item_id} in feed {feed}, published with other content; "
            f"a publish does not change it: edit it with PATCH /v1/feeds/{feed}/items/{outcome.item_id}.",
            fields=[{"field": "external_id", "message": "already published with other content"}],
            extra={"id": outcome.item_id},
        )
    answered = str(orjson.loads(outcome.body)["item"]["id"])
    return 200, await _existing(ingest, feed, await _kept_item(ingest, op) or answered, outcome.body)


async def _kept_item(ingest: IngestContext, op: str) -> str | None:
    """The item consumers kept for ``op`` (the first in Kafka order), if history has recorded it yet.

    Raises :class:`StoreUnavailable` without Redis: a repeat is then answered 503 (nothing changes),
    never with an item readers may not have.
    """
    kept = await ingest.breaker.call(lambda: ingest.store.redis.get(keys.key("op", op=op)))
    return kept.decode() if isinstance(kept, bytes) else None


async def _existing(ingest: IngestContext, feed: str, item_id: str, first: bytes | None) -> bytes:
    """Item ``item_id`` as it stands now, or ``first`` (its first answer) once the store has let it go."""
    stored = await ingest.breaker.call(lambda: ingest.store.get(feed, item_id))
    if stored is None:
        if first is None:
            raise StoreUnavailable(f"item {item_id} is not in the store yet")
        return first
    if stored.status == "retracted":
        raise ApiError(410, "retracted", f"The item with this external_id, {item_id}, was retracted; "
                       "it is not published again.", fields=[{"field": "external_id", "message": "retracted"}],
                       extra={"id": item_id, "version": stored.version})
    return orjson.dumps({"item": stored.item(), "cursor": stored.cursor.serialize()})

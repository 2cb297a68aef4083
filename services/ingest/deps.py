"""The request dependencies of ingest's routes, as type aliases: who writes (a named credential), to what, how."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Request

from shared.errors import ApiError
from shared.models import FEED_PATTERN, ITEM_ID_PATTERN

from .context import IngestContext
from .permissions import Principal

__all__ = ["Feed", "IdempotencyKey", "IfMatch", "IngestDep", "ItemId", "Writer"]


async def _ingest(request: Request) -> IngestContext:
    ingest: IngestContext = request.app.state.ingest
    return ingest


IngestDep = Annotated[IngestContext, Depends(_ingest)]


async def _writer(request: Request, ingest: IngestDep) -> Principal:
    """The named credential of the request's bearer token (401 without one), within its write rate (429)."""
    client = request.client.host if request.client else ""
    principal = await ingest.credentials.identify(request.headers.get("authorization"), client)
    if principal is None:
        raise ApiError(
            401,
            "unauthorized",
            "Writes need a newsroom token: send 'Authorization: Bearer <token>'.",
            fields=[{"field": "Authorization", "message": "missing or unknown bearer token"}],
            headers={"WWW-Authenticate": "Bearer"},
        )
    wait = await ingest.limiter.allow(principal.name)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"Too many writes for this credential; retry in {wait:.2f}s.",
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    return principal


Writer = Annotated[Principal, Depends(_writer)]
Feed = Annotated[str, Path(pattern=FEED_PATTERN, description="Feed slug, e.g. `ukraine`.")]
ItemId = Annotated[str, Path(pattern=ITEM_ID_PATTERN, description="Item id (a ULID).")]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=128, pattern=r"^[\x21-\x7e]+$",
           description="Makes a retry safe: the same key and body return the first answer."),
]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=32, description="Expected item version.")]

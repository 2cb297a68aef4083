"""Feed management routes (``feeds:manage``, admins only): minting reader tokens for private feeds."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import ApiError
from shared.openapi import BEARER, error_responses

from . import permissions
from .deps import Feed, IngestDep, Writer
from .permissions import Permission

__all__ = ["ReaderTokenAnswer", "ReaderTokenRequest", "router"]

router = APIRouter(prefix="/v1/feeds/{feed}", tags=["feeds"])

MIN_TTL_S = 60


class ReaderTokenRequest(BaseModel):
    """How long the reader token lives, in seconds (at most LIVEFEED_READER_TOKEN_MAX_TTL_S)."""

    model_config = ConfigDict(extra="forbid")

    ttl_s: int = Field(
        ge=MIN_TTL_S, le=366 * 86_400, examples=[3600],
        description="Seconds the token lives; this deployment's LIVEFEED_READER_TOKEN_MAX_TTL_S "
        "(default 86400) is the real bound, and more is a 422 naming ttl_s.",
    )


class ReaderTokenAnswer(BaseModel):
    """A reader token for one feed: send it as ``Authorization: Bearer`` or ``?token=`` to read the feed."""

    token: str
    feed: str
    expires_at: datetime


@router.post("/reader-tokens", status_code=201, response_model=ReaderTokenAnswer, summary="Mint a reader token",
             dependencies=BEARER, responses=error_responses(400, 401, 403, 409, 413, 422, 429, 503))
async def mint_reader_token(
    feed: Feed, request: ReaderTokenRequest, ingest: IngestDep, caller: Writer
) -> ReaderTokenAnswer:
    """A signed token that lets its holder read ``feed`` until it expires (for a private feed's readers)."""
    permissions.require(caller, Permission.feeds_manage, feed)
    limit = ingest.settings.reader_token_max_ttl_s
    if request.ttl_s > limit:
        raise ApiError(422, "validation_error", f"ttl_s: at most {limit} seconds",
                       fields=[{"field": "ttl_s", "message": f"at most {limit}"}])
    if ingest.reader_tokens is None:
        raise ApiError(409, "reader_tokens_not_configured",
                       "This deployment has no LIVEFEED_READER_TOKEN_KEY, so it cannot mint reader tokens.",
                       fields=[{"field": "feed", "message": "reader tokens are not configured"}])
    token, expires = ingest.reader_tokens.mint(feed, request.ttl_s, subject=caller.name)
    return ReaderTokenAnswer(token=token, feed=feed, expires_at=datetime.fromtimestamp(expires, UTC))

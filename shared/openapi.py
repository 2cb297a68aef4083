"""What the OpenAPI documents of ingest and history say, kept true to what the services answer.

The routes build their answers as bytes (the hot path does not re-validate), so the models here
are for the schema only: :class:`ErrorBody` is the one error shape (``shared/errors.py``),
:class:`WriteAnswer` / :class:`RetractAnswer` what a write answers, :class:`FeedList` and
:class:`ItemPage` history's lists. A route declares the errors it can give with
``responses=error_responses(...)``; that also replaces FastAPI's own 422 body, which is not ours.
``BEARER`` puts the bearer scheme on a route (Swagger's Authorize button) without refusing anyone.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from .models import Item, Tombstone

__all__ = [
    "BEARER",
    "BEARER_OPTIONAL",
    "BEARER_SCHEME",
    "ErrorBody",
    "ErrorField",
    "FeedList",
    "FeedSummary",
    "ItemPage",
    "ReadinessBody",
    "RetractAnswer",
    "WriteAnswer",
    "error_responses",
    "item_create_examples",
    "readiness_responses",
    "served_under",
]

BEARER_SCHEME = "bearerAuth"

bearer = HTTPBearer(
    scheme_name=BEARER_SCHEME,
    description="A newsroom token for writes; a reader token (JWT) for a private feed's reads.",
    auto_error=False,
)
"""Documents ``Authorization: Bearer``; the routes' own dependencies decide, with our 401 body."""

BEARER: list[DependsParam] = [Depends(bearer)]
"""``dependencies=BEARER`` on a route decorator: the scheme in its OpenAPI, no change in who is refused."""

BEARER_OPTIONAL: dict[str, Any] = {"security": [{}]}
"""``openapi_extra=`` beside ``BEARER`` for a read: public feeds need no token, private ones a reader token."""


class ErrorField(BaseModel):
    """The part of the request at fault, and what was wrong with it."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """Every livefeed error (``shared/errors.py``); some add keys, e.g. ``version`` on a 412 or a 410."""

    model_config = ConfigDict(extra="allow", title="Error")

    error: str = Field(description="A stable code to branch on, e.g. `not_found`.")
    message: str = Field(description="What happened and what to do, for people.")
    fields: list[ErrorField] = Field(description="What in the request was at fault (may be empty).")


_SAMPLE_ITEM: dict[str, Any] = {
    "id": "01m8cng7dqz8mzsg2ge1ydk21g", "feed": "ukraine", "version": 1, "status": "published",
    "headline": "Russia launches overnight drone attack on Kyiv", "body": "Air defences were active.",
    "tags": ["kyiv"], "urgency": "breaking", "url": None, "byline": None, "pinned": False,
    "key_event": False, "published_at": "2026-11-27T08:15:03.120000Z", "updated_at": "2026-11-27T08:15:03.120000Z",
}
_SAMPLE_CURSOR = "f733f5e9.1.41"


class WriteAnswer(BaseModel):
    """A write's answer: the item as stored, and the feed position of its event (``since=`` for the stream)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"item": _SAMPLE_ITEM, "cursor": _SAMPLE_CURSOR}]})

    item: Item
    cursor: str


class RetractAnswer(BaseModel):
    """A retraction's answer: the tombstone left of the item, and the position of its event."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "item": {k: _SAMPLE_ITEM[k] for k in ("id", "feed", "published_at", "updated_at")}
        | {"version": 2, "status": "retracted"},
        "cursor": "f733f5e9.1.42",
    }]})

    item: Tombstone
    cursor: str


class FeedSummary(BaseModel):
    """A feed and when it last changed (Unix milliseconds)."""

    feed: str
    updated_ms: int


class FeedList(BaseModel):
    """Every feed with an item in retention, most recently changed first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"feeds": [{"feed": "ukraine",
                                                                         "updated_ms": 1795721534905}]}]})

    feeds: list[FeedSummary]


class ItemPage(BaseModel):
    """A page of a feed's items, newest first; ``cursor`` is null until the feed has an event."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "feed": "ukraine", "cursor": _SAMPLE_CURSOR, "next_before": None, "items": [_SAMPLE_ITEM],
    }]})

    feed: str
    cursor: str | None = Field(description="The feed position this page reflects: open the stream with `since=` it.")
    next_before: str | None = Field(description="Pass as `before=` for the next page; null on the last one.")
    items: list[Item]


class ReadinessBody(BaseModel):
    """A service's readiness: ``ready``, or why not yet (e.g. ``starting``, ``rebuilding``, ``redis_unavailable``)."""

    model_config = ConfigDict(extra="allow", title="Readiness")

    status: str


_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]+$"}},
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {"description": "The bearer challenge (RFC 6750).", "schema": {"type": "string"}},
}


def _error(code: str, message: str, field: str, problem: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, "fields": [{"field": field, "message": problem}], **extra}


_ERRORS: dict[int, tuple[str, dict[str, Any], dict[str, Any] | None]] = {
    400: ("The request is malformed: a body that is not JSON, a bad cursor or If-Match.",
          _error("malformed_json", "The request body is not valid JSON.", "body", "invalid JSON"), None),
    401: ("No valid token: writes need a newsroom token, a private feed's reads a reader token.",
          _error("unauthorized", "Writes need a newsroom token: send 'Authorization: Bearer <token>'.",
                 "Authorization", "missing or unknown bearer token"), _WWW_AUTHENTICATE),
    403: ("The token is valid but does not grant this: the permission or feed is named.",
          _error("forbidden", "The reporter credential 'kyiv-desk' may not do this: it needs items:retract.",
                 "Authorization", "needs items:retract", permission="items:retract"), None),
    404: ("No such item (or route).", _error("not_found", "No item 01m8cng7dqz8mzsg2ge1ydk21g in feed ukraine.",
                                             "id", "unknown item"), None),
    409: ("Another request on this item or Idempotency-Key is still running: retry after Retry-After.",
          _error("item_busy", "Another edit of this item is in progress; retry.", "id", "being edited"),
          _RETRY_AFTER),
    410: ("The item was retracted.", _error("retracted", "The newsroom retracted this item.", "id", "retracted"),
          None),
    412: ("If-Match names a version the item has moved past: reload it and apply the edit again.",
          _error("version_mismatch", "The item is at version 3, not 2: reload it and apply your edit again.",
                 "If-Match", "stale version", version=3), None),
    413: ("The request body is over 64 KiB.",
          _error("body_too_large", "The request body is over 65536 bytes.", "body", "at most 65536 bytes"), None),
    422: ("A field is invalid, the feed cap is reached, or an Idempotency-Key is reused with another body.",
          _error("validation_error", "headline: Field required", "headline", "Field required"), None),
    429: ("Too many requests for this token or client address: retry after Retry-After.",
          _error("rate_limited", "Too many writes for this token; retry in 0.50s.", "connection",
                 "at most 200 writes/s per token"), _RETRY_AFTER),
    503: ("A backing service (Kafka, Redis) is not answering, or history is rebuilding: nothing was changed "
          "unless the message says it may have been; retry after Retry-After.",
          _error("store_unavailable", "livefeed's store is not answering right now; nothing was changed. "
                 "Retry shortly.", "store", "redis unavailable"), _RETRY_AFTER),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with our error body, an example, and Retry-After where it applies."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, example, headers = _ERRORS[status]
        response: dict[str, Any] = {"model": ErrorBody, "description": description,
                                    "content": {"application/json": {"example": example}}}
        if headers:
            response["headers"] = headers
        responses[status] = response
    return responses


def item_create_examples() -> dict[str, Any]:
    """``openapi_extra=`` that shows a publish body in Swagger (and feeds schemathesis' examples phase)."""
    body = {k: _SAMPLE_ITEM[k] for k in ("headline", "body", "tags", "urgency")}
    return {"requestBody": {"content": {"application/json": {"example": body}}}}


def readiness_responses() -> dict[int | str, dict[str, Any]]:
    """``responses=`` for ``/readyz``: its 503 is the readiness body, not an error, and says when to look again."""
    return {
        503: {"model": ReadinessBody, "headers": _RETRY_AFTER,
              "description": "Not ready yet (the body says why); look again after Retry-After."},
        **error_responses(429),
    }


def served_under(prefix: str) -> dict[str, Any]:
    """``openapi_extra=`` for a route the gateway reaches only under the service's prefix (not at ``/``)."""
    return {"servers": [{"url": prefix, "description": "the gateway, under this service's prefix"}]}

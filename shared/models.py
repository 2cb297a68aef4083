"""The news item, in the families a client may send and a client gets back.

The shape follows IPTC ninjs where it fits (``headline``, ``body``, ``urgency``, ``version``,
``byline``, ``pubStatus`` as ``status``), kept in snake_case like the rest of the API.
Headlines and bodies are plain text: every client shows them as text, never as HTML.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "FEED_PATTERN",
    "ITEM_ID_PATTERN",
    "TAG_PATTERN",
    "Item",
    "ItemCreate",
    "ItemUpdate",
    "Status",
    "Tombstone",
    "Urgency",
    "valid_feed",
    "valid_item_id",
    "valid_tag",
]

FEED_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
"""A feed slug: lowercase letters, digits and dashes, 1 to 63 long (services/history/web/rules.js too)."""
TAG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"
"""A tag slug, 1 to 40 long (services/history/web/rules.js too)."""
ITEM_ID_PATTERN = r"^[0-9a-z]{26}$"
"""An item id: a lowercase ULID (services/history/web/rules.js too)."""
_FEED_RE = re.compile(FEED_PATTERN)
_TAG_RE = re.compile(TAG_PATTERN)
_ITEM_ID_RE = re.compile(ITEM_ID_PATTERN)

MAX_HEADLINE = 300
MAX_BODY = 10_000
MAX_TAGS = 20


def valid_feed(feed: str) -> bool:
    """Whether ``feed`` is a feed slug: lowercase letters, digits and dashes, 1 to 63 long."""
    return _FEED_RE.fullmatch(feed) is not None


def valid_tag(tag: str) -> bool:
    """Whether ``tag`` is a tag slug: lowercase letters, digits and dashes, 1 to 40 long."""
    return _TAG_RE.fullmatch(tag) is not None


def valid_item_id(item_id: str) -> bool:
    """Whether ``item_id`` has the form of an item id (26 lowercase letters and digits)."""
    return _ITEM_ID_RE.fullmatch(item_id) is not None


def _no_control_chars(value: str) -> str:
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value


class Urgency(StrEnum):
    breaking = "breaking"
    normal = "normal"


class Status(StrEnum):
    published = "published"
    retracted = "retracted"


Headline = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_HEADLINE),
    AfterValidator(_no_control_chars),
]
Body = Annotated[str, StringConstraints(max_length=MAX_BODY), AfterValidator(_no_control_chars)]
Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS)]
Url = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_http_url)]
Byline = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_no_control_chars)]


class ItemCreate(BaseModel):
    """What a newsroom sends to publish an item."""

    model_config = ConfigDict(extra="forbid")

    headline: Headline
    body: Body = ""
    tags: Tags = Field(default_factory=list)
    urgency: Urgency = Urgency.normal
    url: Url | None = None
    byline: Byline | None = None
    pinned: bool = False
    key_event: bool = False


class ItemUpdate(BaseModel):
    """An edit or correction: only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    headline: Headline | None = None
    body: Body | None = None
    tags: Tags | None = None
    urgency: Urgency | None = None
    url: Url | None = None
    byline: Byline | None = None
    pinned: bool | None = None
    key_event: bool | None = None

    @field_validator("headline", "body", "tags", "urgency", "pinned", "key_event")
    @classmethod
    def _not_removed(cls, value: object, info: ValidationInfo) -> object:
        """Only the url and the byline may be removed (sent as null); every item has the rest."""
        if value is None:
            raise ValueError(f"{info.field_name} cannot be removed")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> ItemUpdate:
        if not self.model_fields_set:
            raise ValueError("an edit must change at least one field")
        return self


class Item(BaseModel):
    """An item as stored and served: the newsroom's fields plus what the server assigns."""

    id: str
    feed: str
    version: int = Field(ge=1)
    status: Status = Status.published
    headline: str
    body: str = ""
    tags: list[str] = Field(default_factory=list)
    urgency: Urgency = Urgency.normal
    url: str | None = None
    byline: str | None = None
    pinned: bool = False
    key_event: bool = False
    published_at: datetime
    updated_at: datetime


class Tombstone(BaseModel):
    """What is left of a retracted item, in its retraction event and in history: no words."""

    id: str
    feed: str
    version: int = Field(ge=1)
    status: Status = Status.retracted
    published_at: datetime
    updated_at: datetime

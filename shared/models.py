"""The news item, in the families a client may send and a client gets back.

The shape follows IPTC ninjs where it fits (``headline``, ``body``, ``urgency``, ``version``,
``byline``, ``pubStatus`` as ``status``), kept in snake_case like the rest of the API.
Headlines and bodies are plain text: every client shows them as text, never as HTML.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

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
    "EXTERNAL_ID_PATTERN",
    "FEED_PATTERN",
    "FEED_SET_PATTERN",
    "ITEM_ID_PATTERN",
    "TAG_PATTERN",
    "Correction",
    "FeedSet",
    "Image",
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
FEED_SET_PATTERN = r"^(\*|[a-z0-9][a-z0-9-]{0,62}\*?)$"
"""One entry of a set of feeds: ``*`` (every feed), a feed slug, or a slug prefix ending in ``*`` (``wire-*``)."""
EXTERNAL_ID_PATTERN = r"^[\x20-\x7e]+$"
"""A CMS's own id for an item (``external_id``): printable ASCII, at most :data:`MAX_EXTERNAL_ID` long."""
_FEED_RE = re.compile(FEED_PATTERN)
_FEED_SET_RE = re.compile(FEED_SET_PATTERN)
_TAG_RE = re.compile(TAG_PATTERN)
_ITEM_ID_RE = re.compile(ITEM_ID_PATTERN)

MAX_HEADLINE = 300
MAX_BODY = 10_000
MAX_TAGS = 20
MAX_IMAGES = 4
"""Images per item: a live update carries a picture or a few, not a gallery."""
MAX_CORRECTION = 500
IMAGE_URL_PATTERN = r"^https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][!-~]*)?$"
"""An image address: https only (no http:, data: or javascript:), a host, then printable ASCII without spaces."""
_IMAGE_URL_RE = re.compile(IMAGE_URL_PATTERN)
MAX_EXTERNAL_ID = 200


def valid_feed(feed: str) -> bool:
    """Whether ``feed`` is a feed slug: lowercase letters, digits and dashes, 1 to 63 long."""
    return _FEED_RE.fullmatch(feed) is not None


def valid_tag(tag: str) -> bool:
    """Whether ``tag`` is a tag slug: lowercase letters, digits and dashes, 1 to 40 long."""
    return _TAG_RE.fullmatch(tag) is not None


def valid_item_id(item_id: str) -> bool:
    """Whether ``item_id`` has the form of an item id (26 lowercase letters and digits)."""
    return _ITEM_ID_RE.fullmatch(item_id) is not None


class FeedSet:
    """Feeds named by :data:`FEED_SET_PATTERN` entries: a credential's feeds, and LIVEFEED_PRIVATE_FEEDS."""

    def __init__(self, patterns: Sequence[str]) -> None:
        wrong = [p for p in patterns if _FEED_SET_RE.fullmatch(p) is None]
        if wrong:
            raise ValueError(f"not a feed, a feed prefix ending in * or *: {', '.join(map(repr, wrong))}")
        self.patterns = tuple(patterns)
        self._exact = frozenset(p for p in patterns if not p.endswith("*"))
        self._prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __contains__(self, feed: str) -> bool:
        return feed in self._exact or feed.startswith(self._prefixes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeedSet) and other.patterns == self.patterns

    def __hash__(self) -> int:
        return hash(self.patterns)

    def __repr__(self) -> str:
        return f"FeedSet({list(self.patterns)!r})"


_NOT_TEXT = r"\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff"
"""What no newsroom text may hold besides newline and tab: control characters (C0, DEL, C1) and
U+FFFE/U+FFFF, which XML 1.0 forbids: one such character made the whole Atom feed unreadable.
Both the validators and the schema patterns below are built from this one rule."""
_SURROGATES = r"\ud800-\udfff"
"""Lone surrogates (a JSON body can spell them as \\u escapes) are refused too, but left out of the
documented patterns: schemathesis cannot generate from a pattern that names them, and drops it."""
_NOT_LINE = r"\x09\x0a" + _NOT_TEXT
_NOT_TEXT_RE = re.compile(f"[{_NOT_TEXT}{_SURROGATES}]")
_NOT_LINE_RE = re.compile(f"[{_NOT_LINE}{_SURROGATES}]")
_HTTP_URL_PATTERN = f"^https?://[^\\s/?#@{_NOT_TEXT}]+(?:[/?#][^\\s{_NOT_TEXT}]*)?$"
_HTTP_URL_RE = re.compile(_HTTP_URL_PATTERN)
_SURROGATE_RE = re.compile(f"[{_SURROGATES}]")


def _no_control_chars(value: str) -> str:
    if _NOT_TEXT_RE.search(value):
        raise ValueError("must not contain control characters")
    return value


def _http_url(value: str) -> str:
    if _HTTP_URL_RE.fullmatch(value) is None or _SURROGATE_RE.search(value):
        raise ValueError("must be an http(s) URL with a host, without spaces or control characters")
    return value


def _image_url(value: str) -> str:
    if _IMAGE_URL_RE.fullmatch(value) is None:
        raise ValueError("must be an https:// URL (no http:, data: or javascript:)")
    return value


def _one_line(value: str) -> str:
    if _NOT_LINE_RE.search(value):
        raise ValueError("must be one line without control characters")
    return value


class Urgency(StrEnum):
    breaking = "breaking"
    normal = "normal"


class Status(StrEnum):
    published = "published"
    retracted = "retracted"


_TEXT = f"[^{_NOT_TEXT}]*"
"""Text without control characters but newline and tab: what ``_no_control_chars`` lets through, for the schema."""
Headline = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_HEADLINE),
    AfterValidator(_no_control_chars),
    Field(json_schema_extra={"pattern": f"^{_TEXT}[^\\s{_NOT_TEXT}]{_TEXT}$"}),
]
Body = Annotated[str, StringConstraints(max_length=MAX_BODY), AfterValidator(_no_control_chars),
                 Field(json_schema_extra={"pattern": rf"^{_TEXT}$"})]
Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS)]
Url = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_http_url),
                Field(json_schema_extra={"pattern": _HTTP_URL_PATTERN})]
ImageUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_image_url),
                     Field(json_schema_extra={"pattern": IMAGE_URL_PATTERN})]
_LINE = f"^[^{_NOT_LINE}]*$"
"""One line of text without control characters: what ``_one_line`` lets through, for the schema."""
_LINE_NOT_BLANK = f"^[^{_NOT_LINE}]*[^\\s{_NOT_LINE}][^{_NOT_LINE}]*$"
Alt = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), AfterValidator(_one_line),
                Field(json_schema_extra={"pattern": _LINE_NOT_BLANK})]
ImageText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), AfterValidator(_one_line),
                      Field(json_schema_extra={"pattern": _LINE})]
CorrectionNote = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CORRECTION), AfterValidator(_one_line),
    Field(json_schema_extra={"pattern": _LINE_NOT_BLANK}),
]
ExternalId = Annotated[str, StringConstraints(max_length=MAX_EXTERNAL_ID, pattern=EXTERNAL_ID_PATTERN)]
Byline = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_no_control_chars),
                   Field(json_schema_extra={"pattern": rf"^{_TEXT}$"})]


class Image(BaseModel):
    """A picture an item shows, by reference (no uploads): where it is, what it shows, whose it is, its size.

    ``alt`` is required: every reader gets the picture's content. ``width`` and ``height`` (pixels)
    let readers reserve its space before it loads; without them they reserve a 3:2 box.
    """

    model_config = ConfigDict(extra="forbid")

    url: ImageUrl
    alt: Alt
    caption: ImageText | None = None
    credit: ImageText | None = None
    width: int | None = Field(None, ge=1, le=20_000)
    height: int | None = Field(None, ge=1, le=20_000)


Images = Annotated[list[Image], Field(max_length=MAX_IMAGES)]


class Correction(BaseModel):
    """The latest correction of an item: the newsroom's note to readers and when it was made."""

    note: str
    corrected_at: datetime


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
    images: Images = Field(default_factory=list)
    external_id: ExternalId | None = None
    """The CMS's id for the item: a second publish with it in the same feed makes no second item."""


def _update_schema(schema: dict[str, Any]) -> None:
    """The schema says what the validators do: null only removes ``url`` or ``byline``; an edit sends a field."""
    schema["minProperties"] = 1
    for name, field in schema["properties"].items():
        if name not in _REMOVABLE:
            field.pop("default", None)
            field["anyOf"] = [s for s in field["anyOf"] if s.get("type") != "null"]


_REMOVABLE = frozenset({"url", "byline"})


class ItemUpdate(BaseModel):
    """An edit or correction: only the fields sent change; a ``correction`` note marks it a correction."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_update_schema)

    headline: Headline | None = None
    body: Body | None = None
    tags: Tags | None = None
    urgency: Urgency | None = None
    url: Url | None = None
    byline: Byline | None = None
    pinned: bool | None = None
    key_event: bool | None = None
    images: Images | None = None
    """The item's images from now on (``[]`` removes them all)."""
    correction: CorrectionNote | None = None
    """A note to readers that this edit corrects an error: readers see "Corrected HH:MM: <note>"."""

    @field_validator("headline", "body", "tags", "urgency", "pinned", "key_event", "images", "correction")
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
    images: list[Image] = Field(default_factory=list)
    correction: Correction | None = None
    """The latest correction, kept through later edits (a plain edit is no correction)."""
    published_at: datetime
    updated_at: datetime
    created_by: str | None = None
    """The newsroom credential that published it (absent on items from before credentials had names)."""
    updated_by: str | None = None
    """The credential that made this version: the publisher, or whoever last edited, pinned or retracted it."""
    external_id: str | None = None
    """The CMS's id it was published with, if any (see :class:`ItemCreate`)."""


class Tombstone(BaseModel):
    """What is left of a retracted item, in its retraction event and in history: no words, and who retracted it."""

    id: str
    feed: str
    version: int = Field(ge=1)
    status: Status = Status.retracted
    published_at: datetime
    updated_at: datetime
    updated_by: str | None = None

"""Items as IPTC ninjs 3.1 news objects, for wire partners (https://www.iptc.org/std/ninjs/).

One livefeed item is one ninjs object of type ``text`` (``composite`` when it carries images,
which go out as ``picture`` associations). The mapping:

- ``uri``: the item's URN (``urn:livefeed:{feed}:{id}``), the same for every version;
- ``version``: the item's version, as a string; ``firstCreated`` / ``versionCreated``: its
  ``published_at`` / ``updated_at``;
- ``pubStatus``: ``usable``, or ``canceled`` for a retracted item (whose tombstone has no words);
- ``urgency``: breaking → 2, normal → 5 (1 is the most urgent; livefeed has no level above
  breaking that would justify a flash's 1, and 5 is the scale's middle);
- ``headlines`` / ``bodies``: one ``text/plain`` value each; ``by``: the byline;
- ``subjects``: one per tag, the tag as ``name`` and ``literal``;
- ``edNote``: ``Correction: <note>`` when the item carries a correction; ``altIds``: the CMS's
  ``external_id`` (role ``external``);
- ``associations``: the images (:func:`image_associations`).

The models at the end describe the answer in the OpenAPI document; IPTC's own JSON Schema is
what the tests validate against (``tests/data/ninjs/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.models import Image, Item, Tombstone, Urgency

from ..render import iso
from .common import entry_id

__all__ = [
    "NINJS_URGENCY",
    "NinjsItem",
    "NinjsPage",
    "image_associations",
    "ninjs_item",
    "ninjs_tombstone",
]

NINJS_URGENCY: dict[Urgency, int] = {Urgency.breaking: 2, Urgency.normal: 5}
"""IPTC urgency (1 most urgent … 9 least) of each livefeed urgency."""


def ninjs_item(item: Item) -> dict[str, Any]:
    """A published item as a ninjs 3.1 object."""
    images = item.images
    obj: dict[str, Any] = {
        "uri": entry_id(item.feed, item.id),
        "type": "composite" if images else "text",
        "representationType": "full",
        "version": str(item.version),
        "firstCreated": iso(item.published_at),
        "versionCreated": iso(item.updated_at),
        "pubStatus": "usable",
        "urgency": NINJS_URGENCY[item.urgency],
        "headlines": [{"contentType": "text/plain", "value": item.headline}],
        "bodies": [{"contentType": "text/plain", "charCount": len(item.body), "value": item.body}],
        "subjects": [{"name": tag, "literal": tag} for tag in item.tags],
    }
    if item.byline:
        obj["by"] = item.byline
    if item.correction is not None:
        obj["edNote"] = f"Correction: {item.correction.note}"
    if item.external_id is not None:
        obj["altIds"] = [{"role": "external", "value": item.external_id}]
    if images:
        obj["associations"] = image_associations(images, item.updated_at)
    return obj


def ninjs_tombstone(tombstone: Tombstone) -> dict[str, Any]:
    """A retracted item as a ninjs 3.1 object: ``pubStatus: canceled`` and no content, so partners withdraw it."""
    return {
        "uri": entry_id(tombstone.feed, tombstone.id),
        "type": "text",
        "representationType": "partial",
        "version": str(tombstone.version),
        "firstCreated": iso(tombstone.published_at),
        "versionCreated": iso(tombstone.updated_at),
        "pubStatus": "canceled",
    }


def image_associations(images: Sequence[Image], version_created: datetime) -> list[dict[str, Any]]:
    """An item's images as ninjs ``picture`` associations: the URL as ``uri`` and one rendition,
    the alt text and caption as ``descriptions`` (roles ``alt`` and ``caption``), the credit as ``by``."""
    associations = []
    for number, image in enumerate(images, start=1):
        rendition: dict[str, Any] = {"name": "original", "href": image.url}
        if image.width is not None:
            rendition["width"] = image.width
        if image.height is not None:
            rendition["height"] = image.height
        descriptions = [{"role": "alt", "contentType": "text/plain", "value": image.alt}]
        if image.caption:
            descriptions.append({"role": "caption", "contentType": "text/plain", "value": image.caption})
        association: dict[str, Any] = {
            "name": f"picture{number}",
            "rel": "illustration",
            "uri": image.url,
            "type": "picture",
            "versionCreated": iso(version_created),
            "renditions": [rendition],
            "descriptions": descriptions,
        }
        if image.credit:
            association["by"] = image.credit
        associations.append(association)
    return associations


# -- the OpenAPI document's description of the answers ------------------------------------------


class NinjsText(BaseModel):
    """A headline or body: plain text."""

    contentType: str = Field(examples=["text/plain"])
    charCount: int | None = None
    value: str


class NinjsSubject(BaseModel):
    """A tag."""

    name: str
    literal: str


class NinjsItem(BaseModel):
    """An item as an IPTC ninjs 3.1 news object (the full rules are IPTC's schema, ninjs-schema_3.1.json)."""

    model_config = ConfigDict(extra="allow", title="NinjsItem", json_schema_extra={"examples": [{
        "uri": "urn:livefeed:ukraine:01m8cng7dqz8mzsg2ge1ydk21g", "type": "text", "representationType": "full",
        "version": "1", "firstCreated": "2026-11-27T08:15:03.120000Z", "versionCreated": "2026-11-27T08:15:03.120000Z",
        "pubStatus": "usable", "urgency": 2,
        "headlines": [{"contentType": "text/plain", "value": "Russia launches overnight drone attack on Kyiv"}],
        "bodies": [{"contentType": "text/plain", "charCount": 25, "value": "Air defences were active."}],
        "subjects": [{"name": "kyiv", "literal": "kyiv"}],
    }]})

    uri: str = Field(description="The item's stable id: `urn:livefeed:{feed}:{id}`.")
    type: str = Field(description="`text`, or `composite` when the item has images.")
    representationType: str
    version: str
    firstCreated: str
    versionCreated: str
    pubStatus: str = Field(description="`usable`, or `canceled` for a retracted item.")
    urgency: int | None = Field(None, ge=1, le=9, description="1 most urgent: breaking is 2, normal 5.")
    headlines: list[NinjsText] | None = None
    bodies: list[NinjsText] | None = None
    by: str | None = None
    subjects: list[NinjsSubject] | None = None
    edNote: str | None = Field(None, description="`Correction: <note>` when the item was corrected.")
    altIds: list[dict[str, str]] | None = Field(None, description="The CMS's `external_id`, role `external`.")
    associations: list[dict[str, Any]] | None = Field(None, description="The item's images, as `picture` objects.")


class NinjsPage(BaseModel):
    """A page of a feed's items as ninjs 3.1 objects, with the same paging fields as the plain list."""

    feed: str
    cursor: str | None = Field(description="The feed position this page reflects: open the stream with `since=` it.")
    next_before: str | None = Field(description="Pass as `before=` for the next page; null on the last one.")
    items: list[NinjsItem]

"""A feed's current items as an Atom 1.0 document (RFC 4287), for feed readers and newsletter tools.

Entries are newest first, with the item's URN as ``id`` (stable across edits) and its
``updated_at`` as ``updated``, so a correction shows as an update of the same entry. Text goes
out as ``type="text"``: headlines and bodies are plain text, never HTML.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from shared.models import Item

from ..render import feed_title, iso, safe_link
from .common import FeedLinks, content_text, entry_id, feed_id

__all__ = ["ATOM_MEDIA_TYPE", "render_atom"]

ATOM_MEDIA_TYPE = "application/atom+xml; charset=utf-8"
_NS = "http://www.w3.org/2005/Atom"
_EMPTY_FEED_UPDATED = datetime(1970, 1, 1, tzinfo=UTC)
"""``updated`` of a feed without items: fixed, so the body stays what its ETag says."""


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, f"{{{_NS}}}{tag}", attrs)
    if text is not None:
        child.text = text
    return child


def render_atom(feed: str, items: Sequence[Item], links: FeedLinks) -> bytes:
    """The Atom document of ``items`` (already newest first, retractions left out), as UTF-8 bytes."""
    ET.register_namespace("", _NS)
    root = ET.Element(f"{{{_NS}}}feed")
    title = feed_title(feed)
    _el(root, "id", feed_id(feed))
    _el(root, "title", f"{title}: live updates", type="text")
    _el(root, "updated", iso(max((i.updated_at for i in items), default=_EMPTY_FEED_UPDATED)))
    _el(root, "link", rel="self", type="application/atom+xml", href=links.atom)
    _el(root, "link", rel="alternate", type="text/html", href=links.page)
    _el(_el(root, "author"), "name", title)
    _el(root, "generator", "livefeed")
    for item in items:
        _entry(root, feed, item, links)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def _entry(root: ET.Element, feed: str, item: Item, links: FeedLinks) -> None:
    entry = _el(root, "entry")
    _el(entry, "id", entry_id(feed, item.id))
    _el(entry, "title", item.headline, type="text")
    _el(entry, "link", rel="alternate", type="text/html", href=links.item(item.id))
    if (related := safe_link(item.url)) is not None:
        _el(entry, "link", rel="related", href=related)
    for image in item.images:
        _el(entry, "link", rel="enclosure", href=image.url, title=image.alt)
    _el(entry, "published", iso(item.published_at))
    _el(entry, "updated", iso(item.updated_at))
    if item.byline:
        _el(_el(entry, "author"), "name", item.byline)
    for tag in item.tags:
        _el(entry, "category", term=tag)
    _el(entry, "content", content_text(item), type="text")

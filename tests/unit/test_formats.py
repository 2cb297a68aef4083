"""The Atom 1.0 and JSON Feed 1.1 exports and what they share (ids, links, ETag), without servers:
Atom is read back with feedparser, JSON Feed checked against the 1.1 rules.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser  # type: ignore[import-untyped]
import orjson
import pytest

from services.history.formats.atom import render_atom
from services.history.formats.common import FeedLinks, entry_id, etag_matches, list_etag
from services.history.formats.jsonfeed import JSON_FEED_VERSION, render_json_feed
from shared.models import Item
from tests.utils.exports import RFC3339, check_json_feed

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
LINKS = FeedLinks("https://news.example/feeds/middle-east")
MARKUP = "Plain text, shown literally: <script>alert(1)</script> & <b>bold</b> “quotes” 🇺🇦 مرحبا"


def make_item(n: int, **fields: Any) -> Item:
    moment = NOW - timedelta(minutes=60 - n)
    values: dict[str, Any] = {"id": f"01jn{n:022d}", "feed": "middle-east", "version": 1,
                              "headline": f"Headline {n}", "body": f"Body {n}",
                              "published_at": moment, "updated_at": moment}
    return Item.model_validate(values | fields)


def newest_first(count: int) -> list[Item]:
    return [make_item(n) for n in reversed(range(count))]


# -- Atom ------------------------------------------------------------------------------------------


def test_atom_is_a_valid_feed_with_stable_ids_newest_first_and_absolute_links() -> None:
    items = newest_first(3)
    parsed = feedparser.parse(render_atom("middle-east", items, LINKS))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.id == "urn:livefeed:middle-east"
    assert parsed.feed.title == "Middle East: live updates"
    assert parsed.feed.updated == "2026-11-27T08:32:00Z"
    links = {link.rel: link.href for link in parsed.feed.links}
    assert links == {"self": f"{LINKS.page}.atom", "alternate": LINKS.page}
    assert [e.id for e in parsed.entries] == [entry_id("middle-east", i.id) for i in items]
    assert [e.title for e in parsed.entries] == ["Headline 2", "Headline 1", "Headline 0"]
    assert parsed.entries[0].link == f"{LINKS.page}#item-{items[0].id}"
    assert parsed.entries[0].published == "2026-11-27T08:32:00Z"
    assert parsed.entries[0].content[0].value == "Body 2"


def test_atom_entry_carries_byline_tags_source_and_text_as_text() -> None:
    item = make_item(1, headline=MARKUP, body=MARKUP, byline="Ana <Desk>", tags=["gaza", "un"],
                     url="https://example.org/report?a=1&b=2")
    document = render_atom("middle-east", [item], LINKS)
    assert b"<script>" not in document and b"<b>" not in document
    entry = feedparser.parse(document).entries[0]
    assert entry.title == MARKUP and entry.title_detail.type == "text/plain"
    assert entry.content[0].value == MARKUP and entry.content[0].type == "text/plain"
    assert entry.author == "Ana <Desk>"
    assert [t.term for t in entry.tags] == ["gaza", "un"]
    assert {"rel": "related", "href": "https://example.org/report?a=1&b=2"} in [
        {"rel": link.rel, "href": link.href} for link in entry.links]


def test_atom_entry_of_a_correction_keeps_its_id_and_moves_updated() -> None:
    first = make_item(1)
    corrected = first.model_copy(update={"version": 2, "headline": "Corrected", "updated_at": NOW})
    before, after = (feedparser.parse(render_atom("middle-east", [i], LINKS)) for i in (first, corrected))
    assert before.entries[0].id == after.entries[0].id
    assert before.entries[0].updated == "2026-11-27T08:31:00Z"
    assert after.entries[0].updated == "2026-11-27T09:30:00Z" and after.feed.updated == "2026-11-27T09:30:00Z"
    assert after.entries[0].published == before.entries[0].published


def test_an_empty_atom_feed_is_valid_and_stable() -> None:
    document = render_atom("middle-east", [], LINKS)
    parsed = feedparser.parse(document)
    assert not parsed.bozo and parsed.entries == [] and parsed.feed.updated == "1970-01-01T00:00:00Z"
    assert render_atom("middle-east", [], LINKS) == document


def test_atom_entry_carries_the_correction_note_and_images() -> None:
    item = make_item(1, version=2, correction={"note": "Corrects the minister's name.", "corrected_at": NOW},
                     images=[{"url": "https://img.example/a.jpg", "alt": "A street in Gaza", "width": 600,
                              "height": 400}])
    entry = feedparser.parse(render_atom("middle-east", [item], LINKS)).entries[0]
    assert entry.content[0].value == "Body 1\n\nCorrection: Corrects the minister's name."
    assert [(link.href, link.get("title")) for link in entry.links if link.rel == "enclosure"] == [
        ("https://img.example/a.jpg", "A street in Gaza")]


def test_atom_leaves_out_a_source_link_that_is_not_http() -> None:
    item = make_item(1).model_copy(update={"url": "javascript:alert(1)"})
    assert b"javascript:" not in render_atom("middle-east", [item], LINKS)


# -- JSON Feed ---------------------------------------------------------------------------------------


def test_json_feed_follows_the_1_1_rules_with_stable_ids_newest_first() -> None:
    items = newest_first(3)
    doc = orjson.loads(render_json_feed("middle-east", items, LINKS))
    check_json_feed(doc)
    assert doc["version"] == JSON_FEED_VERSION == "https://jsonfeed.org/version/1.1"
    assert doc["home_page_url"] == LINKS.page and doc["feed_url"] == f"{LINKS.page}.json"
    assert [i["id"] for i in doc["items"]] == [entry_id("middle-east", i.id) for i in items]
    assert [i["title"] for i in doc["items"]] == ["Headline 2", "Headline 1", "Headline 0"]
    first = doc["items"][0]
    assert first["content_text"] == "Body 2" and "content_html" not in first
    assert first["url"] == f"{LINKS.page}#item-{items[0].id}"
    assert RFC3339.fullmatch(first["date_published"]) and RFC3339.fullmatch(first["date_modified"])
    assert first["date_published"] == "2026-11-27T08:32:00Z"


def test_json_feed_item_carries_byline_tags_source_and_text_as_is() -> None:
    item = make_item(1, headline=MARKUP, body="", byline="Ana", tags=["gaza"], url="https://example.org/r")
    doc = orjson.loads(render_json_feed("middle-east", [item], LINKS))
    check_json_feed(doc)
    entry = doc["items"][0]
    assert entry["title"] == MARKUP and entry["content_text"] == MARKUP
    assert entry["authors"] == [{"name": "Ana"}] and entry["tags"] == ["gaza"]
    assert entry["external_url"] == "https://example.org/r"


def test_json_feed_item_carries_the_correction_note_and_its_first_image() -> None:
    item = make_item(1, version=2, correction={"note": "Corrects the date.", "corrected_at": NOW},
                     images=[{"url": "https://img.example/a.jpg", "alt": "A"}, {"url": "https://img.example/b.jpg",
                                                                              "alt": "B"}])
    doc = orjson.loads(render_json_feed("middle-east", [item], LINKS))
    check_json_feed(doc)
    assert doc["items"][0]["content_text"] == "Body 1\n\nCorrection: Corrects the date."
    assert doc["items"][0]["image"] == "https://img.example/a.jpg"


def test_json_feed_item_of_a_correction_keeps_its_id_and_moves_date_modified() -> None:
    first = make_item(1)
    corrected = first.model_copy(update={"version": 2, "updated_at": NOW})
    before, after = (orjson.loads(render_json_feed("middle-east", [i], LINKS))["items"][0] for i in (first, corrected))
    assert before["id"] == after["id"] and before["date_published"] == after["date_published"]
    assert (before["date_modified"], after["date_modified"]) == ("2026-11-27T08:31:00Z", "2026-11-27T09:30:00Z")


def test_the_json_feed_rules_catch_a_broken_feed() -> None:
    doc = orjson.loads(render_json_feed("middle-east", newest_first(1), LINKS))
    for broken in ({**doc, "version": "https://jsonfeed.org/version/1"},
                   {**doc, "items": [{k: v for k, v in doc["items"][0].items() if k != "content_text"}]},
                   {**doc, "items": [{**doc["items"][0], "date_modified": "27 Nov 2026 09:30"}]}):
        with pytest.raises(AssertionError):
            check_json_feed(broken)


# -- ETag ----------------------------------------------------------------------------------------------


def test_the_etag_changes_with_an_edit_a_new_item_a_retraction_the_format_and_the_public_url() -> None:
    items = newest_first(3)
    etag = list_etag("atom", LINKS, items)
    assert etag.startswith('W/"') and etag == list_etag("atom", LINKS, newest_first(3))
    edited = [items[0].model_copy(update={"version": 2}), *items[1:]]
    others = {
        list_etag("atom", LINKS, edited),
        list_etag("atom", LINKS, newest_first(4)),
        list_etag("atom", LINKS, items[1:]),
        list_etag("json-feed", LINKS, items),
        list_etag("atom", FeedLinks("http://other.example/feeds/middle-east"), items),
    }
    assert etag not in others and len(others) == 5


@pytest.mark.parametrize(("header", "matches"), [
    (None, False), ("", False), ('W/"abc"', True), ('"abc"', True), ('"x", W/"abc"', True), ("*", True),
    ('W/"abd"', False),
])
def test_if_none_match_is_compared_weakly(header: str | None, matches: bool) -> None:
    assert etag_matches(header, 'W/"abc"') is matches

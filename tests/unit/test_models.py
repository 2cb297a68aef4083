"""Item models: what a newsroom may send (lengths, plain text, slugs, URLs) and the slug checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.models import (
    Item,
    ItemCreate,
    ItemUpdate,
    Status,
    Tombstone,
    Urgency,
    valid_feed,
    valid_item_id,
    valid_tag,
)


def create(**fields: Any) -> ItemCreate:
    return ItemCreate.model_validate({"headline": "Quake hits the coast", **fields})


def refused_fields(model: type[ItemCreate] | type[ItemUpdate], body: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The locations pydantic names for ``body``: what the API's error ``fields`` are built from."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return [err["loc"] for err in caught.value.errors()]


def assert_create_refuses(field: str, value: Any) -> None:
    assert refused_fields(ItemCreate, {"headline": "Quake", field: value})[0][0] == field


# A new item


def test_only_a_headline_is_required_and_the_rest_has_defaults() -> None:
    item = create()
    assert (item.body, item.tags, item.urgency, item.url, item.byline) == ("", [], Urgency.normal, None, None)
    assert (item.pinned, item.key_event) == (False, False)
    assert refused_fields(ItemCreate, {}) == [("headline",)]


@pytest.mark.parametrize("server_field", ["id", "version", "status", "published_at", "feed"])
def test_a_client_cannot_set_what_the_server_assigns(server_field: str) -> None:
    assert refused_fields(ItemCreate, {"headline": "Quake", server_field: "x"}) == [(server_field,)]


def test_urgency_is_breaking_or_normal() -> None:
    assert create(urgency="breaking").urgency is Urgency.breaking
    assert_create_refuses("urgency", "urgent")


# Headline


def test_the_headline_is_stripped_and_must_keep_one_character() -> None:
    assert create(headline="  Quake \n").headline == "Quake"
    assert_create_refuses("headline", "   ")
    assert_create_refuses("headline", "")


def test_the_headline_is_at_most_300_characters_after_stripping() -> None:
    assert create(headline=" " + "h" * 300 + " ").headline == "h" * 300
    assert_create_refuses("headline", "h" * 301)


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\r", "\x0b", "\x1f"])
def test_control_characters_are_refused_in_headline_body_and_byline(char: str) -> None:
    for field in ("headline", "body", "byline"):
        assert_create_refuses(field, f"Quake{char}coast")


def test_newlines_and_tabs_are_allowed_in_the_body() -> None:
    assert create(body="Line one.\n\tLine two.").body == "Line one.\n\tLine two."


def test_html_is_kept_as_text_not_refused_or_escaped() -> None:
    assert create(headline="<b>Quake</b> & more").headline == "<b>Quake</b> & more"


# Body, byline, url


def test_the_body_is_at_most_10000_characters() -> None:
    assert len(create(body="b" * 10_000).body) == 10_000
    assert_create_refuses("body", "b" * 10_001)


def test_the_byline_is_stripped_and_at_most_200_characters() -> None:
    assert create(byline="  Asia desk ").byline == "Asia desk"
    assert_create_refuses("byline", "b" * 201)


@pytest.mark.parametrize("url", ["https://example.com/quake", "http://example.com", "https://x.test/a?b=c#d"])
def test_http_and_https_urls_are_accepted(url: str) -> None:
    assert create(url=url).url == url


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://example.com", "//example.com", "example.com",
                                 "data:text/html,hi", " https://example.com"])
def test_a_url_that_is_not_http_is_refused(url: str) -> None:
    assert_create_refuses("url", url)


def test_a_url_is_at_most_2048_characters() -> None:
    prefix = "https://example.com/"
    assert create(url=prefix + "a" * (2048 - len(prefix))).url is not None
    assert_create_refuses("url", prefix + "a" * (2049 - len(prefix)))


# Tags


@pytest.mark.parametrize("tag", ["us", "0", "a-b", "covid-19", "t" * 40])
def test_tag_slugs_are_accepted(tag: str) -> None:
    assert create(tags=[tag]).tags == [tag]


@pytest.mark.parametrize("tag", ["", "US", "-us", "a_b", "a b", "é", "t" * 41, "us\n"])
def test_a_tag_that_is_not_a_slug_is_refused_naming_its_position(tag: str) -> None:
    assert refused_fields(ItemCreate, {"headline": "Quake", "tags": ["ok", tag]}) == [("tags", 1)]


def test_an_item_has_at_most_20_tags() -> None:
    assert len(create(tags=[f"t{n}" for n in range(20)]).tags) == 20
    assert_create_refuses("tags", [f"t{n}" for n in range(21)])


# An edit


def test_an_edit_must_change_at_least_one_field() -> None:
    with pytest.raises(ValidationError, match="at least one field"):
        ItemUpdate.model_validate({})


def test_an_edit_remembers_which_fields_were_sent() -> None:
    update = ItemUpdate.model_validate({"body": "More.", "url": None})
    assert update.model_fields_set == {"body", "url"}
    assert update.model_dump(exclude_unset=True) == {"body": "More.", "url": None}


def test_an_edit_cannot_remove_the_headline() -> None:
    with pytest.raises(ValidationError, match="headline cannot be removed"):
        ItemUpdate.model_validate({"headline": None})


@pytest.mark.parametrize("field", ["body", "tags", "urgency", "pinned", "key_event"])
def test_an_edit_cannot_null_a_field_an_item_cannot_lack(field: str) -> None:
    """Like the headline: a null here would pass the request and fail when the edit is applied."""
    with pytest.raises(ValidationError):
        ItemUpdate.model_validate({field: None})


def test_an_edit_may_remove_the_url_the_byline_or_every_tag() -> None:
    update = ItemUpdate.model_validate({"url": None, "byline": None, "tags": []})
    assert (update.url, update.byline, update.tags) == (None, None, [])


def test_an_edit_is_held_to_the_same_rules_as_a_new_item() -> None:
    assert refused_fields(ItemUpdate, {"headline": "h" * 301}) == [("headline",)]
    assert refused_fields(ItemUpdate, {"body": "a\x00b"}) == [("body",)]
    assert refused_fields(ItemUpdate, {"tags": ["Bad"]}) == [("tags", 0)]
    assert refused_fields(ItemUpdate, {"url": "ftp://x"}) == [("url",)]
    assert refused_fields(ItemUpdate, {"version": 2}) == [("version",)]


# Stored items and tombstones


def test_a_stored_item_is_published_and_at_least_version_1() -> None:
    stamp = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    item = Item(id="x", feed="world", version=1, headline="Quake", published_at=stamp, updated_at=stamp)
    assert item.status is Status.published
    with pytest.raises(ValidationError):
        Item(id="x", feed="world", version=0, headline="Quake", published_at=stamp, updated_at=stamp)


def test_a_tombstone_is_retracted_and_has_no_words() -> None:
    stamp = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    tombstone = Tombstone(id="x", feed="world", version=2, published_at=stamp, updated_at=stamp)
    assert tombstone.status is Status.retracted
    assert set(tombstone.model_dump()) == {"id", "feed", "version", "status", "published_at", "updated_at",
                                           "updated_by"}


# Slug checks


@pytest.mark.parametrize(("text", "expected"), [
    ("world", True), ("a", True), ("uk-2025", True), ("f" * 63, True),
    ("", False), ("f" * 64, False), ("World", False), ("-world", False), ("world\n", False), ("wo rld", False),
])
def test_valid_feed(text: str, expected: bool) -> None:
    assert valid_feed(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("us", True), ("t" * 40, True), ("t" * 41, False), ("us\n", False), ("Us", False), ("", False),
])
def test_valid_tag(text: str, expected: bool) -> None:
    assert valid_tag(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("01m8cng7dqz8mzsg2ge1ydk21g", True), ("01M8CNG7DQZ8MZSG2GE1YDK21G", False),
    ("01m8cng7dqz8mzsg2ge1ydk21", False), ("01m8cng7dqz8mzsg2ge1ydk21g\n", False),
    ("01m8cng7dqz8mzsg2ge1ydk2-g", False),
])
def test_valid_item_id(text: str, expected: bool) -> None:
    assert valid_item_id(text) is expected


@pytest.mark.parametrize("bad", ["\uffff", "\ufffe", "\x85", "\x7f", "\ud800", "\x00"])
@pytest.mark.parametrize("field", ["headline", "body", "byline"])
def test_text_xml_cannot_carry_is_refused(field: str, bad: str) -> None:
    """One U+FFFF in a headline made the whole Atom feed unreadable (outside review, issue 12)."""
    fields = {"headline": "h", field: f"pasted {bad} text"}
    with pytest.raises(ValidationError) as caught:
        ItemCreate.model_validate(fields)
    assert [e["loc"][0] for e in caught.value.errors()] == [field]


@pytest.mark.parametrize(
    "url", ["https://", "https://x.example/\x00", "https://x .example/", "https://x.example/\uffff", "https:// x"]
)
def test_a_url_needs_a_host_and_no_spaces_or_control_characters(url: str) -> None:
    with pytest.raises(ValidationError):
        ItemCreate(headline="h", url=url)


def test_ordinary_text_and_urls_pass() -> None:
    item = ItemCreate(headline="Ünïcödé 🎉\ttab", url="https://news.example/a/b?c=d#e")
    assert item.url == "https://news.example/a/b?c=d#e"

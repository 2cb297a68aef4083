"""The item lifecycle without I/O: publish, edit, retract and If-Match, each command one event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.ingest.lifecycle import check_if_match, edit, new_item_id, publish, retract
from shared.errors import ApiError
from shared.models import ItemCreate, ItemUpdate, valid_item_id
from shared.wire import Event, EventType

T0 = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
T0_MS = 1735787045123.456
"""T0 in milliseconds since the epoch: calendar.timegm((2025, 1, 2, 3, 4, 5)) is 1735787045."""
T1 = T0 + timedelta(minutes=5)
ITEM_ID = "01jgjb4ds3f4qdxm2yc0gb4mrr"


def published(**create: Any) -> dict[str, Any]:
    """The stored item after a publish at T0, as history would hand it to the next command."""
    fields: dict[str, Any] = {"headline": "Quake hits the coast", "body": "First reports.", "tags": ["asia"],
                              "urgency": "breaking", **create}
    return publish("world", ITEM_ID, ItemCreate(**fields), T0).item


def assert_conflict(status: int, code: str, call: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args)
    assert (caught.value.status, caught.value.code) == (status, code)
    return caught.value


# Item ids


def test_a_new_item_id_is_a_lowercase_ulid() -> None:
    item_id = new_item_id(T0)
    assert valid_item_id(item_id)
    assert item_id == item_id.lower()


def test_item_ids_sort_in_publish_order() -> None:
    ids = [new_item_id(T0 + timedelta(milliseconds=ms)) for ms in (0, 1, 1000, 86_400_000)]
    assert sorted(ids) == ids


def test_two_items_published_in_the_same_millisecond_get_different_ids() -> None:
    assert new_item_id(T0) != new_item_id(T0)


# Publish


def test_publish_makes_version_1_of_the_item_from_the_newsrooms_fields() -> None:
    event = publish("world", ITEM_ID, ItemCreate(headline="Quake", tags=["asia"], pinned=True), T0)
    assert (event.type, event.feed, event.item_id, event.version) == (EventType.published, "world", ITEM_ID, 1)
    item = event.item
    assert (item["headline"], item["tags"], item["pinned"], item["status"]) == ("Quake", ["asia"], True, "published")
    assert (item["body"], item["urgency"], item["url"], item["key_event"]) == ("", "normal", None, False)


def test_publish_stamps_both_times_and_the_accepted_time_in_milliseconds() -> None:
    event = publish("world", ITEM_ID, ItemCreate(headline="Quake"), T0)
    assert datetime.fromisoformat(event.item["published_at"]) == T0
    assert datetime.fromisoformat(event.item["updated_at"]) == T0
    assert event.accepted_ms == pytest.approx(T0_MS, abs=0.001)


def test_publish_carries_the_op_of_an_idempotent_request_only() -> None:
    assert publish("world", ITEM_ID, ItemCreate(headline="Quake"), T0, op="ab" * 16).op == "ab" * 16
    assert publish("world", ITEM_ID, ItemCreate(headline="Quake"), T0).op is None


def test_the_published_event_survives_the_wire() -> None:
    event = publish("world", ITEM_ID, ItemCreate(headline="Quake", tags=["asia"]), T0, op="cd" * 16)
    assert Event.parse(event.serialize()) == event


# Edit


def test_an_edit_changes_only_the_fields_sent_and_bumps_the_version() -> None:
    current = published()
    event = edit(current, ItemUpdate(headline="Quake: 40 dead"), T1)
    assert (event.type, event.version) == (EventType.updated, 2)
    assert event.item["headline"] == "Quake: 40 dead"
    unchanged = ("body", "tags", "urgency", "pinned", "published_at", "id", "feed")
    assert {k: event.item[k] for k in unchanged} == {k: current[k] for k in unchanged}


def test_an_edit_stamps_updated_at_and_keeps_published_at() -> None:
    event = edit(published(), ItemUpdate(pinned=True), T1)
    assert datetime.fromisoformat(event.item["updated_at"]) == T1
    assert datetime.fromisoformat(event.item["published_at"]) == T0


def test_versions_count_up_one_per_edit() -> None:
    item = published()
    for expected in (2, 3, 4):
        item = edit(item, ItemUpdate(body=f"update {expected}"), T1).item
        assert item["version"] == expected


def test_an_edit_remembers_the_tags_the_item_had() -> None:
    """A reader filtering on the old tag must still hear that the item left its filter."""
    event = edit(published(tags=["asia", "quake"]), ItemUpdate(tags=["europe"]), T1)
    assert event.item["tags"] == ["europe"]
    assert event.prev_tags == ("asia", "quake")
    assert event.tags == frozenset({"asia", "quake", "europe"})


def test_an_edit_can_remove_the_url_and_the_byline() -> None:
    current = published(url="https://example.com/quake", byline="Desk")
    event = edit(current, ItemUpdate(url=None, byline=None), T1)
    assert (event.item["url"], event.item["byline"]) == (None, None)


def test_an_edit_of_a_retracted_item_is_gone_and_says_its_version() -> None:
    tombstone = retract(published(), T1).item
    gone = assert_conflict(410, "retracted", edit, tombstone, ItemUpdate(headline="too late"), T1)
    assert gone.extra == {"version": 2}
    assert [f["field"] for f in gone.fields] == ["id"]


# Retract


def test_a_retraction_is_a_tombstone_without_the_words() -> None:
    event = retract(published(byline="Desk", url="https://example.com/x"), T1)
    assert event.type is EventType.retracted
    assert event.item["status"] == "retracted"
    assert event.version == 2
    for words in ("headline", "body", "tags", "byline", "url"):
        assert words not in event.item


def test_a_retraction_keeps_identity_and_publish_time_and_stamps_now() -> None:
    event = retract(published(), T1)
    assert (event.item_id, event.feed, event.item["feed"]) == (ITEM_ID, "world", "world")
    assert datetime.fromisoformat(event.item["published_at"]) == T0
    assert datetime.fromisoformat(event.item["updated_at"]) == T1


def test_a_retraction_names_the_tags_the_item_had() -> None:
    event = retract(published(tags=["asia", "quake"]), T1)
    assert event.prev_tags == ("asia", "quake")
    assert event.tags == frozenset({"asia", "quake"})


def test_every_command_names_the_credential_that_made_it() -> None:
    """Who did what: publish sets both names, each later command the one that made the new version."""
    item = publish("world", ITEM_ID, ItemCreate(headline="Quake"), T0, by="rita").item
    assert (item["created_by"], item["updated_by"]) == ("rita", "rita")
    edited = edit(item, ItemUpdate(pinned=True), T1, by="ed").item
    assert (edited["created_by"], edited["updated_by"]) == ("rita", "ed")
    gone = retract(edited, T1, by="ada").item
    assert (gone.get("created_by"), gone["updated_by"]) == (None, "ada")


def test_an_item_from_before_credentials_had_names_gets_the_editor_only() -> None:
    old = {k: v for k, v in published().items() if k not in ("created_by", "updated_by")}
    edited = edit(old, ItemUpdate(body="x"), T1, by="ed").item
    assert (edited["created_by"], edited["updated_by"]) == (None, "ed")


def test_retracting_twice_is_gone() -> None:
    assert_conflict(410, "retracted", retract, retract(published(), T1).item, T1)


# If-Match


@pytest.mark.parametrize("header", [None, "*", "2", '"2"', 'W/"2"', ' "2" '])
def test_if_match_naming_the_current_version_or_anything_lets_the_command_through(header: str | None) -> None:
    check_if_match(header, {"version": 2})


def test_if_match_naming_another_version_is_a_412_that_says_which_is_current() -> None:
    conflict = assert_conflict(412, "version_mismatch", check_if_match, '"1"', {"version": 2})
    assert "version 2" in conflict.message
    assert conflict.extra == {"version": 2}
    assert [f["field"] for f in conflict.fields] == ["If-Match"]


@pytest.mark.parametrize("header", ["", "abc", "-1", "1.0", '"2", "3"', "\xb2", "\xb3"])
def test_if_match_that_is_not_a_version_number_is_a_400(header: str) -> None:
    """Starlette decodes header bytes as latin-1, so 0xB2 arrives as '²', which str.isdigit() accepts."""
    refused = assert_conflict(400, "bad_if_match", check_if_match, header, {"version": 2})
    assert [f["field"] for f in refused.fields] == ["If-Match"]

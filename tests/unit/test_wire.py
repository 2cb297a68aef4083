"""The wire format: events round-trip through Kafka bytes, bad records are refused, reader messages."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shared.cursor import Cursor
from shared.wire import Event, EventType, WireError, heartbeat_message, hello_message, reset_message

ITEM: dict[str, Any] = {"id": "01m8cng7dqz8mzsg2ge1ydk21g", "feed": "world", "version": 3,
                        "headline": "A quake", "tags": ["asia", "quake"]}


def event(**changes: Any) -> Event:
    fields: dict[str, Any] = {"type": EventType.updated, "feed": "world", "item": dict(ITEM),
                              "accepted_ms": 1764182400123.4, **changes}
    return Event(**fields)


def record(**changes: Any) -> bytes:
    """A Kafka record value as ingest writes it, with ``changes`` applied (None removes a key)."""
    body: dict[str, Any] = {"type": "item.published", "feed": "world", "item": dict(ITEM), "accepted_ms": 1.5}
    for key, value in changes.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    return orjson.dumps(body)


def assert_not_an_event(data: bytes) -> None:
    with pytest.raises(WireError, match="not a livefeed event"):
        Event.parse(data)


# Round trip


@pytest.mark.parametrize("kind", list(EventType))
def test_every_event_type_round_trips(kind: EventType) -> None:
    original = event(type=kind)
    assert Event.parse(original.serialize()) == original


def test_prev_tags_and_op_round_trip() -> None:
    original = event(prev_tags=("old", "asia"), op="9f" * 16)
    parsed = Event.parse(original.serialize())
    assert parsed.prev_tags == ("old", "asia")
    assert parsed.op == "9f" * 16
    assert parsed == original


def test_empty_prev_tags_and_no_op_are_left_out_of_the_record() -> None:
    body = orjson.loads(event().serialize())
    assert set(body) == {"type", "feed", "item", "accepted_ms"}
    assert body["type"] == "item.updated"


def test_a_record_without_prev_tags_or_op_reads_as_none() -> None:
    parsed = Event.parse(record())
    assert parsed.prev_tags == ()
    assert parsed.op is None


def test_an_op_of_null_reads_as_none() -> None:
    assert Event.parse(orjson.dumps({**orjson.loads(record()), "op": None})).op is None


def test_event_types_have_their_documented_wire_names() -> None:
    assert [t.value for t in EventType] == ["item.published", "item.updated", "item.retracted"]


# What consumers read off an event


def test_item_id_and_version_come_from_the_item() -> None:
    parsed = Event.parse(record(item={**ITEM, "version": "4"}))
    assert parsed.item_id == ITEM["id"]
    assert parsed.version == 4


def test_tags_are_the_items_tags_and_the_ones_it_had_before() -> None:
    assert event(prev_tags=("europe", "asia")).tags == frozenset({"asia", "quake", "europe"})


def test_a_tombstone_has_only_its_previous_tags() -> None:
    tombstone = {"id": ITEM["id"], "feed": "world", "version": 4, "status": "retracted"}
    assert event(type=EventType.retracted, item=tombstone, prev_tags=("asia",)).tags == frozenset({"asia"})


# Refusals


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'"item.published"',
    ],
)
def test_bytes_that_are_not_an_event_object_are_refused(data: bytes) -> None:
    assert_not_an_event(data)


@pytest.mark.parametrize("missing", ["type", "feed", "item", "accepted_ms"])
def test_a_record_missing_a_field_is_refused(missing: str) -> None:
    assert_not_an_event(record(**{missing: None}))


@pytest.mark.parametrize(
    "changes",
    [
        {"type": "item.deleted"},
        {"accepted_ms": "soon"},
        {"item": 7},
        {"prev_tags": 3},
    ],
)
def test_a_record_with_a_field_of_the_wrong_kind_is_refused(changes: dict[str, Any]) -> None:
    assert_not_an_event(record(**changes))


@pytest.mark.parametrize(
    "item",
    [
        {"feed": "world", "version": 1, "headline": "no id"},
        {"id": ITEM["id"], "feed": "world", "headline": "no version"},
        {"id": ITEM["id"], "feed": "world", "version": "three", "headline": "bad version"},
    ],
)
def test_an_item_without_an_id_or_a_version_number_is_refused(item: dict[str, Any]) -> None:
    """History and fanout read ``item_id`` and ``version`` of every event and skip only WireError."""
    assert_not_an_event(record(item=item))


# Reader messages


def test_an_event_message_is_the_documented_reader_shape() -> None:
    cursor = Cursor("3f9a1c2b", 0, 42)
    message = orjson.loads(event(prev_tags=("old",), op="ab").message(cursor))
    assert message == {"type": "item.updated", "cursor": "3f9a1c2b.0.42", "feed": "world",
                       "ts": 1764182400123.4, "item": ITEM}


def test_hello_names_the_position_the_stream_continues_from() -> None:
    assert orjson.loads(hello_message("world", Cursor("abc", 1, 5))) == {
        "type": "hello", "feed": "world", "cursor": "abc.1.5"}


def test_hello_from_now_has_a_null_cursor() -> None:
    assert orjson.loads(hello_message("world", None)) == {"type": "hello", "feed": "world", "cursor": None}


def test_a_reset_carries_its_reason_and_where_to_resume() -> None:
    assert orjson.loads(reset_message("world", "cursor_too_old", Cursor("abc", 0, 9))) == {
        "type": "reset", "feed": "world", "reason": "cursor_too_old", "cursor": "abc.0.9"}
    assert orjson.loads(reset_message("world", "epoch_changed", None))["cursor"] is None


def test_a_heartbeat_is_a_json_message_of_its_own_type() -> None:
    assert orjson.loads(heartbeat_message()) == {"type": "heartbeat"}

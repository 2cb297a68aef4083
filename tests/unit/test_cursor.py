"""The cursor: its wire form round-trips, anything else is refused, and positions order by offset."""

from __future__ import annotations

import dataclasses

import pytest

from shared.cursor import Cursor, CursorError


def assert_refused(text: str) -> None:
    with pytest.raises(CursorError, match="not a livefeed cursor"):
        Cursor.parse(text)


# Round trip


@pytest.mark.parametrize("text", ["f733f5e9.1.41", "abcd1234.0.0", "e.0.-1", "A1b2.12.9007199254740993"])
def test_parse_then_serialize_gives_back_the_same_text(text: str) -> None:
    assert Cursor.parse(text).serialize() == text


def test_parse_reads_epoch_partition_and_offset() -> None:
    cursor = Cursor.parse("f733f5e9.1.41")
    assert (cursor.epoch, cursor.partition, cursor.offset) == ("f733f5e9", 1, 41)


def test_str_is_the_wire_form() -> None:
    assert str(Cursor("abc", 2, 7)) == "abc.2.7"
    assert f"{Cursor('abc', 2, 7)}" == "abc.2.7"


def test_offset_minus_one_is_the_position_before_the_first_event() -> None:
    assert Cursor.parse("abc.0.-1").offset == -1


def test_an_epoch_of_32_characters_is_the_longest_accepted() -> None:
    assert Cursor.parse("a" * 32 + ".0.1").epoch == "a" * 32
    assert_refused("a" * 33 + ".0.1")


# Refusals


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "abc.0",
        "abc.0.1.2",
        ".0.1",
        "ab-c.0.1",
        "ab c.0.1",
        "abc.x.1",
        "abc.0.y",
        "abc.0.",
        "abc..1",
        "abc.-1.0",
        "abc.0.-2",
        "abc.1.5e3",
    ],
)
def test_text_that_is_not_a_cursor_is_refused(text: str) -> None:
    assert_refused(text)


def test_a_cursor_error_is_a_value_error() -> None:
    """Callers that validate input catch ValueError; a bad cursor must be one of those."""
    with pytest.raises(ValueError):
        Cursor.parse("nope")


def test_the_error_quotes_at_most_64_characters_of_the_input() -> None:
    with pytest.raises(CursorError) as caught:
        Cursor.parse("x" * 10_000)
    assert len(str(caught.value)) < 120
    assert "x" * 64 in str(caught.value)
    assert "x" * 65 not in str(caught.value)


# Values


def test_cursors_are_values_equal_by_content_and_hashable() -> None:
    assert Cursor.parse("abc.1.2") == Cursor("abc", 1, 2)
    assert {Cursor("abc", 1, 2): "seen"}[Cursor.parse("abc.1.2")] == "seen"
    assert Cursor("abc", 1, 2) != Cursor("abd", 1, 2)


def test_a_cursor_cannot_be_changed() -> None:
    cursor = Cursor("abc", 1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cursor.offset = 3  # type: ignore[misc]


def test_positions_in_one_partition_order_by_offset() -> None:
    positions = [Cursor("abc", 0, 10), Cursor("abc", 0, -1), Cursor("abc", 0, 2)]
    assert [c.offset for c in sorted(positions)] == [-1, 2, 10]
    assert Cursor("abc", 0, 9) < Cursor("abc", 0, 10)


@pytest.mark.parametrize("text", ["e.1_0.2", "e. 1.2", "e.1.+2", "e.\u0661.2", "é.1.2", "e.01.2", "e.1.-2", "e.1.2 ",
                                  "e.1.99999999999999999999", "e.9999999999.2"])
def test_only_the_form_serialize_writes_is_a_cursor(text: str) -> None:
    with pytest.raises(CursorError):
        Cursor.parse(text)

"""The fanout core without a network: routing, filters, the replay/live seam, resets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.fanout.hub import Hub, ResetNeeded, ResetReason
from shared.cursor import Cursor
from shared.wire import Event, EventType

EPOCH = "abcd1234"


def event(feed: str, n: int, tags: tuple[str, ...] = (), kind: EventType = EventType.published) -> Event:
    item = {"id": f"{n:026d}", "feed": feed, "version": 1, "headline": f"h{n}", "tags": list(tags)}
    return Event(kind, feed, item, 0.0)


def headlines(messages: list[Any]) -> list[str]:
    return [orjson.loads(m.message)["item"]["headline"] for m in messages]


def test_routes_by_feed_and_tag() -> None:
    hub = Hub(EPOCH, partition_of=lambda _: 0, buffer=10)
    hub.start_partition(0, 0)
    everything, _, _ = hub.subscribe("a", None, None, "all")
    tagged, _, _ = hub.subscribe("a", None, frozenset({"x"}), "x")
    other, _, _ = hub.subscribe("b", None, None, "b")
    d1 = hub.publish(0, 0, event("a", 1, ("x",)))
    d2 = hub.publish(0, 1, event("a", 2, ("y",)))
    d3 = hub.publish(0, 2, event("b", 3))
    assert {s.sink for s in d1.recipients} == {"all", "x"}
    assert {s.sink for s in d2.recipients} == {"all"}
    assert {s.sink for s in d3.recipients} == {"b"}
    hub.unsubscribe(tagged)
    assert {s.sink for s in hub.publish(0, 3, event("a", 4, ("x",))).recipients} == {"all"}
    assert hub.subscribers == 2
    del everything, other


def test_resume_replays_exactly_what_was_missed_then_goes_live() -> None:
    hub = Hub(EPOCH, partition_of=lambda _: 0, buffer=10)
    hub.start_partition(0, 0)
    for n in range(5):
        hub.publish(0, n, event("a", n, ("x",) if n % 2 else ()))
    sub, replay, position = hub.subscribe("a", Cursor(EPOCH, 0, 1), None, "s")
    assert headlines(replay) == ["h2", "h3", "h4"]
    assert position == Cursor(EPOCH, 0, 1)
    _, tagged_replay, _ = hub.subscribe("a", Cursor(EPOCH, 0, 1), frozenset({"x"}), "t")
    assert headlines(tagged_replay) == ["h3"]
    live = hub.publish(0, 5, event("a", 5))
    assert sub in live.recipients


def test_cursor_older_than_the_buffer_needs_a_reset() -> None:
    hub = Hub(EPOCH, partition_of=lambda _: 0, buffer=3)
    hub.start_partition(0, 0)
    for n in range(6):
        hub.publish(0, n, event("a", n))
    with pytest.raises(ResetNeeded) as info:
        hub.subscribe("a", Cursor(EPOCH, 0, 1), None, "s")
    assert info.value.reason is ResetReason.cursor_too_old
    _, replay, _ = hub.subscribe("a", Cursor(EPOCH, 0, 2), None, "s")
    assert headlines(replay) == ["h3", "h4", "h5"]


def test_other_epoch_or_partition_needs_a_reset() -> None:
    hub = Hub(EPOCH, partition_of=lambda _: 0, buffer=3)
    hub.start_partition(0, 0)
    hub.publish(0, 0, event("a", 0))
    with pytest.raises(ResetNeeded) as info:
        hub.subscribe("a", Cursor("00000000", 0, 0), None, "s")
    assert info.value.reason is ResetReason.epoch_changed
    with pytest.raises(ResetNeeded) as info:
        hub.subscribe("a", Cursor(EPOCH, 1, 0), None, "s")
    assert info.value.reason is ResetReason.wrong_partition


def test_cursor_before_this_process_started_needs_a_reset_for_an_idle_feed() -> None:
    hub = Hub(EPOCH, partition_of=lambda _: 0, buffer=3)
    hub.start_partition(0, 100)
    with pytest.raises(ResetNeeded):
        hub.subscribe("quiet", Cursor(EPOCH, 0, 50), None, "s")
    sub, replay, _ = hub.subscribe("quiet", Cursor(EPOCH, 0, 99), None, "s")
    assert replay == []
    assert sub in hub.publish(0, 100, event("quiet", 1)).recipients


def test_a_cursor_ahead_of_this_process_gets_nothing_twice() -> None:
    """A reader that saw offset 3 elsewhere, on a fanout still at offset 1, must not get 2 or 3 again."""
    hub = Hub(EPOCH, partition_of=lambda _: 0, buffer=10)
    hub.start_partition(0, 0)
    hub.publish(0, 0, event("a", 0))
    hub.publish(0, 1, event("a", 1))
    sub, replay, _ = hub.subscribe("a", Cursor(EPOCH, 0, 3), None, "s")
    assert replay == []
    assert sub not in hub.publish(0, 2, event("a", 2)).recipients
    assert sub not in hub.publish(0, 3, event("a", 3)).recipients
    assert sub in hub.publish(0, 4, event("a", 4)).recipients


def test_a_reader_of_a_feed_with_no_events_yet_gets_the_first_and_a_cursor_to_resume_from() -> None:
    hub = Hub(EPOCH, partition_of=lambda _: 0, buffer=10)
    hub.start_partition(0, 0)
    hub.publish(0, 0, event("other", 0))
    sub, _, position = hub.subscribe("new", None, None, "s")
    assert position == Cursor(EPOCH, 0, 0)
    hub.unsubscribe(sub)
    assert hub.subscribers == 0
    hub.publish(0, 1, event("other", 1))
    hub.publish(0, 2, event("new", 2))
    resumed, replay, _ = hub.subscribe("new", position, None, "r")
    assert headlines(replay) == ["h2"]
    assert resumed in hub.publish(0, 3, event("new", 3)).recipients


def test_a_cursor_of_another_partition_for_a_new_feed_needs_a_reset() -> None:
    hub = Hub(EPOCH, partition_of=lambda _: 1, buffer=10)
    hub.start_partition(0, 0)
    hub.start_partition(1, 0)
    with pytest.raises(ResetNeeded):
        hub.subscribe("new", Cursor(EPOCH, 0, 0), None, "s")


def test_each_event_is_encoded_once_for_all_readers() -> None:
    hub = Hub(EPOCH, partition_of=lambda _: 0, buffer=10)
    hub.start_partition(0, 0)
    for n in range(100):
        hub.subscribe("a", None, None, n)
    delivery = hub.publish(0, 0, event("a", 1))
    assert len(delivery.recipients) == 100
    assert delivery.message.ws() is delivery.message.ws()
    assert orjson.loads(delivery.message.message)["cursor"] == f"{EPOCH}.0.0"

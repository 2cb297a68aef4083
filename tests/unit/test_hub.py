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


def versioned(feed: str, n: int, version: int, kind: EventType, headline: str = "") -> Event:
    item: dict[str, Any] = {"id": f"{n:026d}", "feed": feed, "version": version, "status": "published",
                            "headline": headline or f"h{n}v{version}", "tags": []}
    if kind is EventType.retracted:
        item = {"id": item["id"], "feed": feed, "version": version, "status": "retracted"}
    return Event(kind, feed, item, 0.0)


def test_a_resume_never_replays_the_text_of_a_retracted_item() -> None:
    hub = Hub(EPOCH, partition_of=lambda _: 0, buffer=10)
    hub.start_partition(0, 0)
    hub.publish(0, 0, versioned("a", 1, 1, EventType.published, "secret"))
    hub.publish(0, 1, versioned("a", 1, 2, EventType.updated, "still secret"))
    hub.publish(0, 2, versioned("a", 2, 1, EventType.published, "kept"))
    hub.publish(0, 3, versioned("a", 1, 3, EventType.retracted))
    _, replay, _ = hub.subscribe("a", Cursor(EPOCH, 0, -1), None, "s")
    assert b"secret" not in b"".join(m.message for m in replay)
    assert [orjson.loads(m.message)["item"]["version"] for m in replay] == [1, 3]
    assert [m.cursor.offset for m in replay if m.cursor] == [2, 3]


def test_a_repeated_or_older_version_reaches_no_reader() -> None:
    hub = Hub(EPOCH, partition_of=lambda _: 0, buffer=10)
    hub.start_partition(0, 0)
    sub, _, _ = hub.subscribe("a", None, None, "s")
    assert hub.publish(0, 0, versioned("a", 1, 1, EventType.published)).recipients == [sub]
    assert hub.publish(0, 1, versioned("a", 1, 2, EventType.updated)).recipients == [sub]
    assert hub.publish(0, 2, versioned("a", 1, 1, EventType.published)).recipients == []
    _, replay, position = hub.subscribe("a", Cursor(EPOCH, 0, -1), None, "t")
    assert [m.cursor.offset for m in replay if m.cursor] == [0, 1]
    assert position == Cursor(EPOCH, 0, -1)
    assert hub.subscribe("a", None, None, "u")[2] == Cursor(EPOCH, 0, 2)


def test_a_quiet_feed_resumes_from_a_cursor_its_partition_has_passed() -> None:
    hub = Hub(EPOCH, partition_of=lambda _: 0, buffer=3)
    hub.start_partition(0, 100)
    for offset in range(100, 120):
        hub.publish(0, offset, event("busy", offset))
    sub, replay, _ = hub.subscribe("quiet", Cursor(EPOCH, 0, 115), None, "q")
    assert replay == []
    assert sub in hub.publish(0, 120, event("quiet", 120)).recipients
    hub.publish(0, 121, event("quiet", 121))
    for offset in range(122, 140):
        hub.publish(0, offset, event("busy", offset))
    late, replay, _ = hub.subscribe("quiet", Cursor(EPOCH, 0, 135), None, "late")
    assert replay == []
    assert late in hub.publish(0, 140, event("quiet", 140)).recipients


def test_a_cursor_ahead_of_kafka_is_reset_after_the_grace_period() -> None:
    hub = Hub(EPOCH, partition_of=lambda _: 0, buffer=10)
    hub.start_partition(0, 0)
    hub.publish(0, 0, event("a", 0))
    hub.note_end(0, 1)
    ahead, _, _ = hub.subscribe("a", Cursor(EPOCH, 0, 5_000), None, "ahead", now=10.0)
    quiet, _, _ = hub.subscribe("b", Cursor(EPOCH, 0, 0), None, "quiet", now=10.0)
    lagging, _, _ = hub.subscribe("a", Cursor(EPOCH, 0, 3), None, "lagging", now=10.0)
    assert hub.overdue(now=12.0, grace=5.0) == []
    hub.note_end(0, 10)
    assert hub.overdue(now=16.0, grace=5.0) == [ahead]
    assert hub.subscribers == 2
    assert ahead not in hub.publish(0, 5_001, event("a", 1)).recipients
    del quiet, lagging


def test_a_keyed_publish_repeated_under_another_id_reaches_no_reader() -> None:
    hub = Hub(EPOCH, partition_of=lambda _: 0, buffer=10, op_ttl_s=60)
    hub.start_partition(0, 0)
    sub, _, _ = hub.subscribe("a", None, None, "s")
    first = Event(EventType.published, "a", {"id": "1" * 26, "version": 1}, 1_000.0, op="k1")
    again = Event(EventType.published, "a", {"id": "2" * 26, "version": 1}, 2_000.0, op="k1")
    reused = Event(EventType.published, "a", {"id": "3" * 26, "version": 1}, 100_000.0, op="k1")
    assert hub.publish(0, 0, first).recipients == [sub]
    assert hub.publish(0, 1, again).recipients == []
    assert hub.publish(0, 2, reused).recipients == [sub]

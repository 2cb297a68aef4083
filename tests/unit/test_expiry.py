"""Readers by token expiry: the order they come due, what leaving forgets, and a heap that stays bounded.

Also :class:`~services.fanout.readers.Readers`, which files a private reader under its expiry and
drops it from the hub when it comes due, with the real hub and a recording sink.
"""

from __future__ import annotations

import random
from typing import Any

from services.fanout.expiry import Expiries
from services.fanout.hub import Hub
from services.fanout.readers import Readers
from services.fanout.streams import Encoded, StreamRequest


def test_readers_come_due_in_expiry_order_and_only_once() -> None:
    expiries: Expiries[str] = Expiries()
    for name, at in [("c", 30.0), ("a", 10.0), ("b", 20.0), ("a2", 10.0)]:
        expiries.add(name, at)
    assert expiries.due(9.9) == []
    assert expiries.due(10.0) == ["a", "a2"]
    assert expiries.due(25.0) == ["b"]
    assert expiries.due(25.0) == []
    assert "c" in expiries and len(expiries) == 1
    assert expiries.due(1e12) == ["c"]
    assert len(expiries) == 0 and expiries.entries == 0


def test_a_reader_that_left_never_comes_due() -> None:
    expiries: Expiries[str] = Expiries()
    expiries.add("gone", 5.0)
    expiries.add("stays", 6.0)
    expiries.discard("gone")
    expiries.discard("never-added")
    assert expiries.due(10.0) == ["stays"]


def test_adding_a_reader_again_moves_it() -> None:
    expiries: Expiries[str] = Expiries()
    expiries.add("r", 5.0)
    expiries.add("r", 50.0)
    assert expiries.due(10.0) == []
    assert expiries.due(50.0) == ["r"]


def test_churn_keeps_the_heap_within_twice_the_readers() -> None:
    expiries: Expiries[int] = Expiries()
    rng = random.Random(7)
    live: set[int] = set()
    for n in range(20_000):
        expiries.add(n, 1_000_000 + rng.random() * 3600)
        live.add(n)
        if len(live) > 100:
            gone = rng.choice(sorted(live))
            live.discard(gone)
            expiries.discard(gone)
        assert expiries.entries <= max(64, 2 * len(expiries)) + 1
    assert len(expiries) == len(live)
    assert sorted(expiries.due(1e12)) == sorted(live)


def test_due_readers_are_the_expired_ones_soonest_first() -> None:
    expiries: Expiries[int] = Expiries()
    rng = random.Random(3)
    at = {n: rng.uniform(0, 100) for n in range(500)}
    for n, when in at.items():
        expiries.add(n, when)
    left = set(rng.sample(sorted(at), 200))
    for n in left:
        expiries.discard(n)
    due = expiries.due(50.0)
    assert due == sorted((n for n in at if at[n] <= 50.0 and n not in left), key=lambda n: at[n])


class Sink:
    """Records what a reader is sent."""

    KIND = "ws"

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def deliver(self, encoded: Encoded) -> None:
        self.writes.append(encoded.message)


def _readers() -> Readers:
    return Readers(Hub("e1", partition_of=lambda _: 0, buffer=10), max_readers=10)


def _join(readers: Readers, feed: str, expires: float | None) -> Any:
    sink: Any = Sink()
    return readers.join(StreamRequest(feed, None, None), sink, lambda hello: hello, now=0.0, expires=expires)


def test_readers_hands_back_the_expired_and_unsubscribes_them() -> None:
    readers = _readers()
    public = _join(readers, "news", None)
    soon = _join(readers, "private-a", 100.0)
    later = _join(readers, "private-a", 200.0)
    assert readers.count == 3
    assert readers.expired(99.0) == []
    assert readers.expired(150.0) == [soon]
    assert readers.count == 2
    readers.leave(soon)
    assert readers.count == 2
    readers.leave(later)
    assert readers.expired(1e12) == []
    assert readers.count == 1
    readers.leave(public)
    assert readers.count == 0

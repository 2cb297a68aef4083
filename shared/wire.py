"""The wire format: events as Kafka carries them, and the messages readers receive.

Kafka record: key = feed (so a feed's events are totally ordered in one partition),
value = :meth:`Event.serialize`. Reader message (WebSocket text frame or SSE ``data:``)::

    {"type": "item.published", "cursor": "3f9a1c2b.0.42", "feed": "world", "ts": 1764182400123.4,
     "item": {...}}

plus the control messages ``hello``, ``reset``, ``reauth`` and ``heartbeat`` built here too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from .cursor import Cursor

__all__ = [
    "Event",
    "EventType",
    "WireError",
    "event_or_none",
    "heartbeat_message",
    "hello_message",
    "reauth_message",
    "reset_message",
]


class WireError(ValueError):
    """A Kafka record that is not a livefeed event."""


class EventType(StrEnum):
    published = "item.published"
    updated = "item.updated"
    retracted = "item.retracted"


@dataclass(frozen=True, slots=True)
class Event:
    """One change to one item: what ingest produces and every consumer reads."""

    type: EventType
    feed: str
    item: dict[str, Any]
    accepted_ms: float
    prev_tags: tuple[str, ...] = field(default=())
    op: str | None = None
    """For a publish sent with an Idempotency-Key: a hash of the caller and key. A second
    publish with the same ``op`` (a retry the key store could not answer) is a repeat, and
    history and fanout keep only the first in Kafka order."""

    @property
    def item_id(self) -> str:
        return str(self.item["id"])

    @property
    def version(self) -> int:
        return int(self.item["version"])

    @property
    def tags(self) -> frozenset[str]:
        """Tags a filter matches on: the item's, and before an edit the ones it had."""
        return frozenset(self.item.get("tags", ())) | frozenset(self.prev_tags)

    def serialize(self) -> bytes:
        body: dict[str, Any] = {
            "type": self.type.value,
            "feed": self.feed,
            "item": self.item,
            "accepted_ms": self.accepted_ms,
        }
        if self.prev_tags:
            body["prev_tags"] = list(self.prev_tags)
        if self.op is not None:
            body["op"] = self.op
        return orjson.dumps(body)

    @classmethod
    def parse(cls, data: bytes) -> Event:
        """Read an event from a Kafka record value; raise :class:`WireError` if it is not one."""
        try:
            body = orjson.loads(data)
            item = body["item"]
            if not isinstance(item.get("id"), str) or isinstance(item.get("version"), bool):
                raise ValueError("the item needs a string id and a whole-number version")
            int(item["version"])
            return cls(
                type=EventType(body["type"]),
                feed=str(body["feed"]),
                item=dict(body["item"]),
                accepted_ms=float(body["accepted_ms"]),
                prev_tags=tuple(body.get("prev_tags", ())),
                op=None if body.get("op") is None else str(body["op"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise WireError(f"not a livefeed event: {exc}") from exc

    def message(self, cursor: Cursor) -> bytes:
        """The reader message for this event at ``cursor``, encoded once for every reader."""
        return orjson.dumps(
            {
                "type": self.type.value,
                "cursor": cursor.serialize(),
                "feed": self.feed,
                "ts": self.accepted_ms,
                "item": self.item,
            }
        )


def hello_message(feed: str, cursor: Cursor | None) -> bytes:
    """First message of a stream: the position it continues from (null: from now)."""
    return orjson.dumps({"type": "hello", "feed": feed, "cursor": cursor and cursor.serialize()})


def reset_message(feed: str, reason: str, cursor: Cursor | None) -> bytes:
    """The stream cannot continue from the client's cursor: reload history, then resume."""
    return orjson.dumps(
        {"type": "reset", "feed": feed, "reason": reason, "cursor": cursor and cursor.serialize()}
    )


def reauth_message(feed: str, reason: str) -> bytes:
    """The reader's token no longer grants the feed (``reader_token_expired``): get a new one, then resume."""
    return orjson.dumps({"type": "reauth", "feed": feed, "reason": reason})


def heartbeat_message() -> bytes:
    return b'{"type":"heartbeat"}'


_log = logging.getLogger("livefeed.wire")


def event_or_none(value: bytes, partition: int, offset: int) -> Event | None:
    """The event in a Kafka record, or None (logged) for a record that is not one: consumers skip it."""
    try:
        return Event.parse(value)
    except WireError:
        _log.error("skipping a record that is not a livefeed event", extra={"partition": partition, "offset": offset})
        return None

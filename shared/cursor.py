"""The cursor: an opaque position in one feed's event sequence.

A feed's events all live in one Kafka partition (the record key is the feed), so a position
is ``(partition, offset)``. The epoch is a short hash of the Kafka topic id: when the topic is
recreated, offsets start again from zero and every old cursor is recognisably stale.
On the wire a cursor is ``<epoch>.<partition>.<offset>``; clients must treat it as opaque.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Cursor", "CursorError"]


class CursorError(ValueError):
    """The text is not a cursor livefeed wrote."""


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """The position right after the event at ``offset`` has been seen."""

    epoch: str
    partition: int
    offset: int

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """Read a cursor from its wire form; raise :class:`CursorError` if it is not one."""
        parts = text.split(".")
        if len(parts) != 3 or not parts[0].isalnum() or len(parts[0]) > 32:
            raise CursorError(f"not a livefeed cursor: {text[:64]!r}")
        try:
            partition, offset = int(parts[1]), int(parts[2])
        except ValueError:
            raise CursorError(f"not a livefeed cursor: {text[:64]!r}") from None
        if partition < 0 or offset < -1:
            raise CursorError(f"not a livefeed cursor: {text[:64]!r}")
        return cls(parts[0], partition, offset)

    def serialize(self) -> str:
        return f"{self.epoch}.{self.partition}.{self.offset}"

    def __str__(self) -> str:
        return self.serialize()

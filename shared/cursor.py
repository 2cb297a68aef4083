"""The cursor: an opaque position in one feed's event sequence.

A feed's events all live in one Kafka partition (the record key is the feed), so a position
is ``(partition, offset)``. The epoch is a short hash of the Kafka topic id: when the topic is
recreated, offsets start again from zero and every old cursor is recognisably stale.
On the wire a cursor is ``<epoch>.<partition>.<offset>``; clients must treat it as opaque.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MAX_CURSOR_LENGTH", "Cursor", "CursorError"]

MAX_CURSOR_LENGTH = 64
"""The longest text a cursor can be; longer input is refused before it is read."""

_WIRE = re.compile(r"([0-9A-Za-z]{1,32})\.(0|[1-9][0-9]{0,9})\.(-1|0|[1-9][0-9]{0,18})")
_MAX_PARTITION = 2**31 - 1
_MAX_OFFSET = 2**63 - 1


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
        """Read a cursor from its wire form; raise :class:`CursorError` if it is not one.

        Only the form :meth:`serialize` writes passes: ASCII letters and digits for the epoch,
        plain decimal numbers (no sign but the offset's -1, no spaces, underscores or other
        scripts' digits) of sizes Kafka can hold.
        """
        match = _WIRE.fullmatch(text) if len(text) <= MAX_CURSOR_LENGTH else None
        if match is None or int(match[2]) > _MAX_PARTITION or int(match[3]) > _MAX_OFFSET:
            raise CursorError(f"not a livefeed cursor: {text[:MAX_CURSOR_LENGTH]!r}")
        return cls(match[1], int(match[2]), int(match[3]))

    def serialize(self) -> str:
        return f"{self.epoch}.{self.partition}.{self.offset}"

    def __str__(self) -> str:
        return self.serialize()

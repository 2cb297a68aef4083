"""Readers whose reader token runs out, in the order it does: what the tick closes each second.

No I/O and no clock of its own: :meth:`Expiries.add` files a reader under its token's expiry,
:meth:`Expiries.due` hands back, soonest first, every reader whose expiry has come. A heap keeps
each tick's cost to the readers that are due (plus a logarithm), not a scan of every reader.
Readers that leave first are forgotten at once in the index and lazily in the heap, which is
rebuilt when over half of it is stale, so it never holds more than about twice the readers.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["Expiries"]

R = TypeVar("R", bound=Hashable)

_COMPACT_FLOOR = 64
"""Below this many heap entries stale ones are left to :meth:`Expiries.due`: rebuilding would cost more."""


class Expiries(Generic[R]):
    """Readers keyed by when their token expires (any clock, as long as :meth:`due` is given the same)."""

    __slots__ = ("_heap", "_live", "_order")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, R]] = []
        self._live: dict[R, tuple[float, int]] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, reader: object) -> bool:
        return reader in self._live

    @property
    def entries(self) -> int:
        """Heap entries, stale ones included: bounded by about twice ``len(self)``."""
        return len(self._heap)

    def add(self, reader: R, expires: float) -> None:
        """File ``reader`` under ``expires``; adding it again moves it (the older entry turns stale)."""
        entry = (expires, next(self._order))
        self._live[reader] = entry
        heapq.heappush(self._heap, (*entry, reader))

    def discard(self, reader: R) -> None:
        """Forget ``reader`` (it left); harmless if it is not here."""
        if self._live.pop(reader, None) is not None and len(self._heap) > max(_COMPACT_FLOOR, 2 * len(self._live)):
            self._heap = [(expires, order, r) for r, (expires, order) in self._live.items()]
            heapq.heapify(self._heap)

    def due(self, now: float) -> list[R]:
        """Remove and return every reader whose token expired at or before ``now``, soonest first.

        The caller must end each one's stream (and need not :meth:`discard` it).
        """
        due: list[R] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            expires, order, reader = heapq.heappop(heap)
            if self._live.get(reader) == (expires, order):
                del self._live[reader]
                due.append(reader)
        return due

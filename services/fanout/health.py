"""What the fanout's ``/healthz`` and ``/readyz`` answer, the same on its WebSocket and SSE ports.

``/healthz``: the process serves (200, with the readers connected now). ``/readyz``: it can do
its work, that is the pump has caught up and Kafka still answers its fetches (200), else 503
with Retry-After; the body is the pump's :meth:`~services.fanout.pump.Pump.readiness`. No I/O.
Each worker process answers for itself: both bodies name its ``worker`` index, and every answer
and stream head carries :data:`WORKER_HEADER`, so a client can tell which worker it reached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["RETRY_AFTER_S", "WORKER_HEADER", "Health"]

RETRY_AFTER_S = 2
WORKER_HEADER = "Livefeed-Worker"

Answer = tuple[int, dict[str, Any], dict[str, str]]
"""A status, a JSON body and extra headers."""


class Health:
    """Answers the health paths; adapters ask :meth:`answer` first and stream only when it says ``None``."""

    __slots__ = ("_readers", "_readiness", "worker")

    def __init__(self, readers: Callable[[], int], readiness: Callable[[], dict[str, Any]], worker: int = 0) -> None:
        self._readers = readers
        self._readiness = readiness
        self.worker = worker

    def answer(self, target: str) -> Answer | None:
        """The answer to a request for ``target`` if it is a health path, else ``None``."""
        path = target.split("?", 1)[0]
        if path == "/healthz":
            return 200, {"status": "ok", "readers": self._readers(), "worker": self.worker}, {}
        if path == "/readyz":
            body = {**self._readiness(), "readers": self._readers(), "worker": self.worker}
            if body["status"] == "ready":
                return 200, body, {"Cache-Control": "no-cache"}
            return 503, body, {"Retry-After": str(RETRY_AFTER_S)}
        return None

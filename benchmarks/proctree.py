"""CPU of a process and its children over a window: a service that runs as several worker processes.

With ``LIVEFEED_*_WORKERS`` above 1 a service is a small parent and N children sharing the port;
its cost is the sum of all of them, and each child's share shows how evenly the kernel spread
the connections. A child that appears or dies inside the window counts from when it was seen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil

__all__ = ["TreeClock", "TreeSample", "established"]


def _cpu_s(process: psutil.Process) -> float | None:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def established(pid: int) -> int:
    """Established TCP connections of the process (0 if it is gone): its readers, plus a few to Kafka and Redis."""
    try:
        return sum(1 for c in psutil.Process(pid).net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED)
    except psutil.Error:
        return 0


@dataclass(frozen=True)
class TreeSample:
    """CPU seconds of the parent and of each child (by pid) over ``seconds`` of wall time."""

    seconds: float
    parent_cpu_s: float
    children_cpu_s: dict[int, float]

    @property
    def total_cpu_s(self) -> float:
        return self.parent_cpu_s + sum(self.children_cpu_s.values())

    @property
    def cpu_percent(self) -> float:
        """All the processes together, in percent of one core."""
        return round(self.total_cpu_s / self.seconds * 100.0, 1) if self.seconds else 0.0

    def per_process_percent(self) -> dict[int, float]:
        """Each child's CPU in percent of one core (the parent alone when it has no children)."""
        shares = self.children_cpu_s or {0: self.parent_cpu_s}
        return {pid: round(cpu / self.seconds * 100.0, 1) if self.seconds else 0.0 for pid, cpu in shares.items()}


class TreeClock:
    """CPU seconds of ``pid`` and its descendants between construction (or :meth:`start`) and :meth:`sample`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start()

    def _read(self) -> tuple[float, dict[int, float]]:
        try:
            parent = psutil.Process(self.pid)
            children = parent.children(recursive=True)
        except psutil.Error:
            return 0.0, {}
        own = _cpu_s(parent) or 0.0
        return own, {c.pid: cpu for c in children if (cpu := _cpu_s(c)) is not None}

    @property
    def processes(self) -> list[int]:
        """The children seen at :meth:`start`, or the parent alone when it had none (a service in one process)."""
        return sorted(self._children) or [self.pid]

    def start(self) -> None:
        """Begin the window now."""
        self._began = time.monotonic()
        self._parent, self._children = self._read()

    def sample(self) -> TreeSample:
        """CPU used since :meth:`start`; a child first seen now counts all its CPU (it started inside the window)."""
        parent, children = self._read()
        return TreeSample(
            seconds=time.monotonic() - self._began,
            parent_cpu_s=max(parent - self._parent, 0.0),
            children_cpu_s={pid: max(cpu - self._children.get(pid, 0.0), 0.0) for pid, cpu in children.items()},
        )
